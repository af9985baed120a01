"""Norm-based measures of the layer weights W_1 … W_d (BatchNorm folded, biases left out unless
``include_bias``): S1's capacity and plain forms, the norm products, distances from
initialisation, and J's spectral/Frobenius family.

Products are taken in log space, so deep nets do not overflow until the final exp (a value too
large for a float becomes null with a note).
"""
import math

from gen.measures.layers import spectral_norm
from gen.measures.registry import NotApplicable, measure


# ---- per-layer norms, computed once per run ---------------------------------------------------
def frobenius(ctx) -> list[float]:
    """‖W_i‖_F."""
    return ctx.shared("frobenius", lambda: [layer.matrix(ctx.params.include_bias).norm().item()
                                            for layer in ctx.layers])


def spectral(ctx) -> list[float]:
    """‖W_i‖_2 (FFT operator norm or reshaped kernel, per ``conv_spectral``)."""
    def compute():
        values = []
        for layer in ctx.layers:
            value, note = spectral_norm(layer, ctx.params.conv_spectral, ctx.params.include_bias)
            if note:
                ctx.note(note)
            values.append(value)
        return values
    return ctx.shared("spectral", compute)


def differences(ctx) -> list:
    """W_i − W_i⁰ as matrices (with the bias column if ``include_bias``)."""
    def compute():
        include = ctx.params.include_bias
        return [layer.matrix(include) - init.matrix(include) for layer, init in zip(ctx.layers, ctx.init_layers)]
    return ctx.shared("differences", compute)


def distance_frobenius(ctx) -> list[float]:
    """‖W_i − W_i⁰‖_F."""
    return ctx.shared("distance_frobenius", lambda: [d.norm().item() for d in differences(ctx)])


def distance_spectral(ctx) -> list[float]:
    """‖W_i − W_i⁰‖_2, by the same method as ``spectral``."""
    def compute():
        method, include = ctx.params.conv_spectral, ctx.params.include_bias
        return [spectral_norm(layer, method, include, weight=layer.weight - init.weight, bias=layer.bias - init.bias)[0]
                for layer, init in zip(ctx.layers, ctx.init_layers)]
    return ctx.shared("distance_spectral", compute)


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


# ---- J: distances and sums ---------------------------------------------------------------------
@measure("distance_from_init", size_adjust="sqrt")
def distance_from_init(ctx) -> float:
    """Σ‖W_i − W_i⁰‖_F²."""
    return math.fsum(v ** 2 for v in distance_frobenius(ctx))


@measure("spectral_distance_from_init", size_adjust="sqrt")
def spectral_distance_from_init(ctx) -> float:
    """Σ‖W_i − W_i⁰‖_2²."""
    return math.fsum(v ** 2 for v in distance_spectral(ctx))


@measure("param_norm", size_adjust="sqrt")
def param_norm(ctx) -> float:
    """Σ‖W_i‖_F²."""
    return math.fsum(v ** 2 for v in frobenius(ctx))


@measure("fro_over_spec", size_adjust="sqrt")
def fro_over_spec(ctx) -> float:
    """Σ‖W_i‖_F² / ‖W_i‖_2²."""
    require_positive(spectral(ctx), "spectral norm")
    return math.fsum((f / s) ** 2 for f, s in zip(frobenius(ctx), spectral(ctx)))


# ---- J: logs of products and of "sums" d·(Π ·)^{1/d} -----------------------------------------
def _log_prod(ctx, norms, over_margin: bool) -> float:
    value = log_product(norms(ctx), 2)
    return value - 2 * log(ctx.positive_margin()) if over_margin else value


def _log_sum(ctx, norms, over_margin: bool) -> float:
    d = len(ctx.layers)
    return math.log(d) + _log_prod(ctx, norms, over_margin) / d


@measure("log_prod_spec", size_adjust="log")
def log_prod_spec(ctx) -> float:
    """log Π‖W_i‖_2²."""
    return _log_prod(ctx, spectral, over_margin=False)


@measure("log_prod_spec_over_margin", size_adjust="log")
def log_prod_spec_over_margin(ctx) -> float:
    """log (Π‖W_i‖_2² / γ²)."""
    return _log_prod(ctx, spectral, over_margin=True)


@measure("log_sum_spec", size_adjust="log")
def log_sum_spec(ctx) -> float:
    """log d·(Π‖W_i‖_2²)^{1/d}."""
    return _log_sum(ctx, spectral, over_margin=False)


@measure("log_sum_spec_over_margin", size_adjust="log")
def log_sum_spec_over_margin(ctx) -> float:
    """log d·(Π‖W_i‖_2² / γ²)^{1/d}."""
    return _log_sum(ctx, spectral, over_margin=True)


@measure("log_prod_fro", size_adjust="log")
def log_prod_fro(ctx) -> float:
    """log Π‖W_i‖_F²."""
    return _log_prod(ctx, frobenius, over_margin=False)


@measure("log_prod_fro_over_margin", size_adjust="log")
def log_prod_fro_over_margin(ctx) -> float:
    """log (Π‖W_i‖_F² / γ²)."""
    return _log_prod(ctx, frobenius, over_margin=True)


@measure("log_sum_fro", size_adjust="log")
def log_sum_fro(ctx) -> float:
    """log d·(Π‖W_i‖_F²)^{1/d}."""
    return _log_sum(ctx, frobenius, over_margin=False)


@measure("log_sum_fro_over_margin", size_adjust="log")
def log_sum_fro_over_margin(ctx) -> float:
    """log d·(Π‖W_i‖_F² / γ²)^{1/d}."""
    return _log_sum(ctx, frobenius, over_margin=True)


def require_positive(values: list[float], what: str) -> None:
    if any(v <= 0 for v in values):
        raise NotApplicable(f"a layer has {what} 0")
