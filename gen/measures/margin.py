"""The margin γ and the measures built on it alone, plus the parameter count.

γ is the q-th percentile (``margin_percentile``) over the training subsample of
f(x)[y] − max_{j≠y} f(x)[j], with y the label the network was trained on (corrupted or not),
read as the convention says (``margin_rank``): interpolated between order statistics
(numpy.percentile, S1's code) or the k-th smallest, k = ⌊q·n/100⌋ (J's ``kthvalue``).
A one-output binary classifier's logit z gives the margin (2y − 1)·z.  Regression has no margin.

``num_params`` counts what the convention says: every parameter (gen), the layer weights (J) or
the layer weights and biases after BatchNorm folding (S1's code).
"""
import math

import torch

from gen.measures.registry import NotApplicable, measure


def margins(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample margins of classifier outputs [N, K] (K ≥ 2) or one-logit outputs [N, 1]."""
    if outputs.shape[-1] == 1:
        return (2.0 * targets.float() - 1.0) * outputs[:, 0]
    index = torch.arange(len(targets), device=outputs.device)
    correct = outputs[index, targets]
    others = outputs.clone()
    others[index, targets] = float("-inf")
    return correct - others.max(dim=1).values


def margin_percentile(ctx) -> float:
    if ctx.data.task != "classification":
        raise NotApplicable("the margin needs a classification task")
    values = margins(ctx.clean_outputs(), ctx.sample[1])
    return percentile(values.double(), ctx.params.margin_percentile, ctx.convention.margin_rank)


def percentile(values: torch.Tensor, q: float, rank: str) -> float:
    """The q-th percentile of ``values``: interpolated, or the k-th smallest with k = ⌊q·n/100⌋ ≥ 1."""
    if rank == "kthvalue":
        k = min(max(math.floor(q * len(values) / 100), 1), len(values))
        return values.kthvalue(k).values.item()
    return torch.quantile(values, q / 100.0).item()


@measure("num_params", size_adjust="sqrt")
def num_params(ctx) -> float:
    """gen: every parameter of the trained network (before folding), as metrics.json's model.num_params."""
    counts = ctx.convention.num_params
    if counts == "all":
        return float(sum(p.numel() for p in ctx.model.parameters()))
    layers = [layer.module for layer in ctx.layers]
    weights = sum(m.weight.numel() for m in layers)
    if counts == "weights":
        return float(weights)
    return float(weights + sum(m.bias.numel() for m in layers if m.bias is not None))


@measure("margin")
def margin(ctx) -> float:
    return ctx.margin


@measure("inverse_margin", size_adjust="sqrt")
def inverse_margin(ctx) -> float:
    """J: 1/γ²."""
    return 1.0 / ctx.positive_margin() ** 2
