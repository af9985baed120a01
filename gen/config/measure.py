"""Schema of the ``measure`` group: a named set of measures and the parameters they share.

Every set (``conf/measure/*.yaml``) lists every parameter below, so any of them can be
overridden on the command line (``measure.params.margin_percentile=5``).  Which measure names
exist is the measure registry's business; the ``all`` set lists gen's own, which :func:`check_names` reads
(before torch loads).  ``modules`` names a researcher's own Python modules (importable: on ``PYTHONPATH``
or installed); :func:`check_names` imports them first, so the measures they register
(``@gen.measures.measure``) may be listed in ``names`` too.
"""
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from gen.config.base import SEED_MAX, ConfigError, register, spec

# The rows of gen.measures.conventions.CONVENTIONS (importing it here would be circular; a test keeps
# the two equal).
CONVENTION_NAMES = ["gen", "jiang2020", "neyshabur2017"]
# The measures that watch training (gen.measures.registry's ``needs_trajectory``: a per-step tracker in
# the training loop), named here, where no torch is imported, because they stay in the run id
# (gen.sweeps.run_id); tests/test_measures_sets.py keeps this list equal to the registry's.
TRACKED_MEASURES = ("bias_trajectory", "bias_variance")


@dataclass
class MeasureParams:
    # --- shared by every measure -----------------------------------------------------------
    margin_percentile: float = spec(ge=0, le=100, help="q: the margin is the q-th percentile of "
                                                             "f(x)[y] - max_{j≠y} f(x)[j] (S1: 5, J: 10)")
    max_samples: int = spec(ge=1, help="measures evaluate on a fixed, seeded subsample of the train set")
    seed: int = spec(ge=0, le=SEED_MAX, help="seed of the subsample and of every random draw a measure makes")
    batch_size: int = spec(ge=1, help="evaluation batch size (no-grad forward passes)")
    convention: str = spec(choices=CONVENTION_NAMES,
                           help="whose conventions the measures follow (gen.measures.conventions): gen's, "
                                "Jiang et al. 2020's code (jiang2020) or Neyshabur et al.'s code (neyshabur2017)")
    # --- norms ---------------------------------------------------------------------------------
    include_bias: bool = spec(help="norms and path sums include biases (appended as a column)")
    conv_spectral: str | None = spec(choices=["fft", "reshape"],
                                     help="spectral norm of a conv in the unsuffixed spectral measures: exact "
                                          "operator norm via FFT (Sedghi et al.) or the kernel reshaped to "
                                          "out × (in·k·k); null: the convention's")
    # --- S1 sharpness --------------------------------------------------------------------------
    sharpness_alpha: float = spec(gt=0, help="worst-case box |ν_i| ≤ α(|w_i| + 1)")
    sharpness_steps: int = spec(ge=1, help="projected gradient-ascent steps of every worst-case search")
    expected_sigma: float | None = spec(gt=0, help="noise std of expected sharpness; null: S1's rule "
                                                         "σ = expected_sigma_scale·(10·|mean w| + 1) per tensor")
    expected_sigma_scale: float = spec(gt=0)
    expected_samples: int = spec(ge=1, help="Monte-Carlo samples of expected sharpness")
    # --- J's flatness measures: σ (PAC-Bayes) and α (worst case) found by bisection -----------
    flatness_target_drop: float = spec(gt=0, lt=1, help="train-accuracy drop the search aims for")
    flatness_tolerance: float = spec(gt=0, help="the search stops within this of the target drop")
    flatness_search_depth: int = spec(ge=1, help="bisection steps")
    flatness_bracket_tolerance: float = spec(ge=0, help="the search also stops once its bracket is narrower "
                                                              "than this fraction of its upper end (0: never)")
    flatness_search_max: float = spec(gt=0, help="the bisection searches [0, this]")
    flatness_mc_samples: int = spec(ge=1, help="Monte-Carlo samples per σ (PAC-Bayes)")
    magnitude_eps: float = spec(ge=0, help="ε of the magnitude-aware noise: variance σ'²·w² + ε²")
    # --- curvature (S4) --------------------------------------------------------------------------
    hessian_probes: int = spec(ge=1, help="Rademacher probes of Hutchinson's trace estimate")
    power_iterations: int = spec(ge=1, help="most Hessian-vector products (Lanczos steps) for the top "
                                                 "Hessian eigenvalue")
    power_tolerance: float = spec(gt=0, help="Lanczos stops when the top Ritz value changes by less than "
                                                   "this (relative)")
    min_sharpness_iterations: int = spec(ge=1, help="L-BFGS iterations over the log layer scales")
    # --- certified PAC-Bayes bound (Dziugaite & Roy 2017; gen.measures.certified_bound) ---------------
    certified_steps: int = spec(ge=0, help="RMSprop steps optimising the Gaussian posterior against the bound")
    certified_lr: float = spec(gt=0, help="RMSprop learning rate of those steps (on μ, log s and log λ)")
    certified_batch_size: int = spec(ge=1, help="minibatch of each step (samples of the measures' subsample)")
    certified_mc_draws: int = spec(ge=1, help="n: weight draws estimating the stochastic network's errors")
    certified_delta: float = spec(gt=0, lt=1, help="δ: the PAC-Bayes-kl bound fails with probability ≤ δ")
    certified_delta_prime: float = spec(gt=0, lt=1, help="δ′: the Monte-Carlo estimate's upper bound fails with "
                                                         "probability ≤ δ′")
    certified_prior_c: float = spec(gt=0, help="c of the prior-variance grid λ_j = c·exp(−j/b)")
    certified_prior_b: float = spec(gt=0, help="b of the prior-variance grid λ_j = c·exp(−j/b)")
    certified_prior_variance_init: float = spec(gt=0, help="λ where the optimisation starts (below c)")


ALL_SET = Path(__file__).resolve().parents[2] / "conf" / "measure" / "all.yaml"


@functools.lru_cache(maxsize=1)
def known_measures() -> tuple[str, ...]:
    """Every measure's name, as the ``all`` set lists them (tests/test_measures_sets.py keeps that list
    equal to the registry's): read from the YAML, so a wrong name is refused before torch loads."""
    return tuple(OmegaConf.load(ALL_SET).names)


def check_names(measure_cfg) -> None:
    """Import ``measure.modules``, then refuse a name neither gen nor those modules registered."""
    known = known_measures()
    added = import_measure_modules((measure_cfg or {}).get("modules") or [])
    for i, name in enumerate((measure_cfg or {}).get("names") or []):
        if name not in known and name not in added:
            users = f"; from measure.modules: {', '.join(added)}" if added else ""
            raise ConfigError(f"measure.names[{i}]", name,
                              f"unknown measure; known measures: {', '.join(known)}{users}")


def import_measure_modules(modules) -> list[str]:
    """Import each user module (registering its measures); the names users' modules registered.  A module
    that cannot be imported, or that registers a name already taken, is a config error."""
    if not modules:
        return []
    from gen.measures.registry import RegistrationError, user_names  # torch: only when a user module is named

    for i, module in enumerate(modules):
        key = f"measure.modules[{i}]"
        if not isinstance(module, str) or not module:
            raise ConfigError(key, module, "expected a module name (my_package.my_measures)")
        try:
            importlib.import_module(module)
        except RegistrationError as error:
            raise ConfigError(key, module, str(error)) from None
        except Exception as error:  # noqa: BLE001 — the user's code: whatever it raises, one line
            detail = str(error).splitlines()[0] if str(error) else ""
            raise ConfigError(key, module, f"cannot be imported ({type(error).__name__}: {detail}); put its folder "
                                           f"on PYTHONPATH or install its package") from None
    return user_names()


@register("measure", "*")
@dataclass
class MeasureSetConfig:
    name: str
    names: list[str] = spec(min_length=0)  # []: no measures (measure=none)
    modules: list[str] = spec(min_length=0, help="your own measures' modules, imported before names are "
                                                 "checked (gen.measures.measure)")
    params: MeasureParams
