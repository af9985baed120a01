"""Norm-based margin bounds.

The spectrally normalised ones, as their data-dependent factor (no constants, no 1/√m):
- Bartlett, Foster & Telgarsky 2017: Π‖W_i‖_2 · (Σ_i (‖(W_i − W_i⁰)ᵀ‖_{2,1} / ‖W_i‖_2)^{2/3})^{3/2} / γ,
  where ‖Aᵀ‖_{2,1} sums the ℓ2 norms of A's rows (one per output unit).
- Neyshabur, Bhojanapalli & Srebro 2018: d·Π‖W_i‖_2 · √(Σ_i h_i‖W_i − W_i⁰‖_F² / ‖W_i‖_2²) / γ.

The three older ones exactly as S1's code (``generalization-bounds``) writes them, with its factor
α = √(d + log D) (Golowich et al. 2018's depth dependence; D the input dimension) and the sample
size m (constants and additive log terms left out, as there):
- Bartlett & Mendelson 2002 (ℓ_{1,∞}):  α·Π‖W_i‖_{1,∞} / (γ√m)
- Neyshabur et al. 2015 (Frobenius):     α·Π‖W_i‖_F / (γ√m)
- Neyshabur et al. 2015 (ℓ_{3,1.5}):     α·Π‖W_i‖_{3,1.5} / (γ·m^{1/3})
"""
import math

from gen.measures.norms import (differences, distance_frobenius, exp, frobenius, log, log_product, lpq,
                                require_positive, spectral)
from gen.measures.registry import measure


@measure("bartlett2017")
def bartlett2017(ctx) -> float:
    norms = spectral(ctx)
    require_positive(norms, "spectral norm")
    row_sums = [d.norm(dim=1).sum().item() for d in differences(ctx)]
    ratio_sum = math.fsum((r / s) ** (2.0 / 3.0) for r, s in zip(row_sums, norms))
    return exp(log_product(norms) + 1.5 * log(ratio_sum) - log(ctx.positive_margin()))


@measure("neyshabur2018")
def neyshabur2018(ctx) -> float:
    norms = spectral(ctx)
    require_positive(norms, "spectral norm")
    widths = [layer.width for layer in ctx.layers]
    ratio_sum = math.fsum(h * (f / s) ** 2 for h, f, s in zip(widths, distance_frobenius(ctx), norms))
    d = len(ctx.layers)
    return exp(math.log(d) + log_product(norms) + 0.5 * log(ratio_sum) - log(ctx.positive_margin()))


def _golowich_alpha(ctx) -> float:
    """α = √(d + log D): d layers, D the input dimension (S1's code: nchannels·img_dim²)."""
    return math.sqrt(len(ctx.layers) + math.log(ctx.sample[0][0].numel()))


def _norm_bound(ctx, norms: list[float], sample_power: float) -> float:
    """α·Π norms / (γ·m^sample_power)."""
    m = ctx.train_size
    return exp(math.log(_golowich_alpha(ctx)) + log_product(norms) - log(ctx.positive_margin())
               - sample_power * math.log(m))


@measure("bartlett_mendelson2002")
def bartlett_mendelson2002(ctx) -> float:
    return _norm_bound(ctx, lpq(ctx, 1, math.inf), 0.5)


@measure("neyshabur2015_frobenius")
def neyshabur2015_frobenius(ctx) -> float:
    return _norm_bound(ctx, frobenius(ctx), 0.5)


@measure("neyshabur2015_l3_15")
def neyshabur2015_l3_15(ctx) -> float:
    return _norm_bound(ctx, lpq(ctx, 3, 1.5), 1 / 3)
