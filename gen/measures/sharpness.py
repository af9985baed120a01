"""S1's sharpness measures: Keskar et al.'s worst case, and PAC-Bayes' expected sharpness.

L is the training objective on the measure subsample and w every trainable parameter of the
folded twin.

- worst case ζ_α = max_{|ν_i| ≤ α(|w_i|+1)} [L(w+ν) − L(w)] / (1 + L(w)), by projected
  sign-gradient ascent from ν = 0 (``sharpness_steps`` steps of 2.5/steps of the box), keeping
  the largest loss met, so ζ_α ≥ 0.
- expected E_{ν~N(0,σ²)}[L(w+ν)] − L(w) over ``expected_samples`` draws, with σ =
  ``expected_sigma`` or, by S1's rule, σ_t = expected_sigma_scale·(10·|mean(w_t)| + 1) per tensor.
  S1's own ``calc_sharpness`` draws one perturbation and returns the perturbed minus the clean
  loss (one version of it adds a single random scalar per layer to that layer's weights only);
  gen instead draws element-wise noise on every trainable parameter, biases included, and averages
  ``expected_samples`` draws.
"""
from dataclasses import dataclass

import torch

from gen.measures.evaluation import loss_and_accuracy, loss_and_gradient, perturbed
from gen.measures.registry import measure


@dataclass
class Ascent:
    """What an ascent met: the largest loss, the ν that gave it and the accuracy there (from the same
    forward pass), and the lowest accuracy at any point it visited (every one lies in the box)."""
    loss: float
    deltas: list[torch.Tensor]
    accuracy: float | None
    lowest_accuracy: float | None


def ascend(ctx, params: list[torch.Tensor], boxes: list[torch.Tensor], start: list[torch.Tensor],
           steps: int, stop_below: float | None = None) -> Ascent:
    """Projected sign-gradient ascent of L(w + ν) over the box |ν| ≤ boxes, from ν = start.

    With ``stop_below``, it stops at the first point whose accuracy is below it: a caller that only
    asks whether the box holds such a point has its answer, and the remaining steps are saved.
    """
    x, y = ctx.sample
    step = 2.5 / steps
    best = Ascent(float("-inf"), start, None, None)
    deltas = start
    for i in range(steps + 1):
        with perturbed(params, deltas):
            if i < steps:
                loss, grads, accuracy = loss_and_gradient(ctx.twin, params, x, y, ctx.objective,
                                                          ctx.params.batch_size)
            else:
                loss, accuracy = loss_and_accuracy(ctx.twin, x, y, ctx.objective, ctx.params.batch_size)
        if loss > best.loss:
            best.loss, best.deltas, best.accuracy = loss, deltas, accuracy
        if accuracy is not None and (best.lowest_accuracy is None or accuracy < best.lowest_accuracy):
            best.lowest_accuracy = accuracy
        if stop_below is not None and accuracy is not None and accuracy < stop_below:
            break
        if i < steps:
            deltas = [torch.clamp(d + step * b * g.sign(), -b, b) for d, b, g in zip(deltas, boxes, grads)]
    return best


def training_loss(ctx) -> float:
    """L(w) on the subsample."""
    return ctx.clean_loss_and_accuracy()[0]


@measure("sharpness_worst")
def sharpness_worst(ctx) -> float:
    params = [p for _, p in ctx.parameters()]
    alpha = ctx.params.sharpness_alpha
    boxes = [alpha * (p.detach().abs() + 1) for p in params]
    base = training_loss(ctx)
    worst = ascend(ctx, params, boxes, [torch.zeros_like(p) for p in params], ctx.params.sharpness_steps).loss
    return max(worst - base, 0.0) / (1 + base)


@measure("sharpness_expected")
def sharpness_expected(ctx) -> float:
    params = [p for _, p in ctx.parameters()]
    scale, fixed = ctx.params.expected_sigma_scale, ctx.params.expected_sigma
    sigmas = [fixed if fixed is not None else scale * (10 * p.detach().mean().abs().item() + 1) for p in params]
    generator = ctx.generator("expected_sharpness")
    x, y = ctx.sample
    losses = []
    for _ in range(ctx.params.expected_samples):
        noise = [s * torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
                 for p, s in zip(params, sigmas)]
        with perturbed(params, noise):
            losses.append(loss_and_accuracy(ctx.twin, x, y, ctx.objective, ctx.params.batch_size)[0])
    return sum(losses) / len(losses) - training_loss(ctx)
