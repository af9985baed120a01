"""The registry of measures: each name maps to a function of a MeasureContext returning a float.

A family module (norms.py, sharpness.py, ...) registers its measures with ``@measure(name)``.
A function raises :class:`NotApplicable` (with the reason) where a measure has no value for the
network or task at hand; the run then records null and the reason in its notes.

Jiang et al.'s measures also come "size-adjusted" (their Sec. 6): a measure registered with
``size_adjust="log"`` (already a logarithm) gives ``NAME_size_adjusted`` = ½(v − log m); one with
``size_adjust="sqrt"`` gives √(v / m), with m the number of training samples.
"""
import math
from dataclasses import dataclass
from typing import Callable

SIZE_ADJUSTED_SUFFIX = "_size_adjusted"


class NotApplicable(Exception):
    """The measure has no value here (wrong kind of network, task or training record)."""


@dataclass(frozen=True)
class Measure:
    name: str
    compute: Callable  # (MeasureContext) -> float
    size_adjust: str | None = None   # "log" | "sqrt" | None
    needs_trajectory: bool = False   # needs per-step tracking inside the training loop


MEASURES: dict[str, Measure] = {}


def measure(name: str, size_adjust: str | None = None, needs_trajectory: bool = False):
    """Decorator: register ``fn(ctx) -> float`` as the measure ``name``."""
    assert size_adjust in (None, "log", "sqrt"), size_adjust

    def wrap(fn):
        assert name not in MEASURES, f"measure {name} registered twice"
        MEASURES[name] = Measure(name, fn, size_adjust, needs_trajectory)
        return fn
    return wrap


def code_identity(name: str) -> str:
    """Which code computed the measure ``name``, as a record keeps it beside the value: a value computed
    by other code is computed again by gen.remeasure, never mixed in silently."""
    import gen

    return f"gen {gen.__version__}"


def known_names() -> list[str]:
    """Every name a measure set may list: the registered measures and their size-adjusted forms."""
    names = list(MEASURES)
    names += [m.name + SIZE_ADJUSTED_SUFFIX for m in MEASURES.values() if m.size_adjust]
    return names


def base_of(name: str) -> tuple[Measure, bool]:
    """The registered measure behind ``name`` and whether ``name`` asks for its size-adjusted form."""
    if name in MEASURES:
        return MEASURES[name], False
    base = name.removesuffix(SIZE_ADJUSTED_SUFFIX)
    if name.endswith(SIZE_ADJUSTED_SUFFIX) and base in MEASURES and MEASURES[base].size_adjust:
        return MEASURES[base], True
    raise KeyError(name)


def size_adjusted(value: float, kind: str, train_size: int) -> float:
    """J's adjustment for the number of training samples m."""
    if kind == "log":
        return 0.5 * (value - math.log(train_size))
    if value < 0:
        raise NotApplicable(f"negative value {value:.4g} has no square root")
    return math.sqrt(value / train_size)
