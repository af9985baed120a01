"""K copies of a chain of Linear layers and elementwise activations, run as batched matrix products.

Lockstep (gen.training.lockstep) trains K members of one shape at once.  For a model that is such a
chain (``fc``, ``mlp``: an ``nn.Sequential`` of Flatten, Linear and activation modules), each Linear
of the K members is one ``baddbmm`` forward and at most two ``bmm`` backward over weights stacked as
``[K, out, in]``, with the gradient written in that same layout (``g.T @ x``: a transposed gradient
copied into the weight's layout took 48% of a step at H = 1024): the arithmetic of K separate
``nn.Linear`` steps in a few large products, each member's outputs and gradients those of its own
module through autograd (tests/test_stacked.py: to 1e-12 in float64; in float32 lockstep members
came out bit-identical to their runs alone, SGD, momentum and AdamW).  ``torch.func.vmap`` reaches
the same products but adds its transforms' per-call work and separate bias additions: its step ran
at 1.02×, 0.85×, 0.98× of the 8 runs one after another (H = 64, 256, 1024) where the stacked one
(then through autograd) ran at 1.52×, 1.08×, 1.06× (load average 6.5).  Other models keep the
vmapped step.

The backward is written out (:meth:`StackedChain.backward`), not autograd's: at H = 64 (8 members,
64 samples each, one thread) the two large products, 8 × 64×784×64 each, take about 575 µs apiece
(~89 GFLOP/s, near the one-thread matrix-multiply limit of ~100), and autograd's graph, the loss's
and the optimizer's per-call work around them took as long again.  Per step (thread CPU time,
load average ~4 before, 2.1 after), autograd's step spent gather 406 µs, forward 839, loss 172,
backward 1104, update 246; this one gather 299 (into a kept buffer), forward 675, loss 196 (the
cross-entropy's gradient by hand: gen.training.objective), backward 790 (into the last step's
gradients), update 141 (torch's default per-tensor SGD: ``foreach`` on CPU was slower), 2.1 ms in
all, of which the products are 1.15 ms.  A lockstep epoch of 8 on one thread went from 0.333 s to
0.297 s (2.10× to 2.35× the 8 alone, one process, load average 2.1).  What remains besides the
products is mostly the gather of 8 × 64 random rows (memory-bound: the 8 runs alone gather the same
rows, once per epoch each) and the log-softmax of 512 rows of 10 (~80 µs, kept: its kernel is
the one a run alone uses, so the members stay bit-identical to their runs).
"""
import torch
import torch.nn as nn

# Modules applied sample by sample and feature by feature: the same on a [K, B, ...] batch as on [B, ...].
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Identity)


def chain_of(model: nn.Module) -> list[nn.Module] | None:
    """The layers ``model`` applies one after another, if it is a chain of Flatten, Linear and
    :data:`ACTIVATIONS` modules (nested ``nn.Sequential`` included); None for any other model."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return None  # a subclass with its own forward may do anything
    layers = []
    for child in model:
        if isinstance(child, nn.Sequential):
            inner = chain_of(child)
            if inner is None:
                return None
            layers += inner
        elif type(child) is nn.Flatten and child.start_dim == 1 and child.end_dim == -1:
            layers.append(child)
        elif type(child) is nn.Linear or type(child) in ACTIVATIONS:
            layers.append(child)
        else:
            return None
    return layers


class StackedChain:
    """K members of one chain (:func:`chain_of`) on ``[K, B, ...]`` inputs, each member's weights the
    ``k``-th slice of a stacked tensor: :meth:`forward` keeps what :meth:`backward` needs, and
    :meth:`backward` returns the gradient of every stacked weight, without autograd."""

    def __init__(self, model: nn.Module, layers: list[nn.Module]):
        index = {id(p): i for i, p in enumerate(model.parameters())}
        self.size = len(index)
        # per layer: the positions of its weight and bias in model.parameters() (the stacked list's order)
        self.steps = [(layer, index[id(layer.weight)], index[id(layer.bias)] if layer.bias is not None else None)
                      if isinstance(layer, nn.Linear) else (layer, None, None) for layer in layers]
        # the backward stops at the first Linear: the gradient of the data is never needed
        self.first = next((i for i, (_, weight, _) in enumerate(self.steps) if weight is not None), len(self.steps))

    @torch.no_grad()
    def forward(self, params: list[torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, list]:
        """The outputs ``[K, B, out]``, and the tape :meth:`backward` reads (each layer's saved tensors)."""
        tape = []
        for layer, weight, bias in self.steps:
            if weight is not None:
                tape.append(x)
                w = params[weight].transpose(1, 2)
                x = torch.bmm(x, w) if bias is None else torch.baddbmm(params[bias].unsqueeze(1), x, w)
            elif isinstance(layer, nn.Flatten):
                tape.append(x.shape)
                x = x.flatten(2)
            elif type(layer) is nn.ReLU:
                x = torch.relu(x)
                tape.append(x)  # ReLU's gradient reads its output, as autograd's does
            elif type(layer) is nn.Identity:
                tape.append(None)
            else:  # any other activation: autograd through this one module
                with torch.enable_grad():
                    given = x.detach().requires_grad_()
                    out = layer(given.clone())  # an in-place module must not write to the leaf
                tape.append((given, out))
                x = out.detach()
        return x, tape

    @torch.no_grad()
    def backward(self, params: list[torch.Tensor], tape: list, grad: torch.Tensor,
                 out: list[torch.Tensor | None] | None = None) -> list[torch.Tensor | None]:
        """Each stacked weight's gradient (None for one the chain does not use) from ``grad``, the
        gradient of the outputs: per member ``nn.Linear``'s gradients, the weight's as ``g.T @ x`` so
        that it has the weight's own layout (no transposing copy).  ``out``: tensors to write the
        gradients into (the last step's), so that a step takes no fresh memory for them."""
        grads = list(out) if out is not None else [None] * self.size
        for i in range(len(self.steps) - 1, self.first - 1, -1):
            layer, weight, bias = self.steps[i]
            saved = tape[i]
            if weight is not None:
                if bias is not None:
                    grads[bias] = torch.sum(grad, 1, out=grads[bias])
                grads[weight] = torch.bmm(grad.transpose(1, 2), saved, out=grads[weight])
                if i > self.first:
                    grad = torch.bmm(grad, params[weight])
            elif isinstance(layer, nn.Flatten):
                grad = grad.reshape(saved)
            elif type(layer) is nn.ReLU:
                grad = torch.ops.aten.threshold_backward(grad, saved, 0)
            elif type(layer) is not nn.Identity:
                given, result = saved
                with torch.enable_grad():
                    grad, = torch.autograd.grad(result, given, grad)
        return grads
