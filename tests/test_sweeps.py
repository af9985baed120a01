"""Sweeps on the local launchers: a failed job leaves the others running and the exit non-zero,
relaunching skips results and reruns the rest, the status command and the analysis callback.

A job fails for real here: the run with ``model.hidden_units=24`` finds a folder where its ``model.pt``
must go (tests.helpers.plant_unwritable_weights), so it trains and then cannot write its weights — a
real failure of the filesystem, as a full disk or a quota gives.  (A model too large for memory is
now refused before any work: test_records.)
"""
import json
import os

import pytest

from analysis.cli import main as analysis_main
from tests.helpers import SEQUENTIAL, TINY, launch, plant_unwritable_weights, read_metrics

BROKEN = "24"  # the hidden_units of the run whose weights cannot be written
QUIET = ["analysis.auto=false", "name=default"]  # one known folder (a plain multirun is named after its overrides)
PARALLEL = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]  # two workers, whatever the machine's cores
LAUNCHERS = {"sequential": [SEQUENTIAL], "parallel": PARALLEL}


def sweep_runs(root, name="default") -> dict[str, dict]:
    """run folder name -> metrics.json, for the runs of outputs/sweeps/NAME that have one."""
    return {p.parent.name: read_metrics(p) for p in (root / "outputs" / "sweeps" / name).glob("*/metrics.json")}


def stamps(sweep, run_ids) -> dict[str, int | None]:
    """metrics.json modification times (None: no metrics.json), to see which runs were written again."""
    paths = {run_id: sweep / run_id / "metrics.json" for run_id in run_ids}
    return {run_id: path.stat().st_mtime_ns if path.exists() else None for run_id, path in paths.items()}


def hidden_units(metrics: dict) -> int:
    return metrics["config"]["model"]["hidden_units"]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_failed_job_leaves_the_others_running_and_the_exit_non_zero(launcher, tmp_path):
    plant_unwritable_weights(tmp_path / "outputs" / "sweeps" / "default", [*TINY, f"model.hidden_units={BROKEN}"])
    proc = launch(["-m", *TINY, f"model.hidden_units=8,{BROKEN},32", *LAUNCHERS[launcher], *QUIET], tmp_path)
    assert proc.returncode == 1, proc.stderr
    runs = sweep_runs(tmp_path)
    statuses = {hidden_units(m): m["status"] for m in runs.values()}
    assert statuses == {8: "completed", int(BROKEN): "failed", 32: "completed"}
    (failed_id,) = [run_id for run_id, m in runs.items() if m["status"] == "failed"]
    assert f"could not write {tmp_path}/outputs/sweeps/default/{failed_id}/model.pt: Is a directory" in \
        runs[failed_id]["error"]["message"]
    # the summary names what failed and where its record and log are; the last line says what to do
    failed_dir = f"outputs/sweeps/default/{failed_id}"
    assert f"failed in this sweep: {failed_dir}/metrics.json" in proc.stderr
    assert f"(log: {failed_dir}/launch.log)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 1 run(s) of this sweep failed")


@pytest.mark.slow
def test_status_command_counts_runs_and_shows_each_error_line(tmp_path, capsys):
    plant_unwritable_weights(tmp_path / "outputs" / "sweeps" / "default", [*TINY, f"model.hidden_units={BROKEN}"])
    launch(["-m", *TINY, f"model.hidden_units=8,{BROKEN}", *QUIET], tmp_path)
    assert analysis_main(["status", str(tmp_path / "outputs" / "sweeps" / "default")]) == 0
    out = capsys.readouterr().out
    assert "completed       1" in out and "failed          1" in out and "missing         0" in out
    assert "WriteError: [Errno 21] could not write" in out and "model.pt: Is a directory" in out


@pytest.mark.slow
def test_relaunch_skips_results_reruns_the_rest_and_rerun_forces_all(tmp_path):
    # completed (lr 0.05), diverged (lr 1e30) and failed (unwritable weights) runs, twice over
    for lr in ("0.05", "1e30"):
        plant_unwritable_weights(tmp_path / "outputs" / "sweeps" / "default",
                                 [*TINY, f"optimizer.lr={lr}", f"model.hidden_units={BROKEN}"])
    args = ["-m", *TINY, "optimizer.lr=0.05,1e30", f"model.hidden_units=8,{BROKEN}", *QUIET]
    first = launch(args, tmp_path)
    assert first.returncode == 1, first.stderr
    runs = sweep_runs(tmp_path)
    by_status = {m["status"]: run_id for run_id, m in runs.items() if m["status"] != "failed"}
    assert sorted(m["status"] for m in runs.values()) == ["completed", "diverged", "failed", "failed"]
    sweep = tmp_path / "outputs" / "sweeps" / "default"
    (sweep / by_status["completed"] / "metrics.json").unlink()  # as if its job had been lost: missing
    before = stamps(sweep, runs)

    again = launch(args, tmp_path)
    assert again.returncode == 1, again.stderr  # the failed ones fail again
    log = again.stdout + again.stderr
    assert log.count("skipping") == 1 and f"{by_status['diverged']}: already diverged" in log
    after = sweep_runs(tmp_path)
    assert after[by_status["completed"]]["status"] == "completed"  # the missing run ran again
    now = stamps(sweep, runs)
    assert {run_id for run_id in runs if now[run_id] != before[run_id]} == set(runs) - {by_status["diverged"]}

    forced = launch(args + ["rerun=true"], tmp_path)
    assert "skipping" not in forced.stdout + forced.stderr
    after_forced = stamps(sweep, runs)
    assert all(after_forced[run_id] != now[run_id] for run_id in runs)


@pytest.mark.slow
def test_the_default_launcher_runs_the_jobs_in_two_worker_processes_at_once(tmp_path):
    """Without hydra/launcher=..., on a machine of at least two cores (n_jobs: one worker per core), each run
    names the worker that ran it (its launch.log too): two processes, which live for the whole sweep."""
    import os

    from tests.helpers import compose_config

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the default launcher runs the sweep in one worker")
    hydra = compose_config([], return_hydra_config=True).hydra
    assert hydra.runtime.choices["hydra/launcher"] == "parallel" and hydra.launcher.n_jobs >= 2
    # named only because the tests' launch() runs other multiruns one job at a time (tests/helpers.py)
    proc = launch(["-m", *TINY, "model.hidden_units=8,16", "seed=0,1", "hydra/launcher=parallel", *QUIET], tmp_path)
    assert proc.returncode == 0, proc.stderr
    log = proc.stdout + proc.stderr
    assert "Launching 4 jobs on 2 workers (4 tasks)" in log
    pids = {line.rsplit(" ", 1)[1] for line in log.splitlines() if " ran in worker " in line}
    assert len(pids) == 2, log  # the launching process runs no job: it logs no such line
    runs = sweep_runs(tmp_path)
    assert sorted((hidden_units(m), m["seed"]) for m in runs.values()) == [(8, 0), (8, 1), (16, 0), (16, 1)]
    assert all(m["status"] == "completed" for m in runs.values())
    for run_id in runs:  # each run's own log names its worker
        (line,) = [x for x in (tmp_path / "outputs/sweeps/default" / run_id / "launch.log").read_text().splitlines()
                   if " ran in worker " in x]
        assert line.rsplit(" ", 1)[1] in pids


@pytest.mark.slow
def test_the_parallel_launcher_trains_a_lockstep_group_as_one_task(tmp_path):
    args = [*TINY, "seed=0,1,2", "corruption=labels", "corruption.prob=0.3", *QUIET]
    proc = launch(["-m", *PARALLEL, "trainer.ensemble=2", *args], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Launching 3 jobs on 2 workers (2 tasks)" in proc.stdout + proc.stderr
    together = sweep_runs(tmp_path)
    assert sum(any("lockstep" in note for note in m["notes"]) for m in together.values()) == 2
    alone = launch(["-m", *args, "name=alone"], tmp_path)
    assert alone.returncode == 0, alone.stderr
    apart = sweep_runs(tmp_path, "alone")
    assert sorted(together) == sorted(apart)
    for run_id, metrics in together.items():
        assert metrics["status"] == "completed"
        assert metrics["final"]["train_loss"] == pytest.approx(apart[run_id]["final"]["train_loss"], rel=1e-6)


def test_a_sweep_of_one_task_runs_in_the_launching_process(tmp_path):
    proc = launch(["-m", *PARALLEL, *TINY, "seed=0", *QUIET], tmp_path)
    assert proc.returncode == 0, proc.stderr
    log = proc.stdout + proc.stderr
    assert "Launching 1 jobs locally" in log and " ran in worker " not in log
    assert [m["status"] for m in sweep_runs(tmp_path).values()] == ["completed"]


def test_the_worker_count_is_one_per_gpu_else_one_per_core(monkeypatch):
    import os

    import torch

    from gen.sweeps import workers

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert workers.worker_count() == 16
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5,7")
    assert workers.visible_gpus() == ["2", "3", "5", "7"] and workers.worker_count() == 4


def test_without_a_gpu_driver_the_worker_count_imports_no_torch():
    """The launching process of a CPU sweep never needs torch (2-3 s): the worker count does not import it."""
    import subprocess
    import sys

    from gen.sweeps.workers import GPU_DRIVER_FILES

    if any(os.path.exists(path) for path in GPU_DRIVER_FILES):
        pytest.skip("a GPU driver is installed: torch counts the GPUs")
    code = ("import sys; from gen.sweeps.workers import worker_count; n = worker_count(); "
            "print(n, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(os.sched_getaffinity(0))), "False"]


def test_workers_lock_distinct_gpus(monkeypatch, tmp_path):
    """Each pin takes a GPU no other live worker holds; with all taken, a lock attempt would wait."""
    import fcntl

    from gen.sweeps import workers

    monkeypatch.setattr(workers, "LOCK_DIR", tmp_path)
    first, first_lock = workers._lock_a_gpu(["0", "1"])
    second, second_lock = workers._lock_a_gpu(["0", "1"])
    assert {first, second} == {"0", "1"}
    with open(tmp_path / "gpu-0.lock", "w") as probe, pytest.raises(BlockingIOError):
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    first_lock.close()
    assert workers._lock_a_gpu(["0", "1"])[0] == first


@pytest.mark.slow
def test_multirun_end_writes_the_analysis_unless_turned_off(tmp_path):
    on = launch(["-m", *TINY, "model.hidden_units=8,16", "name=on"], tmp_path)
    assert on.returncode == 0, on.stderr
    assert (tmp_path / "outputs" / "sweeps" / "on" / "analysis" / "report.md").exists()
    off = launch(["-m", *TINY, "model.hidden_units=8,16", "name=off", "analysis.auto=false"], tmp_path)
    assert off.returncode == 0, off.stderr
    assert len(sweep_runs(tmp_path, "off")) == 2
    assert not (tmp_path / "outputs" / "sweeps" / "off" / "analysis").exists()


@pytest.mark.slow
def test_each_plain_multirun_gets_its_own_folder_and_a_relaunch_finds_it(tmp_path):
    widths = ["-m", *TINY, "model.hidden_units=8,16", "analysis.auto=false"]
    seeds = ["-m", *TINY, "seed=0,1", "analysis.auto=false"]
    assert launch(widths, tmp_path).returncode == 0 and launch(seeds, tmp_path).returncode == 0
    folders = sorted(p.name for p in (tmp_path / "outputs" / "sweeps").iterdir())
    assert len(folders) == 2 and "model.hidden_units=8,16" in " ".join(folders), folders
    (seeds_folder,) = [f for f in folders if "seed=0,1" in f]
    assert len(sweep_runs(tmp_path, seeds_folder)) == 2
    # the same command, its overrides in another order and with how-to-run keys added: the same folder
    again = launch(["-m", *reversed(seeds[1:]), "rerun=false", "trainer.ensemble=2"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (tmp_path / "outputs" / "sweeps").iterdir()) == folders
    assert (again.stdout + again.stderr).count("already completed") == 2


def test_a_sweep_folder_name_is_a_plain_folder_name_and_unique():
    import re

    from gen.sweeps.sweep_name import MAX_LENGTH, sweep_name

    plain = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.,=+-]{{0,{MAX_LENGTH - 1}}}")  # no separator, not hidden

    assert sweep_name("mine", ["seed=0,1"]) == "mine"
    assert sweep_name(None, []) == sweep_name(None, ["rerun=true", "hydra/launcher=slurm"]) == "default"
    odd = [sweep_name(None, ["measure.names=[margin,l2]"]), sweep_name(None, ["~measure.names=[margin,l1]"]),
           sweep_name(None, [f"seed={','.join(map(str, range(200)))}"]), sweep_name(None, ["optimizer/schedule=cosine"])]
    assert sweep_name(None, ["seed=1", "seed=0,1"]) != sweep_name(None, ["seed=0,1", "seed=1"])
    assert len(set(odd)) == 4 and all(plain.fullmatch(name) for name in odd), odd


COUNT_COMPOSES = """
import atexit, json, os, runpy, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl

compose, composed = ConfigLoaderImpl.load_sweep_config, []

def counted(self, master_config, sweep_overrides):
    composed.append([o for o in sweep_overrides if o.startswith("seed=")])
    return compose(self, master_config, sweep_overrides)

def write():
    with open("composed.json", "w") as f:
        json.dump(composed, f)

ConfigLoaderImpl.load_sweep_config = counted
atexit.register(write)  # launch.py ends with os._exit once the atexit handlers ran (gen.cli.exit_without_teardown)
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))  # as `python launch.py` has it
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_a_multirun_composes_each_job_config_once(tmp_path):
    """gen's launchers compose and check every job before the first starts, so gen's sweeper does not
    compose them all once more first, as Hydra's basic sweeper does."""
    import subprocess
    import sys

    from tests.helpers import LAUNCH

    proc = subprocess.run([sys.executable, "-c", COUNT_COMPOSES, str(LAUNCH), "-m", *TINY, "seed=0,1", *QUIET],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(sweep_runs(tmp_path)) == 2
    composed = json.loads((tmp_path / "composed.json").read_text())
    assert sorted(composed) == [["seed=0"], ["seed=1"]], composed


def test_every_launcher_of_conf_composes_every_job_first():
    """What lets gen's sweeper skip its own pass; a launcher without it gets Hydra's check of the batch."""
    from types import SimpleNamespace

    import hydra.utils
    from omegaconf import OmegaConf

    from hydra_plugins.gen_launchers.gen_sweeper import GenSweeper
    from tests.helpers import CONF

    for path in sorted((CONF / "hydra" / "launcher").glob("*.yaml")):
        launcher = hydra.utils.get_class(OmegaConf.load(path)._target_)
        assert getattr(launcher, "composes_every_job_first", False), path.name
    composed = []
    loader = SimpleNamespace(load_sweep_config=lambda master_config, sweep_overrides: composed.append(sweep_overrides))
    sweeper = GenSweeper(max_batch_size=None)
    sweeper.config, sweeper.hydra_context = OmegaConf.create(), SimpleNamespace(config_loader=loader)
    sweeper.launcher = hydra.utils.get_class(OmegaConf.load(CONF / "hydra" / "launcher" / "sequential.yaml")._target_)()
    sweeper.validate_batch_is_legal([["seed=0"]])
    sweeper.launcher = object()  # not one of gen's
    sweeper.validate_batch_is_legal([["seed=0"]])
    assert composed == [["seed=0"]]
