"""Norm-based measures of the layer weights W_1 … W_d (BatchNorm folded, biases left out unless
``include_bias``): S1's capacity and plain forms, the norm products of S1's code, distances from
initialisation, and J's spectral/Frobenius family.

A conv layer's spectral norm is the exact operator norm (``fft``) or the reshaped kernel's
(``reshape``).  J reports both families side by side; so does gen: each of J's spectral measures
comes unsuffixed (the method of ``conv_spectral``, else the convention's), as ``NAME_fft`` and as
``NAME_reshaped``.  The ℓ_{p,q} and Schatten norms of S1's code always reshape the kernel, as it does.

Products are taken in log space, so deep nets do not overflow until the final exp (a value too
large for a float becomes null with a note).
"""
import math

import torch

from gen.measures.layers import spectral_norm
from gen.measures.registry import NotApplicable, measure

SPECTRAL_METHODS = {"": None, "_fft": "fft", "_reshaped": "reshape"}  # name suffix → method (None: ctx's)


# ---- per-layer norms, computed once per run ---------------------------------------------------
def frobenius(ctx) -> list[float]:
    """‖W_i‖_F."""
    return ctx.shared("frobenius", lambda: [layer.matrix(ctx.params.include_bias).norm().item()
                                            for layer in ctx.layers])


def spectral(ctx, method: str | None = None) -> list[float]:
    """‖W_i‖_2 (FFT operator norm or reshaped kernel: ``method``, else ``ctx.conv_spectral``)."""
    method = method or ctx.conv_spectral

    def compute():
        values = []
        for layer in ctx.layers:
            value, note = spectral_norm(layer, method, ctx.params.include_bias)
            if note:
                ctx.note(note)
            values.append(value)
        return values
    return ctx.shared(f"spectral_{method}", compute)


def lpq(ctx, p: float, q: float) -> list[float]:
    """‖W_i‖_{p,q}: the ℓ_p norm of each unit's incoming weights (a row), then the ℓ_q norm over units."""
    return ctx.shared(f"lpq_{p}_{q}", lambda: [layer.matrix(ctx.params.include_bias).norm(p=p, dim=1).norm(p=q).item()
                                               for layer in ctx.layers])


def schatten(ctx, p: float) -> list[float]:
    """‖W_i‖_{S_p}: the ℓ_p norm of the singular values (p = 1: the trace norm)."""
    def compute():
        return [torch.linalg.svdvals(layer.matrix(ctx.params.include_bias)).norm(p=p).item() for layer in ctx.layers]
    return ctx.shared(f"schatten_{p}", compute)


def differences(ctx) -> list:
    """W_i − W_i⁰ as matrices (with the bias column if ``include_bias``)."""
    def compute():
        include = ctx.params.include_bias
        return [layer.matrix(include) - init.matrix(include) for layer, init in zip(ctx.layers, ctx.init_layers)]
    return ctx.shared("differences", compute)


def distance_frobenius(ctx) -> list[float]:
    """‖W_i − W_i⁰‖_F."""
    return ctx.shared("distance_frobenius", lambda: [d.norm().item() for d in differences(ctx)])


def distance_spectral(ctx, method: str | None = None) -> list[float]:
    """‖W_i − W_i⁰‖_2, by the same method as ``spectral``."""
    method = method or ctx.conv_spectral

    def compute():
        include = ctx.params.include_bias
        return [spectral_norm(layer, method, include, weight=layer.weight - init.weight, bias=layer.bias - init.bias)[0]
                for layer, init in zip(ctx.layers, ctx.init_layers)]
    return ctx.shared(f"distance_spectral_{method}", compute)


def log(value: float) -> float:
    return math.log(value) if value > 0 else float("-inf")


def exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return float("inf")


def log_product(values: list[float], power: float = 1.0, factors: list[float] | None = None) -> float:
    """log Π_i factor_i · value_i^power."""
    factors = factors or [1.0] * len(values)
    return math.fsum(log(f) + power * log(v) for f, v in zip(factors, values))


# ---- S1: capacity forms (γ = margin) and plain forms -------------------------------------------
@measure("l2")
def l2(ctx) -> float:
    """(1/γ²)·Π 4‖W_i‖_F²."""
    return exp(log_product(frobenius(ctx), 2, [4.0] * len(ctx.layers)) - 2 * log(ctx.positive_margin()))


@measure("spectral")
def spectral_capacity(ctx) -> float:
    """(1/γ²)·Π h_i‖W_i‖_2²."""
    widths = [float(layer.width) for layer in ctx.layers]
    return exp(log_product(spectral(ctx), 2, widths) - 2 * log(ctx.positive_margin()))


@measure("l2_plain")
def l2_plain(ctx) -> float:
    """S1's code: Π‖W_i‖_F / γ."""
    return exp(log_product(frobenius(ctx)) - log(ctx.positive_margin()))


@measure("spectral_plain")
def spectral_plain(ctx) -> float:
    """S1's code: Π‖W_i‖_2 / γ."""
    return exp(log_product(spectral(ctx)) - log(ctx.positive_margin()))


@measure("frobenius_product")
def frobenius_product(ctx) -> float:
    """Π‖W_i‖_F."""
    return exp(log_product(frobenius(ctx)))


@measure("spectral_product")
def spectral_product(ctx) -> float:
    """Π‖W_i‖_2."""
    return exp(log_product(spectral(ctx)))


# ---- S1's code: products of ℓ_{p,q} and Schatten norms, plain (no margin) and over γ ------------
def _product_over_margin(ctx, norms: list[float]) -> float:
    return exp(log_product(norms) - log(ctx.positive_margin()))


@measure("l1_inf_product")
def l1_inf_product(ctx) -> float:
    """Π‖W_i‖_{1,∞}: the largest ℓ1 norm of a unit's incoming weights, multiplied over layers."""
    return exp(log_product(lpq(ctx, 1, math.inf)))


@measure("l3_15_product")
def l3_15_product(ctx) -> float:
    """Π‖W_i‖_{3,1.5}."""
    return exp(log_product(lpq(ctx, 3, 1.5)))


@measure("schatten_15_product")
def schatten_15_product(ctx) -> float:
    """Π‖W_i‖_{S_1.5}: the ℓ_1.5 norm of the singular values."""
    return exp(log_product(schatten(ctx, 1.5)))


@measure("trace_norm_product")
def trace_norm_product(ctx) -> float:
    """Π‖W_i‖_*: the sum of the singular values."""
    return exp(log_product(schatten(ctx, 1)))


@measure("l1_inf_plain")
def l1_inf_plain(ctx) -> float:
    """S1's code ('L_{1,inf} norm'): Π‖W_i‖_{1,∞} / γ."""
    return _product_over_margin(ctx, lpq(ctx, 1, math.inf))


@measure("l3_15_plain")
def l3_15_plain(ctx) -> float:
    """S1's code ('L_{3,1.5} norm'): Π‖W_i‖_{3,1.5} / γ."""
    return _product_over_margin(ctx, lpq(ctx, 3, 1.5))


@measure("schatten_15_plain")
def schatten_15_plain(ctx) -> float:
    """S1's code ('L_1.5 operator norm'): Π‖W_i‖_{S_1.5} / γ."""
    return _product_over_margin(ctx, schatten(ctx, 1.5))


@measure("trace_norm_plain")
def trace_norm_plain(ctx) -> float:
    """S1's code ('Trace norm'): Π‖W_i‖_* / γ."""
    return _product_over_margin(ctx, schatten(ctx, 1))


# ---- J: distances and sums ---------------------------------------------------------------------
@measure("distance_from_init", size_adjust="sqrt")
def distance_from_init(ctx) -> float:
    """Σ‖W_i − W_i⁰‖_F²."""
    return math.fsum(v ** 2 for v in distance_frobenius(ctx))


@measure("param_norm", size_adjust="sqrt")
def param_norm(ctx) -> float:
    """Σ‖W_i‖_F²."""
    return math.fsum(v ** 2 for v in frobenius(ctx))


@measure("l2_norm", size_adjust="sqrt")
def l2_norm(ctx) -> float:
    """J's L2: ‖w‖_2 = (Σ‖W_i‖_F²)^{1/2}, the weights as one vector (unsquared)."""
    return math.sqrt(param_norm(ctx))


@measure("l2_distance", size_adjust="sqrt")
def l2_distance(ctx) -> float:
    """J's L2_DIST: ‖w − w⁰‖_2 = (Σ‖W_i − W_i⁰‖_F²)^{1/2} (unsquared)."""
    return math.sqrt(distance_from_init(ctx))


# ---- J's spectral family, in each of the two spectral methods ------------------------------------
def spectral_measure(name: str, size_adjust: str):
    """Register ``fn(ctx, method)`` as ``name`` (the context's method), ``name_fft`` and ``name_reshaped``."""
    def wrap(fn):
        for suffix, method in SPECTRAL_METHODS.items():
            measure(name + suffix, size_adjust=size_adjust)(lambda ctx, method=method: fn(ctx, method))
        return fn
    return wrap


@spectral_measure("spectral_distance_from_init", size_adjust="sqrt")
def spectral_distance_from_init(ctx, method=None) -> float:
    """Σ‖W_i − W_i⁰‖_2²."""
    return math.fsum(v ** 2 for v in distance_spectral(ctx, method))


@spectral_measure("fro_over_spec", size_adjust="sqrt")
def fro_over_spec(ctx, method=None) -> float:
    """Σ‖W_i‖_F² / ‖W_i‖_2²."""
    norms = spectral(ctx, method)
    require_positive(norms, "spectral norm")
    return math.fsum((f / s) ** 2 for f, s in zip(frobenius(ctx), norms))


# ---- J: logs of products and of "sums" d·(Π ·)^{1/d} -----------------------------------------
def _log_prod(ctx, norms: list[float], over_margin: bool) -> float:
    value = log_product(norms, 2)
    return value - 2 * log(ctx.positive_margin()) if over_margin else value


def _log_sum(ctx, norms: list[float], over_margin: bool) -> float:
    d = len(ctx.layers)
    return math.log(d) + _log_prod(ctx, norms, over_margin) / d


@spectral_measure("log_prod_spec", size_adjust="log")
def log_prod_spec(ctx, method=None) -> float:
    """log Π‖W_i‖_2²."""
    return _log_prod(ctx, spectral(ctx, method), over_margin=False)


@spectral_measure("log_prod_spec_over_margin", size_adjust="log")
def log_prod_spec_over_margin(ctx, method=None) -> float:
    """log (Π‖W_i‖_2² / γ²)."""
    return _log_prod(ctx, spectral(ctx, method), over_margin=True)


@spectral_measure("log_sum_spec", size_adjust="log")
def log_sum_spec(ctx, method=None) -> float:
    """log d·(Π‖W_i‖_2²)^{1/d}."""
    return _log_sum(ctx, spectral(ctx, method), over_margin=False)


@spectral_measure("log_sum_spec_over_margin", size_adjust="log")
def log_sum_spec_over_margin(ctx, method=None) -> float:
    """log d·(Π‖W_i‖_2² / γ²)^{1/d}."""
    return _log_sum(ctx, spectral(ctx, method), over_margin=True)


@spectral_measure("log_spec_init_main", size_adjust="log")
def log_spec_init_main(ctx, method=None) -> float:
    """J's eq. 29: log (Π‖W_i‖_2² / γ²) + log Σ‖W_i − W_i⁰‖_F² / ‖W_i‖_2²."""
    norms = spectral(ctx, method)
    require_positive(norms, "spectral norm")
    ratios = math.fsum((f / s) ** 2 for f, s in zip(distance_frobenius(ctx), norms))
    return _log_prod(ctx, norms, over_margin=True) + log(ratios)


@spectral_measure("log_spec_orig_main", size_adjust="log")
def log_spec_orig_main(ctx, method=None) -> float:
    """J's eq. 30: log (Π‖W_i‖_2² / γ²) + log Σ‖W_i‖_F² / ‖W_i‖_2²."""
    return _log_prod(ctx, spectral(ctx, method), over_margin=True) + log(fro_over_spec(ctx, method))


@measure("log_prod_fro", size_adjust="log")
def log_prod_fro(ctx) -> float:
    """log Π‖W_i‖_F²."""
    return _log_prod(ctx, frobenius(ctx), over_margin=False)


@measure("log_prod_fro_over_margin", size_adjust="log")
def log_prod_fro_over_margin(ctx) -> float:
    """log (Π‖W_i‖_F² / γ²)."""
    return _log_prod(ctx, frobenius(ctx), over_margin=True)


@measure("log_sum_fro", size_adjust="log")
def log_sum_fro(ctx) -> float:
    """log d·(Π‖W_i‖_F²)^{1/d}."""
    return _log_sum(ctx, frobenius(ctx), over_margin=False)


@measure("log_sum_fro_over_margin", size_adjust="log")
def log_sum_fro_over_margin(ctx) -> float:
    """log d·(Π‖W_i‖_F² / γ²)^{1/d}."""
    return _log_sum(ctx, frobenius(ctx), over_margin=True)


def require_positive(values: list[float], what: str) -> None:
    if any(v <= 0 for v in values):
        raise NotApplicable(f"a layer has {what} 0")
