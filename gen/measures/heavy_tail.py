"""Heavy-tailed self-regularization (Martin & Mahoney 2021, *Nature Communications* 12:4122), computed
the way WeightWatcher 0.7.7's ``analyze()`` computes it, without depending on it.

Per layer: the empirical spectral density (ESD), the eigenvalues λ of WᵀW.  A Linear weight is one
matrix; a conv kernel [out, in, k_h, k_w] is k_h·k_w matrices out × in, one per kernel tap, whose
eigenvalues are pooled (WeightWatcher's ``pool=True``), each scaled by 1/√2 (its ``conv2d_norm``, so
the eigenvalues by ½).  Then:

  alpha              the power-law exponent of the ESD's tail, p(λ) ∝ λ^(−α) for λ ≥ x_min: the
                     maximum-likelihood α = 1 + n / Σ_{λ ≥ x_min} ln(λ / x_min) for every candidate
                     x_min (each eigenvalue above 10⁻⁵ but the largest), keeping the one whose fit has
                     the smallest Kolmogorov–Smirnov distance D (Clauset, Shalizi & Newman 2009)
  alpha_weighted     α · log₁₀ λ_max
  log_norm           log₁₀ Σλ (= log₁₀ ‖W‖_F²)
  log_spectral_norm  log₁₀ λ_max (= log₁₀ ‖W‖_2²)
  log_alpha_norm     log₁₀ Σ λ^α
  stable_rank        Σλ / λ_max
  mp_softrank        λ⁺ / λ_max, λ⁺ the bulk edge of the Marchenko–Pastur law fitted to the ESD

The network's value is the mean over its layers.  α, α̂, log_alpha_norm and mp_softrank need a fit:
a layer with fewer than ``MIN_FIT_EIGENVALUES`` eigenvalues above 10⁻⁵ has none and is left out of
them, with a note (WeightWatcher 0.7.7 fits such layers with a bias-corrected small-sample variant
of its own instead); the norm metrics use every layer.  Each layer's fit (x_min, D, tail size,
α) is recorded in metrics.json's ``measure_details.heavy_tail``.
"""
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn

from gen.measures.layers import WeightLayer
from gen.measures.registry import NotApplicable, measure

EIGENVALUE_FLOOR = 1e-5     # eigenvalues at or below it are not fitted (WeightWatcher's EVALS_THRESH)
MIN_FIT_EIGENVALUES = 20    # fewer: no fit (WeightWatcher's own cut-off for its standard fit)
CONV_EIGENVALUE_SCALE = 0.5  # WeightWatcher's conv2d_norm: each conv slice × 1/√2
FITTED = ("alpha", "alpha_weighted", "log_alpha_norm", "mp_softrank")  # the metrics that need the fit
_KS_CHUNK = 2 ** 22          # entries of the candidate × eigenvalue table formed at once
# The Marchenko–Pastur fit, as WeightWatcher's RMT_Util.fit_density_with_range: a linear-kernel density
# estimate of bandwidth 0.1 on 1000 points, grid points below 0.01 density ignored.
_MP_BANDWIDTH, _MP_GRID, _MP_DENSITY_FLOOR, _MP_PENALTY = 0.1, 1000, 0.01, 1000.0


@dataclass
class PowerLawFit:
    alpha: float
    x_min: float
    ks_distance: float
    tail_size: int


@dataclass
class LayerSpectrum:
    name: str
    eigenvalues: np.ndarray  # ascending
    aspect_ratio: float      # Q = N / M of each slice (N ≥ M)
    fit: PowerLawFit | None  # None: too few eigenvalues

    def metrics(self) -> dict[str, float | None]:
        lam = self.eigenvalues
        total, top = float(lam.sum()), float(lam[-1])
        values = dict.fromkeys(["log_norm", "log_spectral_norm", "stable_rank", "alpha", "alpha_weighted",
                                "log_alpha_norm", "mp_softrank"])
        if top <= 0:  # an all-zero layer has no logarithm: it enters no mean (spectra() notes it)
            return values
        values.update(log_norm=math.log10(total), log_spectral_norm=math.log10(top), stable_rank=total / top)
        if self.fit is not None:
            alpha = self.fit.alpha
            values.update(alpha=alpha, alpha_weighted=alpha * math.log10(top),
                          log_alpha_norm=math.log10(float(np.sum(lam ** alpha))),
                          mp_softrank=mp_softrank(lam, self.aspect_ratio))
        return values


# ---- the matrices and their eigenvalues -----------------------------------------------------------
def layer_matrices(layer: WeightLayer) -> tuple[list[torch.Tensor], float, float]:
    """The matrices whose eigenvalues make the layer's ESD, the factor those eigenvalues take, and the
    aspect ratio Q the Marchenko–Pastur fit assumes."""
    weight = layer.weight
    if isinstance(layer.module, nn.Linear):
        return [weight], 1.0, max(weight.shape) / min(weight.shape)
    if isinstance(layer.module, nn.Conv1d):
        weight = weight[:, :, None, :]  # one row of taps
    out_channels, in_channels, kh, kw = weight.shape
    slices = [weight[:, :, i, j] for i in range(kh) for j in range(kw)]
    if out_channels + in_channels >= kh + kw:
        q = max(out_channels, in_channels) / min(out_channels, in_channels)
    else:  # WeightWatcher reads such a kernel as "channels first" and flips it back, leaving Q = out/in
        q = out_channels / in_channels
    return slices, CONV_EIGENVALUE_SCALE, q


def eigenvalues(layer: WeightLayer) -> tuple[np.ndarray, float]:
    """The pooled eigenvalues of WᵀW over the layer's matrices (ascending), and the aspect ratio Q."""
    matrices, scale, q = layer_matrices(layer)
    singular = torch.linalg.svdvals(torch.stack(matrices).double())  # [slices, min(out, in)]
    return np.sort((singular.pow(2) * scale).flatten().cpu().numpy()), q


# ---- the power-law fit -----------------------------------------------------------------------------
def fit_power_law(values: np.ndarray) -> PowerLawFit:
    """Clauset et al.'s fit of a continuous power law to ``values`` (ascending, all > 0): the MLE α for
    each candidate x_min = values[i] (i < n − 1), the KS distance D_i = max_{j ≥ i} |F̂(x_j) − F(x_j)|
    with F(x) = 1 − (x/x_min)^(1−α) and F̂ the empirical CDF at the left of each point ((j − i)/n_i,
    as WeightWatcher writes it), and the candidate of smallest D (D = 1 where α ≤ 1)."""
    x = np.asarray(values, dtype=np.float64)
    n_all = len(x)
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]                     # Σ_{j ≥ i} ln x_j
    candidates = np.arange(n_all - 1)
    tail = (n_all - candidates).astype(np.float64)
    with np.errstate(divide="ignore"):
        alphas = 1 + tail / (suffix[:-1] - tail * logs[:-1])
    distances = np.ones(n_all - 1)
    rows = max(1, _KS_CHUNK // n_all)
    for start in range(0, n_all - 1, rows):
        i = candidates[start:start + rows]
        valid = alphas[i] > 1
        if not valid.any():
            continue
        i, a = i[valid], alphas[i[valid]]
        j = np.arange(n_all)
        offset = j[None, :] - i[:, None]                                  # j − i
        ratio = np.exp((logs[None, :] - logs[i, None]) * (1 - a[:, None]))  # (x_j / x_min)^(1−α)
        gap = np.abs(1 - ratio - offset / tail[i, None])
        gap[offset < 0] = 0                                               # only the tail counts
        distances[i] = gap.max(axis=1)
    best = int(np.argmin(distances))
    return PowerLawFit(alpha=float(alphas[best]), x_min=float(x[best]), ks_distance=float(distances[best]),
                       tail_size=int(n_all - best))


# ---- the Marchenko–Pastur fit ----------------------------------------------------------------------
def mp_softrank(values: np.ndarray, aspect_ratio: float) -> float:
    """λ⁺/λ_max for the Marchenko–Pastur law fitted to the ESD rescaled to mean 1 (WeightWatcher's
    ``mp_fit``): σ by a grid search over [0.05 s, 2 s) in steps of 0.01 s (s = √λ_max/(1 + 1/√Q)),
    polished by Nelder–Mead (scipy's ``brute``), minimising the squared distance between the MP density
    and a linear-kernel density estimate; for Q = 1 the quarter-circle law of the singular values."""
    q = aspect_ratio
    scaled = values * (len(values) / values.sum())
    top = float(scaled.max())
    fitted = np.sqrt(scaled) if q == 1 else scaled
    grid = np.linspace(0, fitted.max() + 0.5, _MP_GRID)
    density = _linear_kde(fitted, grid, _MP_BANDWIDTH)
    keep = density > _MP_DENSITY_FLOOR
    grid, density = grid[keep], density[keep]
    mode = grid[np.argmax(density)]

    def residual(p):
        sigma = float(np.asarray(p).ravel()[0])
        with np.errstate(all="ignore"):
            if q == 1:  # as WeightWatcher's quarter_circle_fun, which leaves σ out of the root
                model = np.nan_to_num(1 / (np.pi * sigma ** 2) * np.sqrt(4 - grid ** 2))
            else:
                upper, lower = (sigma * (1 + 1 / math.sqrt(q))) ** 2, (sigma * (1 - 1 / math.sqrt(q))) ** 2
                if upper < mode or upper > grid.max() or lower > mode:
                    return _MP_PENALTY ** 2 * len(grid)
                model = np.nan_to_num(1 / (2 * np.pi * sigma ** 2 * grid / q)
                                      * np.sqrt((upper - grid) * (grid - lower)))
        return float(np.sum((model - density) ** 2))

    s = math.sqrt(top) / (1 + 1 / math.sqrt(q))
    from scipy import optimize  # here, not at the top: scipy.optimize costs every launch ~0.8 s of import

    sigma = float(np.asarray(optimize.brute(residual, (slice(0.05 * s, 2.0 * s, 0.01 * s),)))[0])
    return (sigma * (1 + 1 / math.sqrt(q))) ** 2 / top


def _linear_kde(points: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """(1/(n h)) Σ_i max(0, 1 − |g − p_i|/h) at each grid point g (scikit-learn's 'linear' kernel)."""
    order = np.sort(points)
    total = np.zeros_like(grid)
    for start in range(0, len(order), max(1, _KS_CHUNK // len(grid))):
        chunk = order[start:start + _KS_CHUNK // len(grid)]
        total += np.clip(1 - np.abs(grid[:, None] - chunk[None, :]) / bandwidth, 0, None).sum(axis=1)
    return total / (len(points) * bandwidth)


# ---- the network -----------------------------------------------------------------------------------
def layer_spectrum(layer: WeightLayer) -> LayerSpectrum:
    values, q = eigenvalues(layer)
    fitted = values[values > EIGENVALUE_FLOOR]
    fit = fit_power_law(fitted) if len(fitted) >= MIN_FIT_EIGENVALUES else None
    return LayerSpectrum(layer.name, values, q, fit)


def spectra(ctx) -> list[LayerSpectrum]:
    """Every layer's spectrum and fit, computed once; the fits' diagnostics go to the record."""
    def compute():
        found = [layer_spectrum(layer) for layer in ctx.layers]
        unfitted = [s.name for s in found if s.fit is None]
        zero = [s.name for s in found if s.eigenvalues[-1] <= 0]
        if zero:
            ctx.note(f"heavy-tail measures leave out {', '.join(zero)}: all-zero weights")
        if unfitted:
            ctx.note(f"heavy-tail fits leave out {', '.join(unfitted)}: fewer than {MIN_FIT_EIGENVALUES} "
                     f"eigenvalues above {EIGENVALUE_FLOOR:g}")
        ctx.detail("heavy_tail", {s.name: {"eigenvalues": len(s.eigenvalues),
                                           **(asdict(s.fit) if s.fit else {"alpha": None})} for s in found})
        return found
    return ctx.shared("heavy_tail_spectra", compute)


def _layer_mean(ctx, metric: str) -> float:
    values = [s.metrics()[metric] for s in spectra(ctx)]
    values = [v for v in values if v is not None]
    if not values:
        raise NotApplicable(f"no layer has {MIN_FIT_EIGENVALUES} eigenvalues above {EIGENVALUE_FLOOR:g} "
                            f"for a power-law fit" if metric in FITTED else "every layer's weights are zero")
    return sum(values) / len(values)


def _register(name: str, doc: str):
    @measure(name)
    def compute(ctx) -> float:
        return _layer_mean(ctx, name)
    compute.__doc__ = doc


for _name, _doc in [("alpha", "mean power-law exponent of the layers' ESD tails"),
                    ("alpha_weighted", "mean α·log₁₀ λ_max"),
                    ("log_norm", "mean log₁₀ ‖W‖_F²"),
                    ("log_spectral_norm", "mean log₁₀ ‖W‖_2²"),
                    ("log_alpha_norm", "mean log₁₀ Σ λ^α"),
                    ("stable_rank", "mean ‖W‖_F² / ‖W‖_2²"),
                    ("mp_softrank", "mean λ⁺/λ_max of the Marchenko–Pastur fit")]:
    _register(_name, _doc)
