"""K copies of a chain of Linear layers and elementwise activations, run as batched matrix products.

Lockstep (gen.training.lockstep) trains K members of one shape at once.  For a model that is such a
chain (``fc``, ``mlp``: an ``nn.Sequential`` of Flatten, Linear and activation modules), each Linear
of the K members is one ``baddbmm`` forward and at most two ``bmm`` backward over weights stacked as
``[K, out, in]``, with the gradient written in that same layout: the arithmetic of K separate
``nn.Linear`` steps in a few large products.  Two things this avoids, both measured (torch.profiler
and the speed benchmark, 8 members of fc on one thread): plain autograd through ``baddbmm`` with
the transposed weight returns the weight's gradient transposed, and copying it into the weight's
layout took 48% of a step at H = 1024 (more than the products); ``torch.func.vmap`` reaches the
same products but adds its transforms' per-call work and separate bias additions, so its step ran
at 1.02×, 0.85×, 0.98× of the 8 runs one after another (H = 64, 256, 1024) where this one ran at
1.52×, 1.08×, 1.06× (one process, load average 6.5).  Other models keep the vmapped step.
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
    """The forward pass of K members of one chain (:func:`chain_of`) on ``[K, B, ...]`` inputs, with
    each member's weights the ``k``-th slice of a stacked tensor."""

    def __init__(self, model: nn.Module, layers: list[nn.Module]):
        index = {id(p): i for i, p in enumerate(model.parameters())}
        # per layer: the positions of its weight and bias in model.parameters() (the stacked list's order)
        self.steps = [(layer, index[id(layer.weight)], index[id(layer.bias)] if layer.bias is not None else None)
                      if isinstance(layer, nn.Linear) else (layer, None, None) for layer in layers]

    def __call__(self, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        for layer, weight, bias in self.steps:
            if weight is not None:
                x = StackedLinear.apply(x, params[weight], params[bias] if bias is not None else None)
            elif isinstance(layer, nn.Flatten):
                x = x.flatten(2)
            else:
                x = layer(x)
        return x


class StackedLinear(torch.autograd.Function):
    """``x @ W[k].T + b[k]`` for each member k: ``x`` [K, B, in], ``W`` [K, out, in], ``b`` [K, out] or None.
    The backward computes ``nn.Linear``'s gradients per member, the weight's as ``g.T @ x`` so that it
    has the weight's own layout (no transposing copy)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_weight = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias
