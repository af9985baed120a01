"""gen.sweeps.preemption with the signal the launcher hands it (hydra_internals.preemption_signal in a
submitit job): inside a run the signal only asks for a checkpoint; afterwards submitit's handler gets it."""
import os
import signal

from gen.sweeps import preemption
from gen.training import checkpoint


def test_a_preemption_signal_during_a_run_asks_for_a_checkpoint_and_reaches_submitits_handler_after(monkeypatch):
    handed = []
    monkeypatch.setattr(checkpoint, "_requested", False)
    previous = signal.signal(signal.SIGUSR2, lambda signum, _frame: handed.append(signum))  # as submitit's
    try:
        with preemption.deferred_requeue(signal.SIGUSR2):
            os.kill(os.getpid(), signal.SIGUSR2)
        assert checkpoint.requested() and handed == []  # the run finished its step first
        preemption.requeue_if_preempted(signal.SIGUSR2)
        assert handed == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_without_the_signal_nothing_is_handed_on(monkeypatch):
    handed = []
    monkeypatch.setattr(checkpoint, "_requested", False)
    previous = signal.signal(signal.SIGUSR2, lambda signum, _frame: handed.append(signum))
    try:
        with preemption.deferred_requeue(signal.SIGUSR2):
            pass
        preemption.requeue_if_preempted(signal.SIGUSR2)
        assert handed == [] and not checkpoint.requested()
    finally:
        signal.signal(signal.SIGUSR2, previous)
