"""J's flatness measures: the largest perturbation the trained network tolerates, found by
bisection, and the PAC-Bayes-style bounds built on it (Jiang et al. 2020, Sec. C.3–C.5).

The search.  Bisection on a scale s ∈ [0, ``flatness_search_max``] for the s at which the train
accuracy (on the subsample) drops by ``flatness_target_drop`` (± ``flatness_tolerance``), at most
``flatness_search_depth`` steps, and no further once the bracket is tight (narrower than
``flatness_bracket_tolerance`` times its upper end: the drop then jumps across the target inside
it, and more steps would only move s within that relative precision); if the tolerance is never
met the last midpoint is used, with a note.
- random (PAC-Bayes): u ~ N(0, σ²) on every trainable parameter, the drop averaged over
  ``flatness_mc_samples`` draws (the same standard-normal draws at every σ, so the drop varies
  smoothly with σ).  Magnitude-aware: variance σ'²·w_i² + ε² (ε = ``magnitude_eps``).
  Under the gen and neyshabur2017 conventions σ is the standard deviation; under jiang2020 the
  noise is J's code's, ``torch.normal(0, σ²)``: σ² is the standard deviation (magnitude-aware:
  σ'²·w_i² + ε²), and the bounds still use σ.
- worst case (sharpness_*): at each α the perturbation maximises the loss in the box |ν_i| ≤ α
  (magnitude-aware: α·|w_i| + ε) by sign-gradient ascent from a seeded random point of the box.

The bounds (m training samples, w⁰ the weights at initialisation; w is every trainable parameter,
or under jiang2020 the layer weights alone, as J's ``get_weights_only``; ω its length):
  pacbayes_init       ‖w − w⁰‖²/(4σ²) + log(m/σ) + 10          (…_orig: ‖w‖ in place of ‖w − w⁰‖)
  pacbayes_flatness   1/σ²
  pacbayes_mag_init   ¼ Σ_i log[(ε² + (σ'² + 1)‖w − w⁰‖²/ω) / (ε² + σ'²(w_i − w_i⁰)²)] + log(m/σ') + 10
  pacbayes_mag_flatness 1/σ'²
  sharpness_init      ‖w − w⁰‖²·log(2ω)/(4α²) + log(m/α) + 10   sharpness_flatness 1/α²
  sharpness_mag_init  ¼ Σ_i log[(ε² + (α'² + 4 log 2ω)‖w − w⁰‖²/ω) / (ε² + α'²(w_i − w_i⁰)²)] + log(m/α') + 10
J writes log(m/σ) in every bound; for the worst-case ones σ reads α.
"""
import math
from dataclasses import dataclass
from typing import Callable

import torch

from gen.measures.evaluation import loss_and_accuracy, perturbed
from gen.measures.registry import NotApplicable, measure
from gen.measures.sharpness import ascend


@dataclass
class SearchResult:
    scale: float
    drop: float
    within_tolerance: bool
    steps: int = 0


def bisect(drop_at: Callable[[float], float], target: float, tolerance: float, upper: float,
           depth: int, bracket: float = 0.0) -> SearchResult:
    """The scale s at which drop_at(s) ≈ target, for drop_at increasing in s; stops early once
    upper − lower ≤ bracket·upper."""
    lower = 0.0
    scale = drop = float("nan")
    for step in range(1, depth + 1):
        scale = (lower + upper) / 2
        drop = drop_at(scale)
        if abs(drop - target) < tolerance:
            return SearchResult(scale, drop, True, step)
        if drop > target:
            upper = scale
        else:
            lower = scale
        if upper - lower <= bracket * upper:
            break
    return SearchResult(scale, drop, False, step)


# ---- the searches ----------------------------------------------------------------------------
def _params(ctx) -> list[torch.Tensor]:
    return [p for _, p in ctx.parameters()]


def _accuracy(ctx) -> float:
    if ctx.data.task != "classification":
        raise NotApplicable("flatness searches track the train accuracy: they need a classification task")
    return ctx.clean_loss_and_accuracy()[1]


def _perturbed_accuracy(ctx, params, deltas) -> float:
    x, y = ctx.sample
    with perturbed(params, deltas):
        return loss_and_accuracy(ctx.twin, x, y, ctx.objective, ctx.params.batch_size)[1]


def random_search(ctx, magnitude: bool) -> SearchResult:
    """σ (or σ') of the random perturbation that drops the train accuracy by the target."""
    def search():
        params, base, p = _params(ctx), _accuracy(ctx), ctx.params
        eps = p.magnitude_eps

        def drop_at(sigma: float) -> float:
            generator = ctx.generator("pacbayes_mag" if magnitude else "pacbayes")  # same draws at every σ
            accuracies = []
            for _ in range(p.flatness_mc_samples):
                noise = []
                for w in params:
                    std = noise_std(sigma, w.detach(), magnitude, eps, ctx.convention.pacbayes_sigma)
                    noise.append(std * torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype))
                accuracies.append(_perturbed_accuracy(ctx, params, noise))
            return base - sum(accuracies) / len(accuracies)

        return _searched(ctx, "magnitude-aware σ'" if magnitude else "σ", drop_at)
    return ctx.shared(f"random_search_{magnitude}", search)


def noise_std(sigma: float, w: torch.Tensor, magnitude: bool, eps: float, kind: str):
    """The perturbation's standard deviation at σ: σ, or √(σ²w² + ε²) magnitude-aware; under J's
    code (``variance``) the variance formula itself is the standard deviation: σ², or σ²w² + ε²."""
    if kind == "variance":
        return sigma ** 2 * w ** 2 + eps ** 2 if magnitude else sigma ** 2
    return torch.sqrt(sigma ** 2 * w ** 2 + eps ** 2) if magnitude else sigma


def worst_case_search(ctx, magnitude: bool) -> SearchResult:
    """α (or α') of the worst-case box perturbation that drops the train accuracy by the target."""
    def search():
        params, p = _params(ctx), ctx.params

        def drop_at(alpha: float) -> float:
            boxes = [alpha * w.detach().abs() + p.magnitude_eps if magnitude else torch.full_like(w, alpha)
                     for w in params]
            generator = ctx.generator("sharpness_mag" if magnitude else "sharpness")
            start = [b * (2 * torch.rand(b.shape, generator=generator, device=b.device, dtype=b.dtype) - 1)
                     for b in boxes]
            _, _, accuracy_there = ascend(ctx, params, boxes, start, p.sharpness_steps)
            return _accuracy(ctx) - accuracy_there

        return _searched(ctx, "worst-case magnitude-aware α'" if magnitude else "worst-case α", drop_at)
    return ctx.shared(f"worst_case_search_{magnitude}", search)


def _searched(ctx, what: str, drop_at) -> SearchResult:
    p = ctx.params
    _accuracy(ctx)
    result = bisect(drop_at, p.flatness_target_drop, p.flatness_tolerance, p.flatness_search_max,
                    p.flatness_search_depth, p.flatness_bracket_tolerance)
    if not result.within_tolerance:
        ctx.note(f"the {what} search ended at {result.scale:.4g} with an accuracy drop of {result.drop:.4f}, "
                 f"outside {p.flatness_target_drop} ± {p.flatness_tolerance} after {result.steps} steps")
    return result


# ---- the bounds -------------------------------------------------------------------------------
def _weights_only(ctx) -> bool:
    return ctx.convention.pacbayes_vector == "weights"


def _weights(ctx) -> torch.Tensor:
    """w, flattened, in float64 (the "orig" bounds need nothing else): every trainable parameter, or
    the layer weights alone."""
    def gather():
        tensors = [layer.weight for layer in ctx.layers] if _weights_only(ctx) else [p.detach() for p in _params(ctx)]
        return torch.cat([t.flatten() for t in tensors]).double()
    return ctx.shared("parameter_vector", gather)


def _distance(ctx) -> torch.Tensor:
    """w − w⁰, flattened like ``_weights``."""
    def subtract():
        initial = [layer.weight for layer in ctx.init_layers] if _weights_only(ctx) else ctx.init_parameters()
        return _weights(ctx) - torch.cat([t.flatten() for t in initial]).double()
    return ctx.shared("parameter_distance", subtract)


def _bound(squared_norm: float, scale: float, m: int, factor: float = 1.0) -> float:
    return squared_norm * factor / (4 * scale ** 2) + math.log(m / scale) + 10


def _magnitude_bound(reference: torch.Tensor, distance: torch.Tensor, scale: float, eps: float, m: int,
                     inflation: float) -> float:
    omega = reference.numel()
    numerator = eps ** 2 + (scale ** 2 + inflation) * reference.pow(2).sum() / omega
    denominator = eps ** 2 + scale ** 2 * distance.pow(2)
    return 0.25 * torch.log(numerator / denominator).sum().item() + math.log(m / scale) + 10


@measure("pacbayes_init", size_adjust="sqrt")
def pacbayes_init(ctx) -> float:
    distance = _distance(ctx)
    return _bound(distance.pow(2).sum().item(), random_search(ctx, False).scale, ctx.train_size)


@measure("pacbayes_orig", size_adjust="sqrt")
def pacbayes_orig(ctx) -> float:
    w = _weights(ctx)
    return _bound(w.pow(2).sum().item(), random_search(ctx, False).scale, ctx.train_size)


@measure("pacbayes_flatness", size_adjust="sqrt")
def pacbayes_flatness(ctx) -> float:
    return 1.0 / random_search(ctx, False).scale ** 2


@measure("pacbayes_mag_init", size_adjust="sqrt")
def pacbayes_mag_init(ctx) -> float:
    distance = _distance(ctx)
    sigma = random_search(ctx, True).scale
    return _magnitude_bound(distance, distance, sigma, ctx.params.magnitude_eps, ctx.train_size, 1.0)


@measure("pacbayes_mag_orig", size_adjust="sqrt")
def pacbayes_mag_orig(ctx) -> float:
    w, distance = _weights(ctx), _distance(ctx)
    sigma = random_search(ctx, True).scale
    return _magnitude_bound(w, distance, sigma, ctx.params.magnitude_eps, ctx.train_size, 1.0)


@measure("pacbayes_mag_flatness", size_adjust="sqrt")
def pacbayes_mag_flatness(ctx) -> float:
    return 1.0 / random_search(ctx, True).scale ** 2


@measure("sharpness_init", size_adjust="sqrt")
def sharpness_init(ctx) -> float:
    distance = _distance(ctx)
    alpha = worst_case_search(ctx, False).scale
    return _bound(distance.pow(2).sum().item(), alpha, ctx.train_size, math.log(2 * distance.numel()))


@measure("sharpness_orig", size_adjust="sqrt")
def sharpness_orig(ctx) -> float:
    w = _weights(ctx)
    alpha = worst_case_search(ctx, False).scale
    return _bound(w.pow(2).sum().item(), alpha, ctx.train_size, math.log(2 * w.numel()))


@measure("sharpness_flatness", size_adjust="sqrt")
def sharpness_flatness(ctx) -> float:
    return 1.0 / worst_case_search(ctx, False).scale ** 2


@measure("sharpness_mag_init", size_adjust="sqrt")
def sharpness_mag_init(ctx) -> float:
    distance = _distance(ctx)
    alpha = worst_case_search(ctx, True).scale
    return _magnitude_bound(distance, distance, alpha, ctx.params.magnitude_eps, ctx.train_size,
                            4 * math.log(2 * distance.numel()))


@measure("sharpness_mag_orig", size_adjust="sqrt")
def sharpness_mag_orig(ctx) -> float:
    w, distance = _weights(ctx), _distance(ctx)
    alpha = worst_case_search(ctx, True).scale
    return _magnitude_bound(w, distance, alpha, ctx.params.magnitude_eps, ctx.train_size,
                            4 * math.log(2 * w.numel()))


@measure("sharpness_mag_flatness", size_adjust="sqrt")
def sharpness_mag_flatness(ctx) -> float:
    return 1.0 / worst_case_search(ctx, True).scale ** 2
