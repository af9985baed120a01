"""A run's progress: a tqdm bar on a terminal, a few plain log lines in a log.

A bar redraws itself many times a second; written to a file (stderr redirected, a SLURM log, a
sweep's log) every redraw is kept, and one quickstart sweep wrote 632 KB of them.  So the bar is
drawn only when stderr is a terminal.  Otherwise an evaluation is logged as one line, but only the
first evaluation at or past each tenth of ``trainer.max_epochs``, or one ``QUIET_S`` seconds after the
last line: about ten lines per run, and a long run still says it is alive.  The run's final line
(gen.run) follows either way.  ``trainer.progress=false`` turns both off.
"""
import logging
import sys
import time
from typing import Callable

from tqdm import tqdm

log = logging.getLogger("gen")
LINES_PER_RUN = 10
QUIET_S = 60.0


def on_terminal() -> bool:
    return sys.stderr.isatty()


class Progress:
    """``update(n)`` after each epoch, ``report(epoch, **metrics)`` after each evaluation."""

    def __init__(self, total: int, initial: int = 0, lockstep: int = 0, enabled: bool = True,
                 terminal: bool | None = None, clock: Callable[[], float] = time.monotonic):
        self.total, self.enabled = total, enabled
        self.terminal = on_terminal() if terminal is None else terminal
        self._prefix = f"lockstep ×{lockstep}: " if lockstep else ""
        self._clock = clock
        self._bar = tqdm(total=total, initial=initial, desc=f"epochs (lockstep ×{lockstep})" if lockstep else "epochs",
                         unit="ep", leave=False, dynamic_ncols=True, disable=not (enabled and self.terminal))
        self._next_epoch = self._next_tenth(initial) if initial else 0
        self._last_line = clock()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def report(self, epoch: int, **metrics: float | None) -> None:
        if not self.enabled:
            return
        shown = {name: _fmt(value) for name, value in metrics.items()}
        if self.terminal:
            self._bar.set_postfix(**shown)
        elif epoch >= self._next_epoch or self._clock() - self._last_line >= QUIET_S:
            fields = "".join(f"  {name} {value}" for name, value in shown.items())
            log.info("%sepoch %d/%d%s", self._prefix, epoch, self.total, fields)
            self._next_epoch = self._next_tenth(epoch)
            self._last_line = self._clock()

    def _next_tenth(self, epoch: int) -> int:
        """The first epoch of the next tenth of the budget after ``epoch``."""
        step = max(1, -(-self.total // LINES_PER_RUN))
        return (epoch // step + 1) * step


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
