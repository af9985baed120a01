"""What each launcher hands back for a run: its outcome (gen.outcome), which gen's sweeper reads.

One sweep of four real runs per launcher: a completed one, a diverged one (an exploding learning rate), a
failed one (its model.pt cannot be written: tests.helpers.plant_unwritable_weights) and a skipped one (this
process holds its lock, as another launch would).  The sweep runs in a child process through Hydra's own
harness for sweeps (hydra.test_utils), which hands back the sweeper's returns that ``hydra.main`` discards;
the child prints each outcome as JSON.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gen import outcome, record
from gen.sweeps import runlock
from gen.sweeps.run_id import run_id
from tests.helpers import LAUNCH, TINY, compose_config, launch, plant_unwritable_weights

BROKEN = "24"  # the hidden_units of the run whose weights cannot be written
GRID = [f"model.hidden_units=8,{BROKEN}", "optimizer.lr=0.05,1e30"]
QUIET = ["analysis.auto=false"]
LAUNCHERS = {
    "sequential": ["hydra/launcher=sequential"],
    "parallel": ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local"],
}
CHILD = f"""
import json, sys
from hydra.test_utils.test_utils import SweepTaskFunction
from gen.cli import run_job
from gen.outcome import SweepFailed

sweep = SweepTaskFunction()
sweep.calling_file, sweep.calling_module, sweep.config_path, sweep.config_name = {str(LAUNCH)!r}, None, "conf", "config"
sweep.task_function, sweep.temp_dir = run_job, sys.argv[1]
sweep.overrides = [*sys.argv[2:], "hydra.mode=MULTIRUN"]  # as hydra.main sets it for -m
try:
    outcomes = [job.return_value for batch in sweep.__enter__().returns for job in batch]
except SweepFailed as failed:
    outcomes = failed.outcomes
print("OUTCOMES", json.dumps([dict(status=o.status, run=o.run_dir.name, reason=o.reason, test_acc=o.test_acc)
                              for o in outcomes]))
"""


def sweep_outcomes(sweep_dir: Path, args: list[str]) -> dict[str, dict]:
    """run id -> the outcome its job returned to gen's sweeper, for a sweep run with ``args``."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(sweep_dir), *args], capture_output=True, text=True,
                          cwd=sweep_dir.parent, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("OUTCOMES ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {o["run"]: o for o in json.loads(lines[-1].removeprefix("OUTCOMES "))}


def run_of(hidden_units: str, lr: str) -> str:
    return run_id(compose_config([*TINY, f"model.hidden_units={hidden_units}", f"optimizer.lr={lr}"]))


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_returns_each_runs_outcome(launcher, tmp_path):
    outcomes = four_runs(tmp_path / "sweep", LAUNCHERS[launcher])
    if launcher == "submitit_local":  # read back from the record in this process: the job and its log named
        assert outcomes["failed"]["reason"].startswith("job ") and "; log: " in outcomes["failed"]["reason"]


def four_runs(sweep: Path, launcher: list[str]) -> dict[str, dict]:
    """A sweep of a completed, a diverged, a failed and a skipped run on ``launcher``: each one's outcome,
    checked against what its folder holds (tests/test_slurm.py runs it on SLURM)."""
    plant_unwritable_weights(sweep, [*TINY, f"model.hidden_units={BROKEN}", "optimizer.lr=0.05"])
    held = sweep / run_of(BROKEN, "1e30")
    held.mkdir(parents=True)
    lock = runlock.acquire(held)
    try:
        outcomes = sweep_outcomes(sweep, [*TINY, *GRID, *QUIET, *launcher])
    finally:
        lock.release()

    assert len(outcomes) == 4
    completed, diverged = outcomes[run_of("8", "0.05")], outcomes[run_of("8", "1e30")]
    failed, skipped = outcomes[run_of(BROKEN, "0.05")], outcomes[held.name]
    assert completed["status"] == "completed" and completed["reason"] == ""
    assert completed["test_acc"] == record.read(sweep / completed["run"]).metrics["final"]["test_acc"]
    assert diverged["status"] == "diverged" and diverged["reason"].startswith("training diverged: non_finite_")
    assert failed["status"] == "failed" and failed["test_acc"] is None
    assert f"could not write {sweep / failed['run']}/model.pt: Is a directory" in failed["reason"]
    assert skipped["status"] == "skipped" and skipped["reason"].startswith("running in another process (pid ")
    assert not (held / record.METRICS_FILE).exists()
    return {"completed": completed, "diverged": diverged, "failed": failed, "skipped": skipped}


@pytest.mark.slow
def test_a_lockstep_group_hands_each_member_its_own_outcome_and_a_relaunch_skips(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*TINY, "seed=0,1", "trainer.ensemble=2", *QUIET, *LAUNCHERS["sequential"]]
    first = sweep_outcomes(sweep, args)
    assert [o["status"] for o in first.values()] == ["completed", "completed"]
    for run, got in first.items():
        assert got["test_acc"] == record.read(sweep / run).metrics["final"]["test_acc"]
    again = sweep_outcomes(sweep, args)
    assert {run: (o["status"], o["reason"], o["test_acc"]) for run, o in again.items()} == \
        {run: ("skipped", "already completed", o["test_acc"]) for run, o in first.items()}


class _Job:
    """What gen's submitit launchers read of a submitit job that failed."""
    job_id = "4242"

    def __init__(self, folder: Path) -> None:
        self.paths = type("Paths", (), {"stderr": folder / "4242_0_log.err"})()


def test_a_failed_submitit_job_is_read_from_its_runs_record_never_from_submitits_text(tmp_path):
    from hydra_plugins.gen_launchers.submitit_launchers import _return_of

    job = _Job(tmp_path / ".submitit")
    died = tmp_path / "died"  # the job ended before its run wrote anything
    died.mkdir()
    ret = _return_of(job, died, ["seed=1"])
    assert ret.return_value == outcome.failed(died, f"job 4242 (seed=1) ended before its run recorded anything "
                                                    f"(no metrics.json); log: {tmp_path}/.submitit/4242_0_log.err")

    recorded = tmp_path / "recorded"
    recorded.mkdir()
    (recorded / record.METRICS_FILE).write_text(json.dumps(_failed_record(recorded)))
    got = _return_of(job, recorded, ["seed=2"]).return_value
    assert got.failed and got.reason == (f"job 4242 (seed=2) failed: OSError: disk gone; "
                                         f"log: {tmp_path}/.submitit/4242_0_log.err")


def _failed_record(run_dir: Path) -> dict:
    cfg = compose_config(TINY)
    head = record.header(cfg, record.FAILED, [], None)
    try:
        raise OSError("disk gone")
    except OSError as error:
        return record.failed(head, error, 1.0)


@pytest.mark.slow
def test_a_sweep_with_a_failed_run_still_ends_its_callbacks_and_exits_1(tmp_path):
    """gen's sweeper raises when a run failed (gen.outcome.SweepFailed): it ends Hydra's callbacks first, so the
    sweep's analysis is written, and launch.py's last line counts the failures."""
    sweep = tmp_path / "sweep"
    plant_unwritable_weights(sweep, [*TINY, f"model.hidden_units={BROKEN}"])
    proc = launch(["-m", *TINY, f"model.hidden_units=8,{BROKEN}", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert (sweep / "analysis" / "report.md").exists()
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 1 run(s) of this sweep failed")
