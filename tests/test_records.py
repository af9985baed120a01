"""Records that cannot lie, run folders that cannot run code (issue 12), each point with its attack:
a planted pickle, an exploding learning rate, a hollow record, two launches of one sweep, path
traversal in ``name``, and a disk that fills up."""
import errno
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from gen.sweeps import status as run_status
from analysis.cli import main as analysis_main
from analysis.collect import collect
from gen import atomic, record
from gen.sweeps import ensemble, runlock
from gen.training import checkpoint
from gen.run import build_run, train, train_group
from gen.sweeps.run_id import run_id
from tests.helpers import REPO, TINY, compose_config, launch, metrics_files, read_metrics, train_and_read
from tests.launch_client import start_python

QUIET = ["analysis.auto=false"]
DEFAULT_SWEEP = ["name=default"]  # one known folder (a plain multirun is named after its overrides)


def comparable(metrics: dict) -> dict:
    """What must be equal between two runs of one config: everything but time, place and notes."""
    return {"final": metrics["final"], "history": [{k: v for k, v in row.items() if k != "seconds"}
                                                   for row in metrics["history"]]}


def one_run(root) -> tuple:
    (path,) = metrics_files(root / "outputs")
    return path.parent, read_metrics(path)


# ---- 1. nothing in a run folder executes code ------------------------------------------------
class Planted:
    """A pickle that, once unpickled, creates a marker file: what an attacker would plant."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_a_planted_pickle_never_runs_and_the_run_starts_from_scratch(tmp_path):
    first = launch(TINY, tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir, reference = one_run(tmp_path)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Planted(marker))
    pickle.loads(payload)  # the attack is real: a full unpickler runs it
    assert marker.exists()
    marker.unlink()
    (run_dir / "metrics.json").unlink()  # as if preempted: the relaunch resumes from checkpoint.pt
    (run_dir / "checkpoint.pt").write_bytes(payload)

    again = launch(TINY, tmp_path)
    assert again.returncode == 0, again.stderr
    assert not marker.exists()
    assert (run_dir / "checkpoint.pt.corrupt").read_bytes() == payload and not (run_dir / "checkpoint.pt").exists()
    warnings = [line for line in (again.stdout + again.stderr).splitlines() if "checkpoint.pt" in line]
    assert len(warnings) == 1 and f"{run_dir}/checkpoint.pt: not a readable checkpoint" in warnings[0]
    assert "the run starts from scratch" in warnings[0]
    assert comparable(read_metrics(run_dir / "metrics.json")) == comparable(reference)


def _checkpoint_of(overrides: list[str], where) -> bytes:
    """The bytes of a real gen checkpoint of the run ``overrides`` describes, after one epoch."""
    setup = build_run(compose_config(overrides), where)
    setup.trainer.extra_state = {"init_state": setup.init_state}
    setup.trainer.evaluate_row()  # what the loop does before the first epoch, and after it
    setup.trainer.end_epoch(setup.trainer.train_epoch())
    setup.trainer.save_checkpoint()
    return (where / "checkpoint.pt").read_bytes()


BAD_CHECKPOINTS = {
    "random bytes": lambda tmp: os.urandom(4096),
    "truncated": lambda tmp: _checkpoint_of(TINY, tmp)[:3000],
    "a foreign pickle": lambda tmp: pickle.dumps({"model": [1, 2, 3]}),
    "a torch file that is no checkpoint": lambda tmp: _saved({"weights": torch.ones(3)}, tmp),
    "another config's checkpoint": lambda tmp: _checkpoint_of([*TINY, "seed=7"], tmp),
    "this run's id over a state it refuses": lambda tmp: _saved(
        {"format": checkpoint.FORMAT, "run_id": run_id(compose_config(TINY)), "model": {}}, tmp),
}


def _saved(obj, tmp) -> bytes:
    torch.save(obj, tmp / "x.pt")
    return (tmp / "x.pt").read_bytes()


@pytest.mark.parametrize("kind", BAD_CHECKPOINTS)
def test_an_unusable_checkpoint_is_moved_aside_with_one_warning(kind, tmp_path, caplog):
    (tmp_path / "make").mkdir()
    planted = BAD_CHECKPOINTS[kind](tmp_path / "make")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(planted)
    cfg = compose_config(TINY)
    metrics = train_and_read(cfg, run_dir)
    assert metrics["status"] == "completed"
    assert (run_dir / "checkpoint.pt.corrupt").read_bytes() == planted
    warnings = [r.getMessage() for r in caplog.records if "checkpoint.pt" in r.getMessage()]
    assert len(warnings) == 1 and str(run_dir / "checkpoint.pt") in warnings[0], warnings
    assert comparable(metrics) == comparable(train_and_read(cfg, tmp_path / "fresh"))


def test_a_good_checkpoint_still_resumes_weights_only(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    run_dir = tmp_path / "run"
    _checkpoint_of(TINY, run_dir)
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("weights_only")) or real_load(*a, **k))
    metrics = train_and_read(compose_config(TINY), run_dir)
    assert loads and set(loads) == {True} and not (run_dir / "checkpoint.pt.corrupt").exists()
    assert f"resuming {run_dir} at epoch 2, step " in caplog.text  # one epoch done: the second next
    assert comparable(metrics) == comparable(train_and_read(compose_config(TINY), tmp_path / "fresh"))


def test_adashift_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    """AdaShift keeps a deque; checkpoints store it as a plain container and get it back."""
    overrides = [*TINY, "optimizer=adashift"]
    planted = _checkpoint_of(overrides, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    restored = checkpoint.from_plain(state["optimizer"])
    queues = [s["grad_queue"] for s in restored["state"].values()]
    assert queues and all(q.maxlen == 10 and len(q) > 0 for q in queues)
    assert planted and train_and_read(compose_config(overrides), tmp_path / "run")["status"] == "completed"


# ---- 2. an exploding run is diverged -----------------------------------------------------------
@pytest.mark.slow
def test_an_exploding_learning_rate_is_diverged_and_never_a_result(tmp_path):
    proc = launch(["-m", *TINY, "trainer.max_epochs=10", "optimizer.lr=0.05,1e6", *QUIET, *DEFAULT_SWEEP], tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = {m["config"]["optimizer"]["lr"]: m for m in map(read_metrics, metrics_files(tmp_path / "outputs"))}
    exploded = runs[1e6]
    assert exploded["status"] == "diverged" and runs[0.05]["status"] == "completed"
    assert exploded["divergence"]["rule"] == "loss_above_bound"
    assert exploded["divergence"]["evaluations_above"] == 3  # trainer.divergence.patience
    assert exploded["final"]["epochs"] == 3 < 10  # it stopped when the rule fired
    assert exploded["divergence"]["train_loss"] > exploded["divergence"]["bound"] == pytest.approx(
        10 * max(exploded["history"][0]["train_loss"], torch.log(torch.tensor(10.0)).item()))
    assert any("diverged (loss_above_bound" in note for note in exploded["notes"])
    collection = collect([tmp_path / "outputs" / "sweeps" / "default"])
    assert list(collection.runs["optimizer.lr"]) == [0.05] and list(collection.diverged["optimizer.lr"]) == [1e6]


def test_a_run_that_ends_above_the_bound_is_diverged(tmp_path):
    metrics = train_and_read(compose_config([*TINY, "optimizer.lr=1e6"]), tmp_path)  # 2 epochs: fewer than patience
    assert metrics["status"] == "diverged"
    assert metrics["divergence"]["rule"] == "loss_above_bound" and metrics["divergence"]["epoch"] == 2


def test_non_finite_loss_and_weights_are_named(tmp_path):
    metrics = train_and_read(compose_config([*TINY, "optimizer.lr=1e30"]), tmp_path / "a")
    assert metrics["status"] == "diverged"
    assert metrics["divergence"]["rule"] in ("non_finite_loss", "non_finite_parameters")


def test_the_divergence_keys_are_config_keys(tmp_path):
    impatient = train_and_read(compose_config([*TINY, "trainer.max_epochs=10", "optimizer.lr=1e6",
                                               "trainer.divergence.patience=1"]), tmp_path / "impatient")
    assert impatient["divergence"]["evaluations_above"] == 1 and impatient["final"]["epochs"] == 1
    lax = train_and_read(compose_config([*TINY, "optimizer.lr=1e6", "trainer.divergence.loss_factor=1e12"]),
                         tmp_path / "lax")
    assert lax["status"] == "completed"


def test_lockstep_follows_the_same_divergence_rule_per_member(tmp_path):
    variants = [[*TINY, "trainer.max_epochs=6", "optimizer.lr=0.05", "seed=0"],
                [*TINY, "trainer.max_epochs=6", "optimizer.lr=1e6", "seed=1"]]
    group = [ensemble.Member(compose_config(v + ["trainer.ensemble=2"]), tmp_path / "lockstep" / str(i), tuple(v),
                             None) for i, v in enumerate(variants)]
    train_group(group)
    for i, overrides in enumerate(variants):
        together = read_metrics(group[i].run_dir / "metrics.json")
        alone = train_and_read(compose_config(overrides), tmp_path / "alone" / str(i))
        assert any("lockstep" in note for note in together["notes"])
        assert together["status"] == alone["status"]
        if alone["status"] == "diverged":  # where and why; an exploded loss's digits are float noise
            assert {k: together["divergence"][k] for k in ("rule", "epoch", "step")} == \
                {k: alone["divergence"][k] for k in ("rule", "epoch", "step")}
        else:
            assert together["final"]["train_loss"] == pytest.approx(alone["final"]["train_loss"], rel=1e-6)
    assert read_metrics(group[1].run_dir / "metrics.json")["divergence"]["rule"] == "loss_above_bound"


# ---- 3. a record is checked before it is believed -------------------------------------------------
@pytest.mark.slow
def test_a_hollow_record_is_invalid_everywhere_and_the_relaunch_trains_it(tmp_path):
    args = ["-m", *TINY, "model.hidden_units=8,16", *QUIET, *DEFAULT_SWEEP]
    assert launch(args, tmp_path).returncode == 0
    sweep = tmp_path / "outputs" / "sweeps" / "default"
    hollow_dir = sorted(p.parent for p in metrics_files(sweep))[0]
    reference = read_metrics(hollow_dir / "metrics.json")
    (hollow_dir / "metrics.json").write_text('{"status": "completed"}')

    folders = {f.path: f for f in run_status.scan([sweep])}
    assert folders[hollow_dir].status == "invalid" and "needs 'schema'" in folders[hollow_dir].reason
    collection = collect([sweep])
    assert len(collection.runs) == 1 and collection.counts()["invalid"] == 1
    assert analysis_main([str(sweep)]) == 0
    report = (sweep / "analysis" / "report.md").read_text()
    assert "invalid (1)" in report and f"{hollow_dir}: metrics.json: a completed record needs 'schema'" in report

    again = launch(args, tmp_path)
    assert again.returncode == 0, again.stderr
    log = again.stdout + again.stderr
    assert log.count("skipping") == 1 and f"{hollow_dir}/metrics.json is invalid" in log
    assert comparable(read_metrics(hollow_dir / "metrics.json")) == comparable(reference)
    assert (hollow_dir / "metrics.json.invalid").read_text() == '{"status": "completed"}'


def test_a_record_that_is_not_its_own_is_refused(tmp_path):
    cfg = compose_config(TINY)
    home = tmp_path / run_id(cfg)
    good = train_and_read(cfg, home)
    assert record.read(home, run_id(cfg)).status == "completed"
    elsewhere = tmp_path / ("0" * 12)  # another run's folder
    elsewhere.mkdir()
    (elsewhere / "metrics.json").write_text(json.dumps(good))
    assert "is not the folder's" in record.read(elsewhere).reason
    edited = {**good, "config": {**good["config"], "seed": 5}, "seed": 5}  # claims to be another config
    (home / "metrics.json").write_text(json.dumps(edited))
    assert "not the id of its own config" in record.read(home).reason
    typed = {**good, "final": {**good["final"], "train_loss": "low"}}
    (home / "metrics.json").write_text(json.dumps(typed))
    assert record.read(home).reason == "metrics.json: 'final.train_loss' is 'low', not a number"
    (home / "metrics.json").write_text(json.dumps(good).replace('"train_loss": ' + json.dumps(
        good["final"]["train_loss"]), '"train_loss": NaN', 1))
    assert record.read(home).status == "unreadable"
    failed = {k: good[k] for k in record.COMMON} | {"status": "failed"}
    (home / "metrics.json").write_text(json.dumps(failed))
    assert record.read(home).reason == "metrics.json: a failed record needs 'error'"


def test_the_writer_refuses_an_invalid_record(tmp_path):
    with pytest.raises(ValueError, match="refusing to write an invalid metrics.json"):
        record.write(tmp_path, {"status": "completed"})
    assert not (tmp_path / "metrics.json").exists()


# ---- 4. two launches of one sweep ---------------------------------------------------------------
@pytest.mark.slow
def test_two_concurrent_launches_train_every_run_once(tmp_path):
    args = ["-m", *TINY, "trainer.max_epochs=15", "model.hidden_units=8,16,24,32", "seed=0,1", *QUIET]
    env = {**os.environ}
    env.pop("HYDRA_FULL_ERROR", None)
    procs = [start_python([REPO / "launch.py", *args], tmp_path, env) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    logs = [out + err for out, err in outputs]
    assert [p.returncode for p in procs] == [0, 0], logs
    runs = [read_metrics(p) for p in metrics_files(tmp_path / "outputs")]
    assert len(runs) == 8 and all(m["status"] == "completed" for m in runs)
    trained = sum(log.count("[gen][INFO] - completed ") for log in logs)
    assert trained == 8, logs  # each run trained by exactly one of the launches
    assert not any("Error" in log or "Traceback" in log for log in logs)
    assert not list((tmp_path / "outputs").rglob("*.tmp")) and not list((tmp_path / "outputs").rglob("run.lock"))


@pytest.mark.slow
def test_a_run_held_by_a_live_process_is_skipped_and_counted_apart(tmp_path):
    sweep = tmp_path / "outputs" / "sweeps" / "default"
    held_id = run_id(compose_config([*TINY, "seed=1"]))
    (sweep / held_id).mkdir(parents=True)
    holder = runlock.acquire(sweep / held_id)
    try:
        proc = launch(["-m", *TINY, "seed=0,1", *QUIET, *DEFAULT_SWEEP], tmp_path)
    finally:
        holder.release()
    assert proc.returncode == 0, proc.stderr
    log = proc.stdout + proc.stderr
    assert log.count("running in another process") == 2  # the skip line, and the summary's count
    assert f"skipping {sweep / held_id}: running in another process (pid {os.getpid()}" in log
    assert "1 run(s) of this sweep are running in another process" in log
    assert "failed in this sweep" not in log
    assert not (sweep / held_id / "metrics.json").exists()
    released = launch(["-m", *TINY, "seed=0,1", *QUIET, *DEFAULT_SWEEP], tmp_path)
    assert released.returncode == 0  # released: now it trains
    assert read_metrics(sweep / held_id / "metrics.json")["status"] == "completed"


def test_a_lock_dies_with_its_process_even_on_kill_9(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)  # what makes a folder a run folder for analysis
    code = ("import sys, time; from gen.sweeps import runlock; lock = runlock.acquire(sys.argv[1]); "
            "print('held' if lock else 'busy', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert runlock.acquire(run_dir) is None
        (folder,) = run_status.scan([run_dir])
        assert folder.status == "running" and folder.held
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    assert (run_dir / "run.lock").exists()  # the file stays behind; the lock does not
    (folder,) = run_status.scan([run_dir], now=time.time() + 3600)
    assert folder.status == "missing" and not folder.held
    lock = runlock.acquire(run_dir)
    assert lock is not None
    lock.release()
    assert not (run_dir / "run.lock").exists()


def test_temp_files_have_unique_names(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: seen.append(str(src)) or real_replace(src, dst))
    checkpoint.save(tmp_path, {"x": torch.ones(1)}, "r")
    checkpoint.save(tmp_path, {"x": torch.ones(1)}, "r")
    assert len(set(seen)) == 2 and all(".checkpoint.pt." in s and s.endswith(".tmp") for s in seen)


# ---- 5. keys that become paths are names ------------------------------------------------------
PLAIN = ("a plain folder name has 1 to 200 ASCII letters, digits and _ . = + -, not starting with a dot; choose the "
         "folder itself with hydra.sweep.dir")


@pytest.mark.parametrize("name, why", [("../../../escaped", "holds characters not allowed ('/')"), ("", None),
                                       ("..", "must not start with '.'"), (".", "must not start with '.'"),
                                       ("a/b", "holds characters not allowed ('/')"),
                                       (".hidden", "must not start with '.'")])
def test_a_name_that_is_not_a_plain_folder_name_is_one_config_error(name, why, tmp_path):
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    proc = launch(["-m", *TINY, f"name={name}", *QUIET], work)
    assert proc.returncode == 2, proc.stderr
    allowed = "must not be empty" if not name else f"{why}; {PLAIN}"
    assert proc.stderr.strip().splitlines() == [f"error: invalid config: name={name}: {allowed}"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "c"]  # nothing written anywhere


@pytest.mark.slow
def test_hydra_sweep_dir_still_chooses_the_folder(tmp_path):
    proc = launch(["-m", *TINY, "name=my.sweep-1", f"hydra.sweep.dir={tmp_path / 'chosen'}", *QUIET], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (path,) = metrics_files(tmp_path / "chosen")
    assert read_metrics(path)["status"] == "completed"


# ---- 7. a full disk loses nothing and names the file ---------------------------------------------
def _fill_on(monkeypatch, target: str):
    """Every write of a temp file for ``target`` (a file name) fails as on a full disk."""
    real_write = os.write

    def write(fd, data):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f".{target}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(atomic.os, "write", write)


def test_weights_that_cannot_be_written_fail_the_run_naming_the_file(tmp_path, monkeypatch):
    _fill_on(monkeypatch, "model.pt")
    with pytest.raises(atomic.WriteError, match=f"could not write {tmp_path}/model.pt: No space left on device"):
        train(compose_config(TINY), tmp_path)
    failed = read_metrics(tmp_path / "metrics.json")
    assert failed["status"] == "failed" and "model.pt: No space left on device" in failed["error"]["message"]
    assert not (tmp_path / "model.pt").exists() and (tmp_path / "init.pt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_full_disk_leaves_no_record_and_no_half_file_and_the_error_names_it(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    for name in ("model.pt", "metrics.json"):
        _fill_on(monkeypatch, name)
    with pytest.raises(record.NotRecorded, match=f"could not write {run_dir}/metrics.json: No space left"):
        train(compose_config(TINY), run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["init.pt"]  # no record, no temp file, no lock
    monkeypatch.undo()
    assert train_and_read(compose_config(TINY), run_dir)["status"] == "completed"  # space again: it trains


@pytest.fixture
def tiny_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.slow
def test_a_run_on_a_full_tmpfs_exits_non_zero_naming_the_file(tiny_disk, tmp_path):
    proc = launch([*TINY, "model.hidden_units=256", f"hydra.run.dir={tiny_disk}/run"], tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"could not write {tiny_disk}/run/" in last and "No space left" in last
    left = sorted(p.name for p in (tiny_disk / "run").iterdir())
    assert not [n for n in left if n.endswith(".tmp")] and "model.pt" not in left


@pytest.mark.slow
def test_metrics_json_has_the_mode_of_the_other_files(tmp_path):
    proc = launch(TINY, tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir, _ = one_run(tmp_path)
    modes = {p.name: p.stat().st_mode & 0o777 for p in run_dir.iterdir() if p.is_file()}
    assert len(set(modes.values())) == 1, modes
    assert modes["metrics.json"] == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
