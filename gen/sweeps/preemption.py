"""Preemption inside a submitit job: let the run checkpoint before submitit requeues the job.

submitit binds the preemption signal (``usr_sig``: USR2 unless configured otherwise, sent by SLURM
``signal_delay_s`` before the time limit or by ``scancel --signal=USR2``) to a handler that requeues the
job and exits *at once*, in the middle of a training step, and it ignores SIGTERM.  gen's training loop
wants the opposite order: note the request, finish the step, save checkpoint.pt, raise
``checkpoint.Interrupted``.  While a run executes, ``deferred_requeue`` routes both signals to
``checkpoint.request``; once the run has stopped, ``requeue_if_preempted`` hands the remembered USR2 to
submitit's handler, which calls the launcher's ``checkpoint`` method, requeues the job (within
``max_num_timeout``) and exits.  A SIGTERM (scancel, the time limit itself, ``scontrol requeue``) only
checkpoints: SLURM decides what happens next.  The launcher passes ``usr_sig`` in: submitit names it only
privately (hydra_internals.preemption_signal).
"""
import contextlib
import signal
from typing import Iterator

from gen.training import checkpoint

_received: list[int] = []


def _request(signum: int, _frame) -> None:
    _received.append(signum)
    checkpoint.request()


@contextlib.contextmanager
def deferred_requeue(usr_sig: int) -> Iterator[None]:
    signals = (usr_sig, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}
    _received.clear()
    for sig in signals:
        signal.signal(sig, _request)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def requeue_if_preempted(usr_sig: int) -> None:
    """After the run stopped on a preemption request: give submitit the USR2 it was sent (it
    checkpoints the submission, requeues the job and exits, or raises when it may not requeue)."""
    if usr_sig in _received:
        handler = signal.getsignal(usr_sig)
        if callable(handler):
            handler(usr_sig, None)
