"""What became of a run: the value every job returns, from the task function through each launcher to the
sweeper (hydra_plugins/gen_launchers/gen_sweeper.py), which sets the exit status and says what failed.

The one home of a run's outcomes.  Three are the statuses a run records (gen.record: completed, diverged,
failed); ``skipped`` is a run this job did not train: another process holds it (gen.sweeps.runlock), or it
was found already complete.  The record stays the truth on disk; an outcome is what one job did with it.
This module imports neither torch nor Hydra: the launchers build outcomes in the launching process too.
"""
from dataclasses import dataclass
from pathlib import Path

from gen import record
from gen.sweeps.status import diverged_reason, error_line

COMPLETED, DIVERGED, FAILED = record.COMPLETED, record.DIVERGED, record.FAILED
SKIPPED = "skipped"
STATUSES = (COMPLETED, DIVERGED, FAILED, SKIPPED)


@dataclass(frozen=True)
class RunOutcome:
    status: str                     # one of STATUSES
    run_dir: Path
    reason: str = ""                # in words: why it diverged, failed or was skipped
    test_acc: float | None = None   # where the run has one (completed, diverged, skipped as already done)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"a run's outcome is one of {list(STATUSES)}, not {self.status!r}")

    @property
    def failed(self) -> bool:
        return self.status == FAILED


def of_record(run_dir: Path, metrics: dict) -> RunOutcome:
    """The outcome a run's checked record states (a run this job trained, or one that failed)."""
    status = metrics["status"]
    if status == FAILED:
        return RunOutcome(FAILED, run_dir, error_line(metrics))
    return RunOutcome(status, run_dir, diverged_reason(metrics) if status == DIVERGED else "",
                      metrics["final"]["test_acc"])


def skipped(run_dir: Path, reason: str, metrics: dict | None = None) -> RunOutcome:
    """A run this job did not train (``metrics``: the result it found, if any)."""
    return RunOutcome(SKIPPED, run_dir, reason, None if metrics is None else metrics["final"]["test_acc"])


def failed(run_dir: Path, reason: str) -> RunOutcome:
    return RunOutcome(FAILED, run_dir, reason)


class SweepFailed(Exception):
    """Raised by gen's sweeper in the launching process when a run of the sweep failed: every run's outcome,
    for ``launch.py`` (gen.cli) to say how many failed and exit non-zero."""

    def __init__(self, outcomes: list[RunOutcome]) -> None:
        self.outcomes = list(outcomes)
        self.failures = [o for o in self.outcomes if o.failed]
        super().__init__(f"{len(self.failures)} run(s) of this sweep failed")
