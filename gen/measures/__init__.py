"""Complexity measures of a trained network: the registry, the set check and the computation.

A measure set (``conf/measure/*.yaml``) lists measure ``names`` and their shared ``params``.
``check_set`` rejects an unknown name or a bad parameter before any work; ``watch_trajectory``
(in ``trajectory``) gives the training loop a per-step watch only when a trajectory measure is
listed; ``compute_measures`` evaluates the set on the trained network, each measure timed and
each null explained in ``notes``.  One module per family:

  margin.py          margin, 1/γ², parameter count
  norms.py           S1's capacity and plain forms, its code's ℓ_{p,q}/Schatten products, distances,
                     J's norm family (spectral ones both ways: exact conv operator norm, reshaped kernel)
  path_norms.py      ℓ1/ℓ1.5/ℓ2 path norms (S1) and J's path norm
  bounds.py          Bartlett et al. 2017, Neyshabur et al. 2018, and S1's code's 2002/2015 bounds
  sharpness.py       S1's worst-case and expected sharpness
  pacbayes.py        J's PAC-Bayes and worst-case flatness searches and bounds
  hessian.py         Hessian trace and top eigenvalue, and the spectral density (each one's method: its docstring)
  min_sharpness.py   S4's minimum sharpness over function-preserving layer rescalings
  trajectory.py      S5's first-layer-bias trajectory measures and the local Lipschitz estimate
  optimization.py    J's steps-to-cross-entropy measures
  heavy_tail.py      heavy-tailed self-regularization: the layers' ESD power-law fits (WeightWatcher)
  pgdl.py            the PGDL 2020 winners' representation measures (Davies–Bouldin, mixup, augmentation)
  certified_bound.py Dziugaite & Roy's certified PAC-Bayes bound on an optimised stochastic network
Shared machinery: registry.py, context.py (what measures read), conventions.py (gen's and the
peers' conventions, ``measure.params.convention``), folding.py (BatchNorm folding), layers.py
(weight matrices, FFT conv norms), graph.py (operations), evaluation.py (forward passes);
reference.py computes the tables of docs/measures.md.

The public API for a researcher's own measures (stable; README "Your own measure, model and data"):
``measure`` (the decorator), ``MeasureContext`` (what a measure reads) and ``NotApplicable``.
"""
import dataclasses
import logging
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Importing a family registers its measures (in this order, the order of known_names()).
from gen.measures import margin, norms, path_norms, bounds  # noqa: F401,I001
from gen.measures import sharpness, pacbayes, hessian, min_sharpness  # noqa: F401,I001
from gen.measures import trajectory, optimization  # noqa: F401,I001
from gen.measures import heavy_tail, pgdl  # noqa: F401,I001
from gen.measures import certified_bound  # noqa: F401,I001
from gen.measures.context import MeasureContext, resolve_params
from gen.measures.registry import NotApplicable, base_of, code_identity, known_names, measure, size_adjusted
from gen.config.base import check_node
from gen.config.measure import MeasureParams, check_names

__all__ = ["MeasureContext", "MeasureResults", "NotApplicable", "check_set", "compute_measures", "known_names",
           "measure", "trajectory"]
log = logging.getLogger("gen")


@dataclass
class MeasureResults:
    """The values of a measure set and what a record keeps beside them (gen.record.add_measures): the
    resolved parameters, the code that computed each value, its seconds, and why a value is null."""
    values: dict[str, float | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)   # name -> why its value is null
    params: dict = field(default_factory=dict)              # measure.params, resolved
    codes: dict[str, str] = field(default_factory=dict)     # name -> registry.code_identity(name)
    details: dict[str, Any] = field(default_factory=dict)  # family → diagnostics (metrics.json measure_details)

    @classmethod
    def skipped(cls, measure_cfg, reason: str) -> "MeasureResults":
        names = _names(measure_cfg)
        return cls({name: None for name in names}, {}, 0.0, [f"measures not computed: {reason}"] if names else [],
                   {name: reason for name in names}, dataclasses.asdict(resolve_params(measure_cfg)),
                   {name: code_identity(name) for name in names})


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


def compute_measures(measure_cfg, model, init_state: dict | None, data, record: Any,
                     only: list[str] | None = None) -> MeasureResults:
    """Every measure of the set (or those of it in ``only``) on the trained ``model`` (left untouched:
    measures use an eval-mode twin)."""
    started = time.perf_counter()
    ctx = MeasureContext(model, init_state, data, record, resolve_params(measure_cfg))
    results = MeasureResults(params=dataclasses.asdict(ctx.params))
    for name in _names(measure_cfg):
        if only is not None and name not in only:
            continue
        began = time.perf_counter()
        value, reason = _evaluate(ctx, name)
        results.values[name] = value
        results.seconds[name] = time.perf_counter() - began
        results.codes[name] = code_identity(name)
        if reason is not None:
            results.reasons[name] = reason
            results.notes.append(f"{name}: {reason}")
    results.notes += [f"measures: {text}" for text in ctx.notes]
    results.details = ctx.details
    results.total_seconds = time.perf_counter() - started
    return results


def _evaluate(ctx: MeasureContext, name: str) -> tuple[float | None, str | None]:
    """(value, None) or (None, why there is none).  A user's measure that raises or returns something other
    than a number gets null and the reason (one line in the log too); gen's own raise (a bug to see)."""
    measure, adjusted = base_of(name)
    try:
        value = ctx.shared(f"value:{measure.name}", lambda: _as_number(measure.compute(ctx)))
        if adjusted:
            value = size_adjusted(value, measure.size_adjust, ctx.train_size)
    except NotApplicable as reason:
        return None, str(reason)
    except Exception as error:  # noqa: BLE001
        if measure.builtin:
            raise
        detail = str(error).splitlines()[0] if str(error) else ""
        reason = (f"{detail} (measure from {measure.module})" if isinstance(error, NotANumber)
                  else f"raised {type(error).__name__}: {detail} (measure from {measure.module})")
        log.warning("measure %s: %s; recorded null, every other value kept", name, reason)
        return None, reason
    if not math.isfinite(value):
        return None, f"not finite ({value}): it overflows or divides by zero"
    return value, None


class NotANumber(TypeError):
    """A measure returned something that is not one number."""


def _as_number(value: Any) -> float:
    """``value`` as a float: a real number (not a bool) or a one-element tensor or array."""
    if hasattr(value, "numel") or hasattr(value, "size") and hasattr(value, "item"):  # torch or numpy
        count = value.numel() if hasattr(value, "numel") else value.size
        if count != 1:
            raise NotANumber(f"returned a {type(value).__name__} of {count} elements, not one number")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise NotANumber(f"returned {type(value).__name__} {str(value)[:40]!r}, not a number")
    return float(value)
