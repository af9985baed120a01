"""Find the run folders below sweep folders and say what state each run is in.

A run folder is a folder that holds a ``metrics.json`` or Hydra's ``.hydra/``.  Its state:

- ``completed``, ``diverged``, ``failed``: what its ``metrics.json`` records (docs/records.md, schema 1), once
  the record passed gen.record's check (the schema, its run id, its folder);
- ``invalid``: a ``metrics.json`` that fails that check (the reason says why); ``unreadable``: one
  that is not JSON at all.  Neither is ever a result; a relaunch trains the run again;
- ``running``: no result yet, and a live process holds the run's lock (gen.sweeps.runlock), or, where this
  machine cannot tell (no lock file, or one taken on another host), something in the folder (checkpoint,
  log) changed recently; a lock taken on this machine and free again means its process died;
- ``interrupted``: no result, a ``checkpoint.pt``, nothing changed recently: preempted or killed
  after a checkpoint; a relaunch resumes it;
- ``missing``: no result and no sign of life — the job never finished (killed, lost, not yet started);
- ``unreadable`` also: a folder that cannot be listed (its permissions), with the reason.

Only ``completed`` runs are results; ``diverged`` runs are reported beside them.
"""
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gen import record
from gen.sweeps import runlock
from gen.training.checkpoint import CHECKPOINT_FILE
from gen.record import METRICS_FILE

STATUSES = (*record.RECORDED_STATUSES, "running", "interrupted", "missing", record.INVALID, record.UNREADABLE)
FAILURES = (record.FAILED, record.INVALID, record.UNREADABLE)  # a sweep that leaves these exits non-zero
NOT_RESULTS = (*FAILURES, record.DIVERGED, "running", "interrupted", "missing")  # listed, in this order
RECENT_SECONDS = 15 * 60  # a folder touched this recently belongs to a job that is still alive


@dataclass
class RunFolder:
    path: Path
    status: str
    metrics: dict | None = None
    reason: str = ""          # the error line, what the record's check found, or why a run counts as unfinished
    log: Path | None = None   # the run's own log file, where there is one
    held: bool = False        # a live process holds the run's lock (gen.sweeps.runlock)

    @property
    def run_id(self) -> str:
        """The folder's name: a valid record's run_id wherever the folder is named by its id (gen.record)."""
        return self.path.name


def scan(roots: list[Path], now: float | None = None) -> list[RunFolder]:
    """Every run folder below ``roots`` (a root may itself be a run folder), each once, sorted by path.

    A folder reached twice (a root given twice, a root inside another, a link to a run folder) is
    counted once, under its path without links where it has one; links are followed once each and a
    loop of links is not followed around.  A folder that cannot be listed is ``unreadable``, with the
    reason, never left out."""
    now = time.time() if now is None else now
    folders = []
    for root in roots:
        if not Path(root).is_dir():
            raise FileNotFoundError(f"no such folder: {root}")
    for path, names, error in _run_dirs([Path(r) for r in roots]):
        if error is not None:
            folders.append(RunFolder(path, record.UNREADABLE, reason=f"cannot list the folder: {error}"))
        else:
            folders.append(_classify(path, names, now))
    return sorted(folders, key=lambda f: str(f.path))


def _run_dirs(roots: list[Path]):
    """Yield (run folder, names in it, None) or (folder, None, why it cannot be listed), walking with
    os.scandir, not descending into runs.  Links to folders are walked last, and only where they lead
    to a folder not seen yet (by device and inode), so nothing is yielded twice and no loop is followed."""
    seen: set[tuple[int, int]] = set()
    links: list[Path] = []
    yield from _walk(roots, seen, links)
    while links:
        found, links = links, []
        yield from _walk(found, seen, links)


def _walk(starts: list[Path], seen: set, links: list[Path]):
    stack = list(reversed(starts))
    while stack:
        folder = stack.pop()
        try:
            info = os.stat(folder)
        except OSError:
            continue  # a dangling link, a loop of links: no folder there
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            yield Path(folder), None, error.strerror or str(error)
            continue
        names = {e.name for e in entries}
        if METRICS_FILE in names or ".hydra" in names:
            yield Path(folder), names, None
            continue
        if is_analysis_output(names):
            continue
        for entry in sorted(entries, key=lambda e: e.name, reverse=True):
            if entry.name.startswith(".") or not _is_dir(entry):
                continue
            (links if entry.is_symlink() else stack).append(Path(entry.path))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a loop of links
        return False


def is_analysis_output(names: set[str]) -> bool:
    """What ``python -m analysis`` writes into a sweep (its ``analysis/`` folder): tables, no run.  Known by
    what it holds, not by its name (a sweep may be called ``analysis``)."""
    return {"runs.csv", "status.csv"} <= names


def _classify(path: Path, names: set[str], now: float) -> RunFolder:
    log = _log_file(path, names)
    alive = runlock.holder_alive(path) if runlock.LOCK_FILE in names else None
    if alive:
        return RunFolder(path, "running", reason=f"held by a live process ({runlock.describe_holder(path)})",
                         log=log, held=True)
    if METRICS_FILE not in names:
        return _unfinished(path, names, now, log, holder_dead=alive is False)
    found = record.read(path)
    status, metrics = found.status, found.metrics
    if status in (record.INVALID, record.UNREADABLE):
        return RunFolder(path, status, reason=found.reason, log=log)
    if status == record.FAILED:
        if alive is None and _relaunched(path, names, now):
            return RunFolder(path, "running", metrics, "failed before; a relaunch is training now", log)
        return RunFolder(path, record.FAILED, metrics, error_line(metrics), log)
    if status == record.DIVERGED:
        return RunFolder(path, record.DIVERGED, metrics, diverged_reason(metrics), log)
    return RunFolder(path, record.COMPLETED, metrics, log=log)


def _unfinished(path: Path, names: set[str], now: float, log: Path | None, holder_dead: bool = False) -> RunFolder:
    """No result yet: training now, or stopped (interrupted, killed, never started).  A checkpoint
    means a relaunch resumes from it; a run is never taken for finished without its metrics.json.
    ``holder_dead``: the lock its process took is free again, so recent files mean nothing."""
    checkpointed = CHECKPOINT_FILE in names
    if not holder_dead and _recently_touched(path, names, now):
        reason = ("no metrics.json yet; checkpoint.pt changed recently (training, or interrupted: "
                  "a relaunch resumes it)" if checkpointed else "no metrics.json yet; the folder changed recently")
        return RunFolder(path, "running", reason=reason, log=log)
    if checkpointed:
        return RunFolder(path, "interrupted", reason="a checkpoint.pt but no metrics.json; a relaunch resumes it",
                         log=log)
    return RunFolder(path, "missing", reason="no metrics.json: the job never finished", log=log)


def error_line(metrics: dict) -> str:
    """``Type: first line of the message`` from a failed run's ``error`` record."""
    error = metrics.get("error") or {}
    message = str(error.get("message") or "").strip().splitlines()
    line = f"{error.get('type') or 'error'}: {message[0] if message else ''}".rstrip(": ")
    return line if error else "failed (no error recorded)"


def diverged_reason(metrics: dict) -> str:
    found = metrics["divergence"]
    return f"training diverged: {found['rule']} at epoch {found.get('epoch')}"


def _log_file(path: Path, names: set[str]) -> Path | None:
    logs = sorted(n for n in names if n.endswith((".log", ".out", ".err")))
    return path / logs[0] if logs else None


def _recently_touched(path: Path, names: set[str], now: float) -> bool:
    """Any file (checkpoint, log, lock, Hydra's config) modified in the last minutes: how a lock taken on
    another host (whose process this machine cannot see) shows that its run is alive."""
    candidates = [path / n for n in names if n != ".hydra"] + [path / ".hydra"]
    return any(_mtime(p) > now - RECENT_SECONDS for p in candidates)


def _relaunched(path: Path, names: set[str], now: float) -> bool:
    """A failed run whose checkpoint is newer than its record and recent: a relaunch has taken it up."""
    if CHECKPOINT_FILE not in names:
        return False
    checkpoint = _mtime(path / CHECKPOINT_FILE)
    return checkpoint > _mtime(path / METRICS_FILE) and checkpoint > now - RECENT_SECONDS


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def counts(folders: list[RunFolder]) -> dict[str, int]:
    found = Counter(f.status for f in folders)
    return {status: found.get(status, 0) for status in STATUSES}


def describe(folders: list[RunFolder], roots: list[Path]) -> str:
    """The text ``python -m analysis status`` prints: counts, then every run that is not a result."""
    lines = [f"{', '.join(str(r) for r in roots)}: {len(folders)} run folders"]
    for status, n in counts(folders).items():
        lines.append(f"  {status:<11}{n:>6}")
    for status in NOT_RESULTS:
        chosen = [f for f in folders if f.status == status]
        if not chosen:
            continue
        lines.append(f"{status}:")
        for folder in chosen:
            where = f"  (log: {folder.log})" if folder.log and status in (record.FAILED, "running") else ""
            lines.append(f"  {folder.path}  {folder.reason}{where}")
    return "\n".join(lines)
