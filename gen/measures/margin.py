"""The margin γ and the measures built on it alone, plus the parameter count.

γ is the q-th percentile (``margin_percentile``) over the training subsample of
f(x)[y] − max_{j≠y} f(x)[j], with y the label the network was trained on (corrupted or not).
A one-output binary classifier's logit z gives the margin (2y − 1)·z.  Regression has no margin.
"""
import torch

from gen.measures import evaluation
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
    x, y = ctx.sample
    values = margins(evaluation.outputs(ctx.twin, x, ctx.params.batch_size), y)
    return torch.quantile(values.double(), ctx.params.margin_percentile / 100.0).item()


@measure("num_params", size_adjust="sqrt")
def num_params(ctx) -> float:
    """Every parameter of the trained network (before folding), as metrics.json's model.num_params."""
    return float(sum(p.numel() for p in ctx.model.parameters()))


@measure("margin")
def margin(ctx) -> float:
    return ctx.margin


@measure("inverse_margin", size_adjust="sqrt")
def inverse_margin(ctx) -> float:
    """J: 1/γ²."""
    return 1.0 / ctx.positive_margin() ** 2
