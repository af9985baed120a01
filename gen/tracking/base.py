"""The tracker interface and the flattening every tracker shares."""
from pathlib import Path
from typing import Any

STEP = "step"  # a history row's global step: the x axis of every tracker


class Tracker:
    """One tracker for one run.  Each method may raise: gen.tracking.session turns that into one
    warning and no further calls.  ``last_step`` (set before :meth:`start`) is the last step this
    tracker logged in an earlier attempt of the run (None: none), so a resumed run adds no duplicates."""
    name = ""

    def __init__(self, options: dict, run_dir: Path, sweep: str):
        self.options, self.run_dir, self.sweep = options, Path(run_dir), sweep
        self.last_step: int | None = None

    def start(self, run_id: str, config: dict, resumed: bool) -> None:
        """Open (or, ``resumed``, continue) this run's record in the tracker."""

    def log_row(self, row: dict, step: int) -> None:
        """One evaluation of the history, at its training step."""

    def end(self, metrics: dict) -> None:
        """The run's final record (its metrics.json is written): final metrics, measures; close."""

    def close(self, outcome: str) -> None:
        """The run stops without a result (``failed`` or ``interrupted``): close what is open."""


def scalars(row: dict) -> dict[str, float]:
    """The numbers of a history row worth a curve: everything numeric but the step (the x axis)."""
    return {k: float(v) for k, v in row.items()
            if k != STEP and isinstance(v, (int, float)) and not isinstance(v, bool)}


def final_values(metrics: dict) -> dict[str, float]:
    """A record's final metrics and measures as ``final.KEY`` / ``measures.NAME`` numbers (nulls left out:
    a measure that does not apply has no value to show)."""
    out = {}
    for block in ("final", "measures"):
        for key, value in (metrics.get(block) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{block}.{key}"] = float(value)
    return out


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 0.1}}`` -> ``{"optimizer.lr": 0.1}``; lists stay whole (one value)."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def hyperparameters(config: dict) -> dict[str, str | int | float | bool]:
    """The flattened config as the plain values trackers take (None and lists as text)."""
    return {k: v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in flatten(config).items()}
