"""S4: minimum sharpness (Ibayashi et al. 2021), the trace of the Gauss–Newton Hessian minimised
over the rescalings of the layers that leave the network's function unchanged.

Which rescalings those are is read from the network's graph.  Each tensor carries a log-scale:
a linear form in a = (log α_l), one α_l per layer with a trainable weight.
- Linear/Conv layer l: output scale = input scale + a_l; its weight scales by α_l, its bias by
  exp(output scale).
- ReLU, pooling, flatten, dropout: the scale passes through (positive homogeneity).
- BatchNorm left unfolded (eval mode): absorbs the scale (γ by exp(−in), running mean by exp(in)),
  so its output has scale 0.
- ``x + bias`` in a custom module (S5's input bias): the bias scales with x.
- concatenation and residual sums need equal scales on every input, and the network's output
  scale 0: linear constraints on a.
Anything else (LocalResponseNorm, sigmoid, …) gives null with a note.

Gauss–Newton diagonals scale as 1/(parameter scale)², so a parameter tensor with log-scale u·a
contributes C·exp(−2u·a), C = Σ diag(H) over it.  Minimum sharpness is the minimum of
Σ C·exp(−2u·a) over a in the null space of the constraints: a convex function (a sum of exponentials
of linear forms), minimised with L-BFGS on its logarithm in float64 (S4 ran 100k SGD steps).
For a bias-free ReLU chain it is d·(Π_l T_l)^{1/d} (AM–GM), T_l = C of layer l's weight.
"""
import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn as nn

from gen.measures.folding import FoldedNet
from gen.measures.graph import describe, kind_of, tensor_args
from gen.measures.hessian import gauss_newton_costs
from gen.measures.registry import NotApplicable, measure


@dataclass
class Rescalings:
    """The function-preserving rescalings: a = basis @ z for any z."""
    layers: list[str]                       # the layers with a free α, in order
    scales: dict[str, torch.Tensor]         # parameter/buffer name → u, its log-scale is u·a
    basis: torch.Tensor                     # [len(layers), r], float64


def rescalings(folded: FoldedNet) -> Rescalings:
    if folded.graph is None:
        raise NotApplicable("the network could not be traced, so its rescalings are unknown")
    modules = dict(folded.module.named_modules())
    nodes = list(folded.graph.nodes)
    layer_nodes = [n.target for n in nodes if kind_of(n, modules) == "weight"]
    if len(set(layer_nodes)) != len(layer_nodes):
        raise NotApplicable("a layer is applied more than once (shared weights)")
    free = [name for name in layer_nodes if modules[name].weight.requires_grad]
    size = len(free)

    def unit(name: str) -> torch.Tensor:
        u = torch.zeros(size, dtype=torch.float64)
        if name in free:
            u[free.index(name)] = 1.0
        return u

    scale: dict = {}               # node → log-scale (None: not a tensor of activations)
    params: set = set()            # get_attr nodes (parameters used directly)
    tensors: dict[str, torch.Tensor] = {}
    constraints: list[torch.Tensor] = []

    def refuse(node):
        raise NotApplicable(f"minimum sharpness needs a positively homogeneous network: "
                            f"{describe(node, modules)} is not")

    for node in nodes:
        kind = kind_of(node, modules)
        args = tensor_args(node)
        if kind != "add" and any(a in params for a in args):
            refuse(node)
        inputs = [scale[a] for a in args if scale.get(a) is not None]
        if kind == "input":
            scale[node] = torch.zeros(size, dtype=torch.float64)
        elif kind == "param":
            params.add(node)
            scale[node] = None
        elif kind == "shape":
            scale[node] = None
        elif kind in ("index", "homogeneous"):
            scale[node] = inputs[0] if inputs else None
        elif kind == "scale":
            if len(inputs) != 1 or not any(isinstance(a, numbers.Number) for a in node.args):
                refuse(node)
            scale[node] = inputs[0]
        elif kind == "weight":
            module = modules[node.target]
            out = inputs[0] + unit(node.target)
            tensors[f"{node.target}.weight"] = unit(node.target)
            if module.bias is not None:
                tensors[f"{node.target}.bias"] = out
            scale[node] = out
        elif kind == "batchnorm":
            bn = modules[node.target]
            if bn.weight is not None:
                tensors[f"{node.target}.weight"] = -inputs[0]
            if bn.running_mean is not None:
                tensors[f"{node.target}.running_mean"] = inputs[0]
            scale[node] = torch.zeros(size, dtype=torch.float64)
        elif kind in ("cat", "add"):
            if any(isinstance(a, numbers.Number) and a != 0 for a in node.args):
                refuse(node)
            constraints += [s - inputs[0] for s in inputs[1:]]
            for param in (a for a in args if a in params):
                tensors[param.target] = inputs[0]
            scale[node] = inputs[0]
        elif kind == "output":
            constraints += inputs
        else:
            refuse(node)
    return Rescalings(free, tensors, _null_space(constraints, size))


def _null_space(constraints: list[torch.Tensor], size: int) -> torch.Tensor:
    if not constraints or size == 0:
        return torch.eye(size, dtype=torch.float64)
    matrix = torch.stack(constraints)
    _, singular, vh = torch.linalg.svd(matrix, full_matrices=True)
    rank = int((singular > 1e-9 * max(1.0, singular.max().item())).sum())
    return vh[rank:].T.contiguous()


def minimise(costs: dict[str, float], plan: Rescalings, iterations: int) -> tuple[float, torch.Tensor]:
    """min over rescalings of Σ_p C_p·exp(−2 u_p·a), and the minimising a (log α per free layer)."""
    size = len(plan.layers)
    names = [n for n, c in costs.items() if c > 0]  # (a zero cost stays zero under any rescaling)
    if not names:
        return 0.0, torch.zeros(size, dtype=torch.float64)
    log_costs = torch.tensor([math.log(costs[n]) for n in names], dtype=torch.float64)
    directions = torch.stack([plan.scales.get(n, torch.zeros(size, dtype=torch.float64)) for n in names])
    directions = -2.0 * directions @ plan.basis  # exponent = log C + directions @ z
    z = torch.zeros(plan.basis.shape[1], dtype=torch.float64, requires_grad=True)
    if z.numel():
        optimiser = torch.optim.LBFGS([z], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe",
                                      tolerance_grad=1e-12, tolerance_change=1e-14)

        def closure():
            optimiser.zero_grad()
            value = torch.logsumexp(log_costs + directions @ z, dim=0)
            value.backward()
            return value
        optimiser.step(closure)
    with torch.no_grad():
        value = torch.logsumexp(log_costs + directions @ z, dim=0).exp().item()
    return value, (plan.basis @ z).detach()


@torch.no_grad()
def apply_rescaling(module: nn.Module, plan: Rescalings, a: torch.Tensor) -> None:
    """Rescale ``module``'s parameters and buffers in place by the log-scales a (function unchanged)."""
    tensors = dict(module.named_parameters()) | dict(module.named_buffers())
    for name, u in plan.scales.items():
        tensors[name].mul_(math.exp(float(u @ a)))


def layer_costs(ctx) -> dict[str, float]:
    """C per trainable parameter tensor: Σ of the Gauss–Newton diagonal over it (shared with hessian_trace)."""
    return gauss_newton_costs(ctx)


@measure("min_sharpness")
def min_sharpness(ctx) -> float:
    plan = ctx.shared("rescalings", lambda: rescalings(ctx.folded))
    value, _ = minimise(layer_costs(ctx), plan, ctx.params.min_sharpness_iterations)
    return value
