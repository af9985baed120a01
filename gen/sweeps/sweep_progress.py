"""A sweep's progress, one line per finished run, for the launchers that run the sweep from this process
(``parallel``, ``sequential``):

    sweep: 3/10 runs finished (2 trained, 1 failed, 0 skipped), about 4m10s left

A run's outcome is read from its folder once its job returns: a metrics.json this sweep's processes wrote
(gen.record.written_here) is ``trained`` (a lockstep member's, written by its leader, too) or ``failed``;
one already there (a relaunch skips results) or none (another process holds the run) is ``skipped``; one
that another launch wrote meanwhile (it held the run while this sweep passed) is counted apart, "by another
process", and only where there is one.  The estimate is the
wall time per run that did work so far times the runs left, so it holds for parallel workers as well.
"""
import logging
import time
from pathlib import Path
from typing import Callable, Iterable

from gen import record

log = logging.getLogger("gen.sweep")
TRAINED, FAILED, SKIPPED, ELSEWHERE = "trained", "failed", "skipped", "by another process"


class SweepProgress:
    def __init__(self, run_dirs: Iterable[Path], clock: Callable[[], float] = time.monotonic):
        self.before = {Path(d): _stamp(Path(d)) for d in run_dirs}
        self.total = len(self.before)
        self.counts = {TRAINED: 0, FAILED: 0, SKIPPED: 0, ELSEWHERE: 0}
        self.clock, self.started = clock, clock()

    def finished(self, run_dir: Path, here: bool | None = None) -> str:
        """Count the run in ``run_dir`` as finished, log the sweep's line and return it; ``here``: whether
        this sweep wrote its record (default: whether this process did)."""
        self.counts[self.outcome(Path(run_dir), here)] += 1
        line = self.line()
        log.info(line)
        return line

    def outcome(self, run_dir: Path, here: bool | None = None) -> str:
        if _stamp(run_dir) == self.before.get(run_dir):  # nothing written by this sweep
            return SKIPPED
        if not (record.written_here(run_dir) if here is None else here):
            return ELSEWHERE
        status = record.read(run_dir).status
        return TRAINED if status in record.RESULT_STATUSES else FAILED

    def line(self) -> str:
        done = sum(self.counts.values())
        c = self.counts
        elsewhere = f", {c[ELSEWHERE]} trained by another process" if c[ELSEWHERE] else ""
        head = (f"sweep: {done}/{self.total} runs finished ({c[TRAINED]} trained, {c[FAILED]} failed, "
                f"{c[SKIPPED]} skipped{elsewhere})")
        elapsed = self.clock() - self.started
        if done >= self.total:
            return f"{head}, in {duration(elapsed)}"
        worked = c[TRAINED] + c[FAILED]
        if not worked:
            return f"{head}, time left unknown until a run has trained"
        return f"{head}, about {duration(elapsed / worked * (self.total - done))} left"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _stamp(run_dir: Path) -> int | None:
    try:
        return (run_dir / record.METRICS_FILE).stat().st_mtime_ns
    except OSError:
        return None
