"""Spectrally normalised margin bounds (their data-dependent factor, without constants).

- Bartlett, Foster & Telgarsky 2017: Π‖W_i‖_2 · (Σ_i (‖(W_i − W_i⁰)ᵀ‖_{2,1} / ‖W_i‖_2)^{2/3})^{3/2} / γ,
  where ‖Aᵀ‖_{2,1} sums the ℓ2 norms of A's rows (one per output unit).
- Neyshabur, Bhojanapalli & Srebro 2018: d·Π‖W_i‖_2 · √(Σ_i h_i‖W_i − W_i⁰‖_F² / ‖W_i‖_2²) / γ.
"""
import math

from gen.measures.norms import differences, distance_frobenius, exp, log, log_product, require_positive, spectral
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
