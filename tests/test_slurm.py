"""Sweeps on a real SLURM cluster through hydra/launcher=slurm (scripts/slurm_cluster.sh starts one on
localhost; scripts/test.sh does that before pytest).  Without a responding cluster these tests skip,
except in CI (CI=true), where they fail.

Job states come from sacct (the accounting database) and ``scontrol show job`` (for Restarts).
"""
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import LAUNCH, TINY, comparable, launch, metrics_files, plant_unwritable_weights, read_metrics
from tests.launch_client import start_python

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# One CPU and 1 GB per job, so that two jobs run at once on a 2-core machine.
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
         "hydra.launcher.timeout_min=10"]
BROKEN = "24"  # the hidden_units of the run whose model.pt cannot be written (tests.helpers.plant_unwritable_weights)
WAIT_S = 240               # the most a test waits for a job to reach a state before it fails


def _slurm_problem() -> str | None:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"sinfo did not answer ({error})"
    if out.returncode != 0:
        return f"sinfo failed: {out.stderr.strip()}"
    if not out.stdout.strip():
        return "sinfo lists no node"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm():
    problem = _slurm_problem()
    if problem is None:
        return
    message = f"no local SLURM cluster ({problem}); start one with `bash scripts/slurm_cluster.sh start`"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def job_info(job_id: str) -> dict:
    """``scontrol show job JOB_ID`` as a dict (JobState, Restarts, ExitCode, ...)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=True)
    line = out.stdout.splitlines()[0]
    return dict(token.split("=", 1) for token in line.split() if "=" in token)


def final_state(job_id: str) -> dict:
    """job_info once the job has ended (submitit's result file can come a moment before the job's end)."""
    deadline = time.monotonic() + WAIT_S
    while (info := job_info(job_id))["JobState"] in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
        assert time.monotonic() < deadline, f"job {job_id} still {info['JobState']} after {WAIT_S} s"
        time.sleep(0.2)
    return info


def accounted(job_id: str) -> list[str]:
    """Every state sacct recorded for the job, oldest first (a requeued job: REQUEUED, then its end)."""
    out = subprocess.run(["sacct", "-X", "-D", "-n", "-P", "-j", job_id, "-o", "State"], capture_output=True,
                         text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def accounted_end(job_id: str) -> list[str]:
    """``accounted`` once the job's last record has ended (slurmctld tells slurmdbd a moment later)."""
    deadline = time.monotonic() + WAIT_S
    while not (states := accounted(job_id)) or states[-1] in ("PENDING", "RUNNING", "COMPLETING"):
        assert time.monotonic() < deadline, f"sacct still says {states} for job {job_id} after {WAIT_S} s"
        time.sleep(0.2)
    return states


def submitted_jobs(sweep: Path) -> list[str]:
    """The SLURM ids of the sweep's jobs, in job order: submitit names its folders after them (ARRAY_TASK,
    and one for the array itself; a lone job is no array)."""
    names = [p.name for p in (sweep / ".submitit").iterdir() if p.is_dir()]
    tasks = [name for name in names if "_" in name]
    return sorted(tasks, key=lambda name: int(name.split("_")[1])) if tasks else names


def queued(name: str) -> list[str]:
    """``squeue`` lines "JOBID STATE REASON" of the jobs called ``name``."""
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i %T %r"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def wait_until(condition, what: str, proc):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the sweep ended (exit {proc.returncode}) before {what}:\n{err[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"gave up waiting for {what} after {WAIT_S} s")


def start_sweep(args: list[str], cwd: Path):
    return start_python([LAUNCH, "-m", *args], cwd)


def test_sweep_runs_every_job_as_a_slurm_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = launch(["-m", *SLURM, *TINY, "model.hidden_units=8,16", "seed=0,1", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    runs = [read_metrics(path) for path in metrics_files(sweep)]
    assert sorted((m["config"]["model"]["hidden_units"], m["seed"]) for m in runs) == [(8, 0), (8, 1), (16, 0), (16, 1)]
    for m in runs:
        assert m["status"] == "completed"
        assert m["final"]["epochs"] == 2 and [row["epoch"] for row in m["history"]] == [0, 1, 2]
        assert 0 <= m["final"]["test_acc"] <= 1
    jobs = submitted_jobs(sweep)
    assert len(jobs) == 4
    assert {final_state(job)["JobState"] for job in jobs} == {"COMPLETED"}
    assert [accounted_end(job) for job in jobs] == [["COMPLETED"]] * 4
    # the jobs run the python that submitted them (submitit writes sys.executable into the batch script)
    array = jobs[0].split("_")[0]
    assert f"{sys.executable} -u -m submitit" in (sweep / ".submitit" / array / f"{array}_submission.sh").read_text()


def test_a_lockstep_group_is_one_slurm_job_and_its_runs_equal_runs_trained_alone(tmp_path):
    sweep, alone = tmp_path / "lockstep", tmp_path / "alone"
    seeds = ["seed=0,1,2", "corruption=labels", "corruption.prob=0.3"]
    proc = launch(["-m", *SLURM, *TINY, *seeds, "trainer.ensemble=2", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = submitted_jobs(sweep)
    assert len(jobs) == 2  # seeds 0 and 1 in lockstep, seed 2 alone
    assert [accounted_end(job) for job in jobs] == [["COMPLETED"]] * 2

    proc = launch(["-m", *TINY, *seeds, f"hydra.sweep.dir={alone}", "analysis.auto=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    together = {p.parent.name: read_metrics(p) for p in metrics_files(sweep)}
    apart = {p.parent.name: read_metrics(p) for p in metrics_files(alone)}
    assert sorted(together) == sorted(apart) and len(together) == 3  # same run ids
    assert sum(any("lockstep" in note for note in m["notes"]) for m in together.values()) == 2
    for run_id, metrics in together.items():
        assert comparable(metrics) == comparable(apart[run_id])
        assert (sweep / run_id / ".hydra" / "config.yaml").exists()


def test_a_failed_run_fails_its_job_and_the_others_go_on(tmp_path):
    sweep = tmp_path / "sweep"
    plant_unwritable_weights(sweep, [*TINY, f"model.hidden_units={BROKEN}"])
    proc = launch(["-m", *SLURM, *TINY, f"model.hidden_units=16,{BROKEN},32", f"hydra.sweep.dir={sweep}"], tmp_path)

    assert proc.returncode != 0
    jobs = submitted_jobs(sweep)
    infos = [final_state(job) for job in jobs]
    assert [info["JobState"] for info in infos] == ["COMPLETED", "FAILED", "COMPLETED"], infos
    assert infos[1]["ExitCode"] != "0:0"
    assert [accounted_end(job) for job in jobs] == [["COMPLETED"], ["FAILED"], ["COMPLETED"]]
    assert f"job {jobs[1]} (" in proc.stderr and f"model.hidden_units={BROKEN}" in proc.stderr
    assert "1 run(s) of this sweep failed" in proc.stderr  # the sweep's summary ran: Hydra did not stop early

    runs = {m["config"]["model"]["hidden_units"]: m for m in map(read_metrics, metrics_files(sweep))}
    assert runs[16]["status"] == runs[32]["status"] == "completed"
    assert runs[int(BROKEN)]["status"] == "failed"
    assert "model.pt: Is a directory" in runs[int(BROKEN)]["error"]["message"]

    status = subprocess.run([sys.executable, "-m", "analysis", "status", str(sweep)],
                            capture_output=True, text=True, cwd=LAUNCH.parent)
    assert "failed" in status.stdout + status.stderr
    failed_dir = next(p.parent.name for p in metrics_files(sweep) if read_metrics(p)["status"] == "failed")
    assert failed_dir in status.stdout + status.stderr


def test_each_runs_outcome_comes_back_from_its_job_a_failed_one_read_from_its_record(tmp_path):
    from tests.test_outcomes import four_runs

    failed = four_runs(tmp_path / "sweep", SLURM)["failed"]  # completed, diverged, failed, skipped: checked there
    assert failed["reason"].startswith("job ") and "; log: " in failed["reason"]


def test_a_preempted_job_checkpoints_requeues_and_ends_like_an_uninterrupted_run(tmp_path):
    name = f"gen-preempt-{uuid.uuid4().hex[:8]}"
    run = ["trainer.max_epochs=1500", "trainer.checkpoint_every=1", "trainer.progress=false",
           "dataset.train_size=200", "model.hidden_units=16", "seed=3", "measure=none"]
    sweep = tmp_path / "sweep"
    proc = start_sweep([*SLURM, *run, f"hydra.launcher.name={name}", f"hydra.sweep.dir={sweep}"], tmp_path)

    # Once the run has trained an epoch (its periodic checkpoint is there), preempt it the way SLURM
    # does before a time limit or a preemption: USR2 to the job's processes (submitit's job._interrupt()).
    wait_until(lambda: list(sweep.glob("*/checkpoint.pt")), "the run's first checkpoint", proc)
    (job_id,) = [line.split()[0] for line in queued(name)]
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err[-3000:]

    info = final_state(job_id)
    assert info["JobState"] == "COMPLETED" and int(info["Restarts"]) >= 1, info
    assert accounted_end(job_id) == ["REQUEUED", "COMPLETED"]
    (metrics_path,) = metrics_files(sweep)
    log = (metrics_path.parent / "launch.log").read_text()
    assert "preempted at epoch" in log and "resuming" in log
    assert not (metrics_path.parent / "checkpoint.pt").exists()
    preempted = read_metrics(metrics_path)
    assert preempted["status"] == "completed" and preempted["final"]["epochs"] == 1500

    # The same run, uninterrupted, in this process's launcher: same folder name, same numbers.
    plain = tmp_path / "plain"
    proc = launch(["-m", *run, f"hydra.sweep.dir={plain}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (plain_path,) = metrics_files(plain)
    assert plain_path.parent.name == metrics_path.parent.name
    assert comparable(read_metrics(plain_path)) == comparable(preempted)


def test_queued_jobs_keep_the_config_composed_at_submission(tmp_path):
    # A config dir of the user's own, next to conf/: editing it while the job waits must not change the job.
    user_conf = tmp_path / "conf" / "local"
    user_conf.mkdir(parents=True)
    (user_conf / "frozen.yaml").write_text("# @package _global_\nmodel:\n  hidden_units: 24\n")
    name = f"gen-frozen-{uuid.uuid4().hex[:8]}"
    sweep = tmp_path / "sweep"
    tiny = [arg for arg in TINY if not arg.startswith("model.hidden_units=")]
    proc = start_sweep([*SLURM, *tiny, "+local=frozen", "seed=0,1", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                        "+hydra.launcher.additional_parameters.hold=true", f"hydra.launcher.name={name}",
                        f"hydra.sweep.dir={sweep}"], tmp_path)

    held = wait_until(lambda: [line for line in queued(name) if "JobHeldUser" in line], "the held jobs", proc)
    (user_conf / "frozen.yaml").write_text("# @package _global_\nmodel:\n  hidden_units: 40\n")
    subprocess.run(["scontrol", "release", held[0].split()[0].split("_")[0]], check=True)
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err[-3000:]

    runs = [read_metrics(path) for path in metrics_files(sweep)]
    assert len(runs) == 2
    assert [m["config"]["model"]["hidden_units"] for m in runs] == [24, 24]
    assert all(m["status"] == "completed" for m in runs)
