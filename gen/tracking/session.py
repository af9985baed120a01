"""A run's trackers, guarded: the one place gen.run and the training loop talk to them.

Guarantees: a tracker that raises (a full disk, a bad URI, a crash in its library) is reported in one
warning line and called no more for this run; the run goes on and metrics.json is never touched.  A
resumed run logs as the same run: ``tracking.json`` in the run folder keeps each tracker's last logged
step, and only rows past it are logged (the rows a resumed run recomputes are the ones it logged).
"""
import json
import logging
import shutil
from pathlib import Path
from typing import Callable

from gen import atomic
from gen.tracking.base import STEP, Tracker

log = logging.getLogger("gen")
STATE_FILE = "tracking.json"


def _tracker_class(name: str) -> type[Tracker]:
    # imported when chosen: the core runs without the trackers' libraries (the loggers extra)
    if name == "tensorboard":
        from gen.tracking.tensorboard import TensorBoard as cls
    elif name == "mlflow":
        from gen.tracking.mlflow import Mlflow as cls
    elif name == "wandb":
        from gen.tracking.wandb import Wandb as cls
    elif name == "csv":
        from gen.tracking.csv import Csv as cls
    elif name == "comet":
        from gen.tracking.comet import Comet as cls
    else:  # gen.config.logger refuses other names before a run starts
        raise ValueError(f"no tracker named {name!r}")
    return cls


class Session:
    def __init__(self, trackers: list[Tracker], run_dir: Path):
        self.trackers, self.run_dir = list(trackers), Path(run_dir)
        self.last: dict[str, int | None] = {}
        self.done = False

    # ---- what gen.run calls --------------------------------------------------------------------------
    def start(self, run_id: str, config: dict, resumed: bool, history: list[dict]) -> None:
        """Open every tracker; a resumed run first logs the rows of its history its trackers lack."""
        if not self.trackers:
            return
        saved = self._read_state() if resumed else {}
        if not resumed:
            (self.run_dir / STATE_FILE).unlink(missing_ok=True)
        for tracker in list(self.trackers):
            tracker.last_step = saved.get(tracker.name)
            self.last[tracker.name] = tracker.last_step
            self._call(tracker, "start", lambda t=tracker: t.start(run_id, config, resumed))
        for row in history:
            self.log_row(row)

    def log_row(self, row: dict) -> None:
        """One evaluation row (Trainer.on_evaluation): to each tracker that has not logged its step."""
        step = int(row[STEP])
        logged = False
        for tracker in list(self.trackers):
            last = self.last.get(tracker.name)
            if last is not None and step <= last:
                continue
            if self._call(tracker, "log", lambda t=tracker: t.log_row(row, step)):
                self.last[tracker.name] = step
                logged = True
        if logged:
            self._write_state()

    def end(self, metrics: dict) -> None:
        """The run's record is written: each tracker takes the final values and closes."""
        for tracker in list(self.trackers):
            self._call(tracker, "end", lambda t=tracker: t.end(metrics))
        self.trackers, self.done = [], True

    def close(self, outcome: str) -> None:
        """The run stopped without a result (``failed``/``interrupted``); nothing if it ended."""
        if self.done:
            return
        for tracker in list(self.trackers):
            self._call(tracker, "close", lambda t=tracker: t.close(outcome))
        self.trackers, self.done = [], True

    # ---- guards and state ------------------------------------------------------------------------
    def _call(self, tracker: Tracker, what: str, call: Callable[[], None]) -> bool:
        try:
            call()
            return True
        except Exception as error:  # a tracker is a view: whatever it does must not reach the run
            first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            log.warning("logger=%s failed at %s (%s: %s); it logs nothing more for %s, which goes on "
                        "(metrics.json is unaffected)", tracker.name, what, type(error).__name__, first,
                        self.run_dir.name)
            self.trackers.remove(tracker)
            return False

    def _read_state(self) -> dict:
        try:
            state = json.loads(atomic.read_regular_file(self.run_dir / STATE_FILE, 1 << 20))
        except (OSError, ValueError, RecursionError):
            return {}
        return {k: v for k, v in state.items() if isinstance(v, int)} if isinstance(state, dict) else {}

    def _write_state(self) -> None:
        try:
            atomic.write_json(self.run_dir / STATE_FILE, {k: v for k, v in self.last.items() if v is not None})
        except OSError as error:  # a full disk: the trackers go on; a resume may repeat a row, no more
            log.warning("%s not written (%s); a resumed run may log some rows twice", STATE_FILE, error)


def open_session(logger_cfg: dict, run_dir: Path, sweep: str) -> Session:
    """The trackers ``logger_cfg`` (the resolved ``logger`` node) chooses, for the run in ``run_dir``."""
    trackers = []
    for name, options in (logger_cfg or {}).items():
        trackers.append(_tracker_class(name)(dict(options), run_dir, sweep))
    return Session(trackers, run_dir)


def remove_folder(path: Path) -> None:
    """A fresh run's tracker folder from an earlier attempt (a rerun): its events would mix with the new."""
    shutil.rmtree(path, ignore_errors=True)
