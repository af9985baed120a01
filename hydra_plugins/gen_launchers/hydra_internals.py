"""Every private name of Hydra, its launcher plugins and submitit that gen uses, in one place.

Each has no public equivalent: Hydra exposes no base class for an in-process launcher or a sweeper
(its basic ones live in ``hydra._internal``); hydra-submitit names its executor kind in a class
attribute; a failed ``JobReturn``'s public getter prints a report and raises, where gen needs the
exception itself; Hydra's callbacks reach a sweeper only as its internal ``Callbacks`` object (in the
public ``HydraContext``); and submitit reads the signal it requeues a job on in a private classmethod.  The
versions they were read from (``PINNED``) are the ranges pyproject.toml allows, and
tests/test_hydra_internals.py fails loudly if an upgrade moves or changes any of them.
"""
from hydra._internal.core_plugins.basic_launcher import BasicLauncher  # gen's sequential launcher
# gen's sweeper extends basic_sweeper.BasicSweeper, read from the module when it is defined: Hydra's plugin
# scan executes a module that is already imported once more, making a new BasicSweeper whose __init__
# (super(BasicSweeper, self)) refuses a subclass of the earlier one.
from hydra._internal.core_plugins import basic_sweeper

__all__ = ["BasicLauncher", "basic_sweeper", "PINNED", "end_multirun", "executor_kind", "failure_of",
           "preemption_signal"]

PINNED = {"hydra-core": "1.3", "hydra-submitit-launcher": "1.2", "submitit": "1.5"}


def executor_kind(launcher) -> str:
    """hydra-submitit's name of a launcher's submitit executor: ``slurm`` or ``local``."""
    return launcher._EXECUTOR


def failure_of(job_return):
    """The exception a FAILED job ended with (``JobReturn.return_value`` would print a report and raise it)."""
    return job_return._return_value


def end_multirun(sweeper) -> None:
    """Every callback's ``on_multirun_end``, as Hydra's ``Hydra.multirun`` calls them once the sweep returns
    (for a sweeper that raises instead: gen_sweeper.py)."""
    sweeper.hydra_context.callbacks.on_multirun_end(config=sweeper.config)


def preemption_signal() -> int:
    """The signal on which submitit requeues a job (USR2 unless ``SUBMITIT_PREEMPT_SIGNAL`` names another)."""
    import submitit

    return submitit.JobEnvironment._usr_sig()
