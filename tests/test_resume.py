"""Preemption and resume with real processes and real signals.

A run is started with ``python launch.py`` in a subprocess, checkpointing every epoch; once a
checkpoint exists it is killed (SIGKILL: no chance to react; SIGTERM: what schedulers send, which
must checkpoint and stop).  Relaunching the same command must resume and end with exactly the
metrics.json of an uninterrupted run with the same seed (wall-clock seconds aside).
"""
import fcntl
import os
import signal
import time
from pathlib import Path

import pytest

from gen.sweeps import status as run_status
from tests.helpers import LAUNCH, comparable, launch, one_at_a_time, read_metrics
from tests.launch_client import start_python

# Each config takes a few seconds, so a kill lands mid-training; each exercises a different state.
CONFIGS = {
    # momentum buffers, an lr schedule, label corruption (split accuracies), interpolation record
    "fc_digits": ["model.hidden_units=64", "dataset.train_size=600", "trainer.batch_size=4",
                  "trainer.max_epochs=25", "optimizer=momentum", "optimizer/schedule=exponential",
                  "corruption=labels", "corruption.prob=0.2"],
    # random crops and flips (gen.data.augment) drawn from the run's generator, batch by batch
    "fc_digits_augmented": ["model.hidden_units=64", "dataset.train_size=600", "trainer.batch_size=4",
                            "trainer.max_epochs=25", "augment=crop_flip", "augment.padding=2"],
    # batch 1 and the S5 trajectory tracker (per-step state inside the loop)
    "steady_sinusoid": ["model=steady_mlp", "dataset=sinusoid", "trainer.batch_size=1", "trainer.max_epochs=80",
                        "measure=trajectory"],
}
COMMON = ["trainer.checkpoint_every=1", "trainer.progress=false", "seed=7"]

pytestmark = pytest.mark.slow  # real runs killed mid-training


def start(args: list[str], cwd: Path):
    return start_python([LAUNCH, *one_at_a_time(args)], cwd, merge_stderr=True)


def sigterm_once_checkpointed(args: list[str], cwd: Path, sweep: Path, checkpoints: int):
    """Start the sweep ``args``, send SIGTERM once ``checkpoints`` of its runs have checkpointed; the process
    and its output."""
    proc = start(args, cwd)
    while len(list(sweep.glob("*/checkpoint.pt"))) < checkpoints:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGTERM)
    return proc, proc.communicate(timeout=120)[0]


def wait_for(path: Path, proc) -> None:
    """Poll until ``path`` exists (the run is training); fail if the process ends first."""
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc={proc.returncode}) before {path.name} appeared:\n{proc.stdout.read()}")
        time.sleep(0.02)


class References(dict):
    """Uninterrupted runs by config name, each trained on first use and once per test session: pytest-xdist's
    workers share them through a folder beside their own temporary folders, one lock per config (a test needs
    only its own config's run, so no worker waits for all three)."""

    def __init__(self, root: Path):
        super().__init__()
        self.root = root

    def __missing__(self, name: str) -> dict:
        folder = self.root / f"resume_reference_{name}"
        with open(self.root / f"resume_reference_{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (folder / "run" / "metrics.json").exists():
                folder.mkdir(exist_ok=True)
                proc = launch(CONFIGS[name] + COMMON + [f"hydra.run.dir={folder / 'run'}"], cwd=folder)
                assert proc.returncode == 0, proc.stderr
        self[name] = read_metrics(folder / "run" / "metrics.json")
        return self[name]


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    return References(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)  # this session's folder


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_the_uninterrupted_result(name, sig, reference, tmp_path):
    run_dir = tmp_path / "run"
    args = CONFIGS[name] + COMMON + [f"hydra.run.dir={run_dir}"]
    proc = start(args, tmp_path)
    wait_for(run_dir / "checkpoint.pt", proc)
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]

    assert proc.returncode != 0, output
    assert not (run_dir / "metrics.json").exists(), "an interrupted run must not leave a record"
    assert (run_dir / "checkpoint.pt").exists()
    if sig == signal.SIGTERM:  # it saw the signal: checkpointed where it stood and said so
        assert "error: Interrupted: preempted at epoch" in output, output
    (folder,) = run_status.scan([tmp_path])
    assert folder.status in ("running", "interrupted") and "checkpoint" in folder.reason

    again = launch(args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout + again.stderr
    resumed = read_metrics(run_dir / "metrics.json")
    assert comparable(resumed) == comparable(reference[name])
    assert not (run_dir / "checkpoint.pt").exists()


def test_sigterm_stops_a_sweep_and_the_relaunch_finishes_it(tmp_path):
    """SIGTERM to a local sweep: the running job checkpoints, no further job starts, exit non-zero;
    the relaunch resumes that job and runs the rest."""
    args = ["-m", *CONFIGS["fc_digits"], *COMMON, "seed=1,2", "analysis.auto=false", "name=default"]
    sweep = tmp_path / "outputs" / "sweeps" / "default"
    proc, output = sigterm_once_checkpointed(args, tmp_path, sweep, checkpoints=1)
    assert proc.returncode != 0, output
    assert not list(sweep.glob("*/metrics.json")), output
    assert len(list(sweep.glob("*/checkpoint.pt"))) == 1

    again = launch(args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (again.stdout + again.stderr).count("resuming") == 1
    assert [read_metrics(p)["status"] for p in sweep.glob("*/metrics.json")] == ["completed"] * 2


def test_sigterm_reaches_every_worker_of_a_parallel_sweep_and_the_relaunch_finishes_it(tmp_path):
    """hydra/launcher=parallel: SIGTERM to the launching process reaches both workers; each running run
    checkpoints and stops, none records a result, the queued run does not start; the relaunch resumes both."""
    args = ["-m", *CONFIGS["fc_digits"], *COMMON, "seed=1,2,3", "analysis.auto=false", "name=default"]
    sweep = tmp_path / "outputs" / "sweeps" / "default"
    proc, output = sigterm_once_checkpointed([*args, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"], tmp_path,
                                             sweep, checkpoints=2)
    assert proc.returncode != 0, output
    assert "error: Interrupted: " in output, output
    assert not list(sweep.glob("*/metrics.json")), output
    assert len(list(sweep.glob("*/checkpoint.pt"))) == 2

    again = launch(args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (again.stdout + again.stderr).count("resuming") == 2
    assert [read_metrics(p)["status"] for p in sweep.glob("*/metrics.json")] == ["completed"] * 3


def test_a_killed_lockstep_group_resumes_together_to_the_uninterrupted_result(tmp_path):
    """trainer.ensemble=4 over seeds and learning rates: SIGKILL once every member has checkpointed; the
    relaunch re-forms the group from its members' checkpoints and ends with their uninterrupted records."""
    args = ["-m", *CONFIGS["fc_digits"], *COMMON, "seed=0,1", "optimizer.lr=0.01,0.02", "trainer.ensemble=4",
            "analysis.auto=false"]
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    uninterrupted = launch([*args, f"hydra.sweep.dir={reference_dir}"], cwd=tmp_path)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    proc = start([*args, f"hydra.sweep.dir={killed_dir}"], tmp_path)
    while len(list(killed_dir.glob("*/checkpoint.pt"))) < 4:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert not list(killed_dir.glob("*/metrics.json"))

    again = launch([*args, f"hydra.sweep.dir={killed_dir}"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    log = again.stdout + again.stderr
    assert log.count("resuming") == 4 and "trains alone" not in log, log
    for path in reference_dir.glob("*/metrics.json"):
        expected, resumed = read_metrics(path), read_metrics(killed_dir / path.parent.name / "metrics.json")
        assert any("trained in lockstep with 3 other run(s)" in note for note in resumed["notes"])
        assert comparable(resumed) == comparable(expected), path.parent.name
    assert not list(killed_dir.glob("*/checkpoint.pt"))
