"""Checkpoints: everything a run needs to continue exactly where it stopped.

The training loop saves one at the configured epoch cadence and whenever a preemption is
requested (``request()``, called from a signal handler or by the cluster launcher); a run whose
folder holds a checkpoint resumes from it.  Saved: model, optimizer, scheduler, every RNG state,
the epoch's shuffle and position, history and trajectory state.
"""
import os
import signal
from pathlib import Path

import torch

CHECKPOINT_FILE = "checkpoint.pt"
_requested = False


class Interrupted(Exception):
    """Training stopped at a preemption request; a checkpoint holds its state."""


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


def save(run_dir: Path, state: dict) -> None:
    path = run_dir / CHECKPOINT_FILE
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(run_dir: Path) -> dict | None:
    path = run_dir / CHECKPOINT_FILE
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def remove(run_dir: Path) -> None:
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)


def rng_states(generator: torch.Generator) -> dict:
    states = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    generator.set_state(states["shuffle"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
