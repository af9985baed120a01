"""My measure: the input-gradient norm, how fast the training loss changes as an input moves.

gen imports this module when a config names it (``measure.modules=[my_research.measures]``); the
decorator registers the measure, which ``measure.names`` may then list beside gen's own."""
import torch

from gen.measures import MeasureContext, NotApplicable, measure


@measure("input_gradient_norm")
def input_gradient_norm(ctx: MeasureContext) -> float:
    """Mean over the fixed training sample of ‖∇_x ℓ(f(x), y)‖₂ (per-sample losses, so each input's own gradient)."""
    if ctx.data.task != "classification":
        raise NotApplicable("defined here for classification")
    x, y = ctx.sample
    x = x.detach().clone().requires_grad_(True)
    losses = ctx.loss(ctx.twin(x), y, reduction="none")
    (gradient,) = torch.autograd.grad(losses.sum(), x)
    return gradient.flatten(1).norm(dim=1).mean().item()
