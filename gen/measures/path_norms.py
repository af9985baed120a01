"""Path norms: sums over all input→output paths of products of the weights on the path.

f_{|θ|^p}(1), the sum over paths of Π_i |W_i[j_i, j_{i−1}]|^p, is one forward pass of a copy of
the network with every weight replaced by |w|^p, biases zeroed (or |b|^p with ``include_bias``
or where the convention says so, as both peers' code does) and an all-ones input, summed over
the outputs (Neyshabur et al. 2015).  That identity needs a
positively homogeneous network (ReLU, pooling, Linear/Conv, concatenation, residual sums) with
BatchNorm folded; on anything else the path norms are null with a note.  The forward pass runs in
float64.

S1's capacity forms: ℓ1-path (1/γ²)·(2^d·f_{|θ|}(1))² and ℓ2-path (1/γ²)·Π_i(4h_i)·f_{θ²}(1); S1's
code also reports f_{|θ|}(1)/γ, f_{|θ|^1.5}(1)^{1/1.5}/γ and f_{θ²}(1)^{1/2}/γ.  J's path norm is
f_{θ²}(1) and f_{θ²}(1)/γ².
"""
import copy
import math
import numbers

import torch

from gen.measures.graph import describe, kind_of, tensor_args
from gen.measures.norms import exp, log
from gen.measures.registry import NotApplicable, measure

_ALLOWED = {"input", "output", "weight", "homogeneous", "cat", "add", "shape", "index"}


def homogeneity_problem(folded) -> str | None:
    """Why the folded network is not positively homogeneous (biases aside), or None if it is."""
    if folded.graph is None:
        return "the network could not be traced, so its operations cannot be checked"
    modules = dict(folded.module.named_modules())
    params = dict(folded.module.named_parameters())
    for node in folded.graph.nodes:
        kind = kind_of(node, modules)
        if kind == "param" and node.target in params and node.target.rsplit(".", 1)[-1] == "bias":
            continue  # a bias added in a custom module (S5's input bias): zeroed like the others
        if kind == "scale" and len(tensor_args(node)) == 1 and any(isinstance(a, numbers.Number) for a in node.args):
            continue  # multiplying or dividing by a constant keeps homogeneity
        if kind == "add" and any(isinstance(a, numbers.Number) and a != 0 for a in node.args):
            return f"{describe(node, modules)} adds a constant"
        if kind not in _ALLOWED:
            return f"{describe(node, modules)} is not positively homogeneous"
    return None


def path_sum(ctx, p: float) -> float:
    """f_{|θ|^p}(1)."""
    def compute():
        ctx.layers  # noqa: B018  raises NotApplicable where a BatchNorm stayed unfolded
        problem = homogeneity_problem(ctx.folded)
        if problem:
            raise NotApplicable(f"path norms need a positively homogeneous network: {problem}")
        net = copy.deepcopy(ctx.twin).double()
        biases = ctx.params.include_bias or ctx.convention.path_biases == "power"
        with torch.no_grad():
            for name, param in net.named_parameters():
                if name.rsplit(".", 1)[-1] == "bias" and not biases:
                    param.zero_()
                else:
                    param.abs_().pow_(p)
            ones = torch.ones(1, *ctx.sample[0].shape[1:], dtype=torch.float64, device=ctx.device)
            return net(ones).sum().item()
    return ctx.shared(f"path_sum_{p}", compute)


@measure("l1_path")
def l1_path(ctx) -> float:
    """(1/γ²)·(Σ_paths Π_i 2|W_i|)² = (2^d·f_{|θ|}(1))² / γ²."""
    d = len(ctx.layers)
    return exp(2 * (d * math.log(2) + log(path_sum(ctx, 1))) - 2 * log(ctx.positive_margin()))


@measure("l2_path")
def l2_path(ctx) -> float:
    """(1/γ²)·Σ_paths Π_i 4h_i W_i² = Π_i(4h_i)·f_{θ²}(1) / γ²."""
    widths = math.fsum(math.log(4 * layer.width) for layer in ctx.layers)
    return exp(widths + log(path_sum(ctx, 2)) - 2 * log(ctx.positive_margin()))


@measure("l1_path_plain")
def l1_path_plain(ctx) -> float:
    """S1's code: f_{|θ|}(1) / γ."""
    return path_sum(ctx, 1) / ctx.positive_margin()


@measure("l2_path_plain")
def l2_path_plain(ctx) -> float:
    """S1's code: f_{θ²}(1)^{1/2} / γ."""
    return math.sqrt(path_sum(ctx, 2)) / ctx.positive_margin()


@measure("l15_path_plain")
def l15_path_plain(ctx) -> float:
    """S1's code: f_{|θ|^1.5}(1)^{1/1.5} / γ."""
    return path_sum(ctx, 1.5) ** (1 / 1.5) / ctx.positive_margin()


@measure("path_norm", size_adjust="sqrt")
def path_norm(ctx) -> float:
    """J: f_{θ²}(1)."""
    return path_sum(ctx, 2)


@measure("path_norm_over_margin", size_adjust="sqrt")
def path_norm_over_margin(ctx) -> float:
    """J: f_{θ²}(1) / γ²."""
    return path_sum(ctx, 2) / ctx.positive_margin() ** 2
