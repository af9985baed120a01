"""The private names of Hydra and its plugins that gen's launchers use (hydra_internals.py) still exist
and still mean what gen relies on; an upgrade that changes one fails here, loudly, not in a sweep."""
import inspect
from importlib.metadata import version

import pytest

from hydra_plugins.gen_launchers import hydra_internals


@pytest.mark.parametrize("package", sorted(hydra_internals.PINNED))
def test_the_installed_releases_are_the_pinned_ones(package):
    assert version(package).startswith(hydra_internals.PINNED[package] + "."), \
        f"{package} {version(package)}: hydra_internals.py was read from {hydra_internals.PINNED[package]}.x"


def test_the_basic_launcher_is_a_launcher_with_setup_and_launch():
    from hydra.plugins.launcher import Launcher

    launcher = hydra_internals.BasicLauncher
    assert issubclass(launcher, Launcher)
    assert list(inspect.signature(launcher.setup).parameters) == ["self", "hydra_context", "task_function",
                                                                  "config"]
    assert list(inspect.signature(launcher.launch).parameters) == ["self", "job_overrides", "initial_job_idx"]


def test_a_failed_job_hands_back_its_exception_without_a_report(capsys):
    from hydra.core.utils import JobReturn, JobStatus

    error = RuntimeError("boom")
    ret = JobReturn(overrides=[], status=JobStatus.FAILED)
    ret.return_value = error
    assert hydra_internals.failure_of(ret) is error
    assert capsys.readouterr().err == ""  # the public getter would print "Error executing job" and raise


def test_submitit_launchers_name_their_executor():
    from hydra_plugins.gen_launchers.submitit_launchers import LocalLauncher, SlurmLauncher

    assert hydra_internals.executor_kind(SlurmLauncher) == "slurm"
    assert hydra_internals.executor_kind(LocalLauncher) == "local"


def test_the_basic_sweeper_checks_a_batch_by_composing_each_job():
    from hydra.plugins.sweeper import Sweeper

    sweeper = hydra_internals.basic_sweeper.BasicSweeper
    assert issubclass(sweeper, Sweeper)
    assert list(inspect.signature(sweeper).parameters) == ["max_batch_size", "params"]
    assert list(inspect.signature(sweeper.validate_batch_is_legal).parameters) == ["self", "batch"]
    assert "self.validate_batch_is_legal(batch)" in inspect.getsource(sweeper.sweep)  # what gen's sweeper skips


def test_a_multirun_ends_its_callbacks_only_when_the_sweep_returns():
    """gen's sweeper raises when a run failed, so it ends the callbacks itself (hydra_internals.end_multirun)."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.hydra import Hydra

    source = inspect.getsource(Hydra.multirun)
    assert source.index("sweeper.sweep(") < source.index("callbacks.on_multirun_end(config=cfg")
    assert list(inspect.signature(Callbacks.on_multirun_end).parameters) == ["self", "config", "kwargs"]


def test_submitits_preemption_signal_is_usr2_unless_configured(monkeypatch):
    import signal

    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    assert hydra_internals.preemption_signal() == signal.SIGUSR2


def test_no_other_module_names_a_private_of_submitit():
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    private = re.compile(r"\bsubmitit(\.\w+)*\._[a-z]\w*")
    users = {p.relative_to(repo).as_posix() for folder in ("gen", "hydra_plugins", "analysis")
             for p in (repo / folder).rglob("*.py") if private.search(p.read_text())}
    assert users <= {"hydra_plugins/gen_launchers/hydra_internals.py"}
