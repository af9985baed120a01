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
- worst case (sharpness_*): at each α, sign-gradient ascent of the loss in the box |ν_i| ≤ α
  (magnitude-aware: α·|w_i| + ε) from a seeded random point of it; the drop is the largest
  accuracy drop at any point the ascent visits (each lies in the box, so the box's worst case
  drops the accuracy at least that much; the loss only guides the ascent).

Deciding early.  A bisection step only needs to know on which side of the band target ± tolerance
the drop lies, so an evaluation returns as soon as that is certain: the Monte-Carlo mean once the
draws still to come (accuracies in [0, 1]) can no longer bring it back into the band, the ascent at
the first point that drops the accuracy beyond the band.  Both give the step that the full
evaluation would give, so σ and α are the same; only a search that ends outside the band records a
bound on its last drop rather than the drop itself.  Far above the answer (most of the bisection's
first steps) an evaluation then costs one or two forward passes.

No answer.  Magnitude-aware perturbations keep ε at scale 0, so their searches first evaluate
scale 0.  Where ε alone already drops the accuracy beyond the band (common for the worst case: a
box of ±ε on every weight), no scale meets the target and the bounds' log(m/scale) grows without
limit: the measures are null, with the reason, under every convention, where J's code would
bisect down to its last midpoint.  That one evaluation saves the whole bisection there, and costs
one evaluation elsewhere.

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


def bisect(drop_at: Callable[[float, tuple[float, float]], float], target: float, tolerance: float, upper: float,
           depth: int, bracket: float = 0.0) -> SearchResult:
    """The scale s at which drop_at(s) ≈ target, for drop_at increasing in s; stops early once
    upper − lower ≤ bracket·upper.

    drop_at(s, band) is handed the band (target − tolerance, target + tolerance) and may return as
    soon as it knows its drop lies outside it, with a bound on that side: the bisection takes the
    same step either way."""
    lower = 0.0
    scale = drop = float("nan")
    band = (target - tolerance, target + tolerance)
    for step in range(1, depth + 1):
        scale = (lower + upper) / 2
        drop = drop_at(scale, band)
        if abs(drop - target) < tolerance:
            return SearchResult(scale, drop, True, step)
        if drop > target:
            upper = scale
        else:
            lower = scale
        if upper - lower <= bracket * upper:
            break
    return SearchResult(scale, drop, False, step)


def mean_drop(base: float, accuracies, draws: int, band: tuple[float, float]) -> float:
    """base − the mean of ``draws`` accuracies, drawn one by one from the iterator ``accuracies``,
    or a bound beyond ``band`` as soon as the draws still to come (each in [0, 1]) cannot bring
    the mean back inside it: exactly the decision all the draws would give."""
    low, high = band
    total = 0.0
    for done, accuracy in enumerate(accuracies, 1):
        total += accuracy
        least, most = base - (total + draws - done) / draws, base - total / draws
        if least > high:
            return least
        if most < low or done == draws:
            return most
    raise ValueError("fewer accuracies than draws")


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

        def accuracies(sigma: float):
            generator = ctx.generator("pacbayes_mag" if magnitude else "pacbayes")  # same draws at every σ
            for _ in range(p.flatness_mc_samples):
                noise = []
                for w in params:
                    std = noise_std(sigma, w.detach(), magnitude, eps, ctx.convention.pacbayes_sigma)
                    noise.append(std * torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype))
                yield _perturbed_accuracy(ctx, params, noise)

        def drop_at(sigma: float, band: tuple[float, float]) -> float:
            return mean_drop(base, accuracies(sigma), p.flatness_mc_samples, band)

        return _searched(ctx, "magnitude-aware σ'" if magnitude else "σ", drop_at, magnitude)
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
        params, p, base = _params(ctx), ctx.params, _accuracy(ctx)

        def drop_at(alpha: float, band: tuple[float, float]) -> float:
            boxes = [alpha * w.detach().abs() + p.magnitude_eps if magnitude else torch.full_like(w, alpha)
                     for w in params]
            generator = ctx.generator("sharpness_mag" if magnitude else "sharpness")
            start = [b * (2 * torch.rand(b.shape, generator=generator, device=b.device, dtype=b.dtype) - 1)
                     for b in boxes]
            ascent = ascend(ctx, params, boxes, start, p.sharpness_steps, stop_below=base - band[1])
            return base - ascent.lowest_accuracy

        return _searched(ctx, "worst-case magnitude-aware α'" if magnitude else "worst-case α", drop_at, magnitude)
    return ctx.shared(f"worst_case_search_{magnitude}", search)


def _searched(ctx, what: str, drop_at, magnitude: bool) -> SearchResult:
    p = ctx.params
    _accuracy(ctx)
    if magnitude:
        band = (p.flatness_target_drop - p.flatness_tolerance, p.flatness_target_drop + p.flatness_tolerance)
        _check_floor(ctx, what, drop_at(0.0, band))
    result = bisect(drop_at, p.flatness_target_drop, p.flatness_tolerance, p.flatness_search_max,
                    p.flatness_search_depth, p.flatness_bracket_tolerance)
    if not result.within_tolerance:
        side = "≥" if result.drop > p.flatness_target_drop else "≤"  # an early decision returns a bound
        ctx.note(f"the {what} search ended at {result.scale:.4g} with an accuracy drop {side} {result.drop:.4f}, "
                 f"outside {p.flatness_target_drop} ± {p.flatness_tolerance} after {result.steps} steps")
    return result


def _check_floor(ctx, what: str, drop: float) -> None:
    """A magnitude-aware perturbation keeps ε where its scale is 0: if that floor alone drops the
    accuracy beyond the target, no scale meets it (the bounds' log(m/scale) is then unbounded)."""
    p = ctx.params
    if drop > p.flatness_target_drop + p.flatness_tolerance:
        raise NotApplicable(f"the {what} search has no answer: at scale 0 the perturbation of size "
                            f"magnitude_eps = {p.magnitude_eps:g} alone drops the train accuracy by at least "
                            f"{drop:.4f}, more than {p.flatness_target_drop} + {p.flatness_tolerance}")


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
