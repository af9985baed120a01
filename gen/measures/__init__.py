"""Complexity measures of a trained network: the registry, the set check and the computation.

A measure set (``conf/measure/*.yaml``) lists measure ``names`` and their shared ``params``.
``check_set`` rejects an unknown name or a bad parameter before any work; ``make_tracker``
(in ``trajectory``) gives the training loop a per-step tracker only when a trajectory measure is
listed; ``compute_measures`` evaluates the set on the trained network, each measure timed and
each null explained in ``notes``.  One module per family:

  margin.py          margin, 1/γ², parameter count
  norms.py           S1's capacity and plain forms, its code's ℓ_{p,q}/Schatten products, distances,
                     J's norm family (spectral ones both ways: exact conv operator norm, reshaped kernel)
  path_norms.py      ℓ1/ℓ1.5/ℓ2 path norms (S1) and J's path norm
  bounds.py          Bartlett et al. 2017, Neyshabur et al. 2018, and S1's code's 2002/2015 bounds
  sharpness.py       S1's worst-case and expected sharpness
  pacbayes.py        J's PAC-Bayes and worst-case flatness searches and bounds
  hessian.py         Hessian trace (Hutchinson), top eigenvalue (power iteration)
  min_sharpness.py   S4's minimum sharpness over function-preserving layer rescalings
  trajectory.py      S5's first-layer-bias trajectory measures and the local Lipschitz estimate
  optimization.py    J's steps-to-cross-entropy measures
  certified_bound.py Dziugaite & Roy's certified PAC-Bayes bound on an optimised stochastic network
Shared machinery: registry.py, context.py (what measures read), conventions.py (gen's and the
peers' conventions, ``measure.params.convention``), folding.py (BatchNorm folding), layers.py
(weight matrices, FFT conv norms), graph.py (operations), evaluation.py (forward passes);
reference.py computes the tables of docs/measures.md.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Importing a family registers its measures (in this order, the order of known_names()).
from gen.measures import margin, norms, path_norms, bounds  # noqa: F401,I001
from gen.measures import sharpness, pacbayes, hessian, min_sharpness  # noqa: F401,I001
from gen.measures import trajectory, optimization  # noqa: F401,I001
from gen.measures import certified_bound  # noqa: F401,I001
from gen.measures.context import MeasureContext, resolve_params
from gen.measures.registry import MEASURES, NotApplicable, base_of, known_names, size_adjusted
from gen.config.base import ConfigError, check_node
from gen.config.measure import MeasureParams, check_names

__all__ = ["MeasureResults", "check_set", "compute_measures", "known_names", "trajectory"]


@dataclass
class MeasureResults:
    values: dict[str, float | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @classmethod
    def skipped(cls, measure_cfg, reason: str) -> "MeasureResults":
        names = _names(measure_cfg)
        return cls({name: None for name in names}, {}, 0.0, [f"measures not computed: {reason}"] if names else [])


def _names(measure_cfg) -> list[str]:
    names = (measure_cfg or {}).get("names") or []
    return list(dict.fromkeys(names))  # in order, once each


def check_set(measure_cfg: DictConfig) -> None:
    """Raise ConfigError for an unknown measure name or a bad parameter (one line each)."""
    check_names(measure_cfg)
    params = (measure_cfg or {}).get("params")
    if params is not None:
        node = params if isinstance(params, DictConfig) else OmegaConf.create(params)
        check_node(node, MeasureParams, "measure.params")


def compute_measures(measure_cfg, model, init_state: dict | None, data, record: Any) -> MeasureResults:
    """Every measure of the set on the trained ``model`` (left untouched: measures use an eval-mode twin)."""
    started = time.perf_counter()
    ctx = MeasureContext(model, init_state, data, record, resolve_params(measure_cfg))
    results = MeasureResults()
    for name in _names(measure_cfg):
        began = time.perf_counter()
        value, reason = _evaluate(ctx, name)
        results.values[name] = value
        results.seconds[name] = time.perf_counter() - began
        if reason is not None:
            results.notes.append(f"{name}: {reason}")
    results.notes += [f"measures: {text}" for text in ctx.notes]
    results.total_seconds = time.perf_counter() - started
    return results


def _evaluate(ctx: MeasureContext, name: str) -> tuple[float | None, str | None]:
    """(value, None) or (None, why there is none)."""
    measure, adjusted = base_of(name)
    try:
        value = float(ctx.shared(f"value:{measure.name}", lambda: float(measure.compute(ctx))))
        if adjusted:
            value = size_adjusted(value, measure.size_adjust, ctx.train_size)
    except NotApplicable as reason:
        return None, str(reason)
    if not math.isfinite(value):
        return None, f"not finite ({value}): it overflows or divides by zero"
    return value, None
