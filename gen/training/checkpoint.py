"""Checkpoints: everything a run needs to continue exactly where it stopped.

The training loop saves one at the configured epoch cadence and whenever a preemption is
requested (``request()``, called from a signal handler or by the cluster launcher); a run whose
folder holds a checkpoint resumes from it.  Saved: model, optimizer, scheduler, every RNG state,
the epoch's shuffle and position, history and trajectory state — tensors and plain containers only,
so that loading uses ``torch.load(weights_only=True)`` and nothing in a run folder can run code.

A checkpoint is trusted only if it is a gen checkpoint of this very run (:data:`FORMAT`, the run's
id) and the run accepts its state; any other file at that name (random bytes, a truncated file, a
foreign pickle, another run's checkpoint) is moved aside to ``checkpoint.pt.corrupt`` with one
warning line and the run starts from scratch (:func:`quarantine`).
"""
import collections
import logging
import os
import signal
import stat
from pathlib import Path
from typing import Any

from gen import atomic  # torch is imported where it is used: analysis reads this module's names

CHECKPOINT_FILE = "checkpoint.pt"
CORRUPT_SUFFIX = ".corrupt"
FORMAT = "gen-checkpoint-1"  # bump when what a checkpoint holds changes
_requested = False

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """Training stopped at a preemption request; a checkpoint holds its state."""


class Unusable(Exception):
    """The file at checkpoint.pt is not a checkpoint this run can resume from."""


def request(*_signal_args) -> None:
    """Ask the training loop to checkpoint and stop after the current step."""
    global _requested
    _requested = True


def requested() -> bool:
    return _requested


def clear_request() -> None:
    global _requested
    _requested = False


def install_signal_handlers() -> None:
    """SIGTERM and SIGUSR1/2 (what schedulers send before they stop a job) → checkpoint and stop."""
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, request)


def save(run_dir: Path, state: dict, run_id: str) -> None:
    atomic.save_torch(run_dir / CHECKPOINT_FILE, {"format": FORMAT, "run_id": run_id, **state})


def load(run_dir: Path, run_id: str) -> dict | None:
    """The checkpoint state of run ``run_id`` in ``run_dir``, or None if there is none.
    Raises :class:`Unusable` if the file is not one (the caller quarantines it)."""
    path = run_dir / CHECKPOINT_FILE
    if not os.path.lexists(path):
        return None
    import torch

    try:
        with _open_regular(path) as file:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Unusable:
        raise
    except Exception as error:  # anything the unpickler refuses: garbage, truncation, foreign objects
        raise Unusable(f"not a readable checkpoint ({type(error).__name__}: {first_line(error)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise Unusable("not a gen checkpoint")
    if state.get("run_id") != run_id:
        raise Unusable(f"a checkpoint of run {state.get('run_id')}, not of this run ({run_id})")
    return state


def _open_regular(path: Path):
    """``path`` opened for reading if it is a regular file: never through a link, never blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as error:
        raise Unusable(f"cannot be opened ({error.strerror or error}; gen reads no file through a link)") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Unusable("not a regular file")
    return os.fdopen(fd, "rb")


def position(run_dir: Path, run_id: str) -> tuple[int, int]:
    """Where run ``run_id``'s checkpoint stands: (steps taken, next batch of its epoch); (0, 0) without
    a usable one (which the run itself will move aside).  Lockstep groups form of runs at one position."""
    try:
        state = load(run_dir, run_id)
        return (0, 0) if state is None else (int(state["record"]["step"]), int(state["batch_index"]))
    except (Unusable, KeyError, TypeError, ValueError):
        return (0, 0)


def quarantine(run_dir: Path, why: str) -> Path:
    """Move an unusable checkpoint aside (kept for inspection, never loaded) and say so in one line."""
    path = run_dir / CHECKPOINT_FILE
    aside = path.with_name(CHECKPOINT_FILE + CORRUPT_SUFFIX)
    os.replace(path, aside)
    log.warning("%s: %s; moved to %s, the run starts from scratch", path, why, aside.name)
    return aside


def remove(run_dir: Path) -> None:
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)


def rng_states(generator) -> dict:
    import torch

    states = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict, generator) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    generator.set_state(states["shuffle"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def to_plain(value: Any) -> Any:
    """``value`` with every deque (AdaShift keeps its gradient queue in one) as a tagged dict, so that
    the weights-only unpickler can read it back (it refuses types it does not know, as it should)."""
    if isinstance(value, collections.deque):
        return {_DEQUE: [to_plain(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    return value


def from_plain(value: Any) -> Any:
    """The inverse of :func:`to_plain`."""
    if isinstance(value, dict):
        if _DEQUE in value:
            return collections.deque((from_plain(v) for v in value[_DEQUE]), maxlen=value["maxlen"])
        return {k: from_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(from_plain(v) for v in value)
    return value


_DEQUE = "__deque__"


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
