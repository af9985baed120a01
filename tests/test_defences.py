"""Run folders under attack (issue 24): each test plants what a hostile user of a shared filesystem
would — a symlink, another run's folder, a FIFO, a loop, deep JSON, a mode-000 folder — and checks that
nothing is written through it, nothing is lost, nothing is counted twice or left out, nothing hangs,
and every refusal is one line."""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.collect import collect
from analysis.testing import make_config, write_run
from gen import record
from gen.run import train, train_group
from gen.sweeps import run_folder, runlock
from gen.sweeps import status as run_status
from gen.sweeps.run_id import run_id
from tests.helpers import REPO, TINY, compose_config, launch, read_metrics, train_and_read

QUIET = ["analysis.auto=false", "name=default"]


def error_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def sweep(tmp_path):
    """A finished sweep S of four completed runs (written as gen writes them, without training)."""
    root = tmp_path / "S"
    for h in (8, 16, 32, 64):
        write_run(root, make_config("S", **{"model.hidden_units": h}), test_acc=0.8)
    return root


def a_run(root: Path) -> Path:
    return sorted(p for p in root.iterdir() if (p / "metrics.json").exists())[0]


# ---- 1. nothing is written through a link ---------------------------------------------------------
@pytest.mark.parametrize("planted", ["run.lock", "launch.log", ".hydra/config.yaml"])
def test_a_planted_link_in_a_run_folder_is_refused_and_its_target_untouched(planted, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    run_dir = tmp_path / "S2"
    (run_dir / planted).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / planted).symlink_to(victim)
    proc = launch([*TINY, f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc) == [f"error: {run_dir / planted} is a symbolic link (to {victim}); gen and Hydra "
                                 f"write nothing through a link: remove it"]
    assert victim.read_text() == "precious\n"
    planted_paths = {Path(planted), *Path(planted).parents} - {Path(".")}
    assert {p.relative_to(run_dir) for p in run_dir.rglob("*")} == planted_paths  # nothing written beside it


def test_the_lock_itself_is_never_opened_through_a_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.lock").symlink_to(victim)
    with pytest.raises(runlock.LinkRefused, match="is a symbolic link"):
        runlock.acquire(tmp_path / "run")
    assert victim.read_text() == "precious\n"


def test_a_run_folder_that_links_out_of_its_parent_is_refused(tmp_path):
    elsewhere = tmp_path / "someone_else"
    elsewhere.mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "r").symlink_to(elsewhere)
    proc = launch([*TINY, f"hydra.run.dir={tmp_path / 'runs' / 'r'}"], tmp_path)
    assert proc.returncode == 2 and "is a symbolic link to" in error_lines(proc)[0], proc.stderr
    assert list(elsewhere.iterdir()) == []
    beside = tmp_path / "runs" / "real"  # a link to a folder beside it is only another name
    beside.mkdir()
    (tmp_path / "runs" / "alias").symlink_to(beside)
    run_folder.check(tmp_path / "runs" / "alias")


def test_a_multirun_with_a_planted_link_stops_before_any_job(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    sweep = tmp_path / "outputs" / "sweeps" / "default"
    planted = sweep / run_id(compose_config([*TINY, "seed=1"]))
    planted.mkdir(parents=True)
    (planted / "launch.log").symlink_to(victim)
    proc = launch(["-m", *TINY, "seed=0,1", *QUIET], tmp_path)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1 and "launch.log is a symbolic link" in proc.stderr
    assert victim.read_text() == "precious\n" and not list(sweep.rglob("metrics.json"))


# ---- 2. a run folder is only ever written by the run whose id it bears -------------------------------
@pytest.mark.parametrize("extra", [[], ["dataset=cifar10", "dataset.root=/nonexistent"]])
def test_another_runs_folder_is_never_moved_overwritten_or_trained_into(extra, tmp_path):
    theirs = compose_config(TINY)
    folder = tmp_path / run_id(theirs)
    train(theirs, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    mine = [*TINY, "seed=5", "model.hidden_units=32", *extra]
    proc = launch([*mine, f"hydra.run.dir={folder}"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc) == [
        f"error: run folder {folder} holds the record of another run (run_id {run_id(theirs)}, not "
        f"{run_id(compose_config(mine))}); a run folder is only ever written by the run whose id it bears: "
        f"choose another folder (hydra.run.dir) or move that one away"]
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert not (folder / ".hydra").exists() and not (folder / "metrics.json.invalid").exists()
    with pytest.raises(run_folder.Refused):  # gen.run itself refuses too (train() without the launcher)
        train(compose_config([*TINY, "seed=5", "model.hidden_units=32"]), folder)
    assert read_metrics(folder / "metrics.json")["run_id"] == run_id(theirs)


# ---- 3, 8. each run folder once; links and loops ---------------------------------------------------
def test_a_run_reached_twice_is_counted_once(sweep, tmp_path):
    (sweep / "latest").symlink_to(a_run(sweep))
    (sweep / "self").symlink_to(".")  # a loop
    (sweep / "a").symlink_to(sweep / "b")
    (sweep / "b").symlink_to(sweep / "a")  # a loop of two links
    assert len(collect([sweep]).runs) == 4
    assert len(run_status.scan([sweep, sweep, a_run(sweep)])) == 4
    assert {f.path for f in run_status.scan([sweep])} == {p for p in sweep.iterdir()
                                                            if not p.is_symlink() and p.is_dir()}
    outside = tmp_path / "elsewhere"
    write_run(outside, make_config("S", **{"model.hidden_units": 128}), test_acc=0.8)
    (sweep / "more").symlink_to(outside)  # a link out of the sweep is followed once: its run counts
    assert len(run_status.scan([sweep])) == 5


def test_status_command_survives_a_loop(sweep, capsys):
    from analysis.cli import main

    (sweep / "self").symlink_to(".")
    assert main(["status", str(sweep), str(sweep)]) == 0
    assert f"{sweep}, {sweep}: 4 run folders" in capsys.readouterr().out


# ---- 4. an unreadable folder is listed, never dropped ---------------------------------------------
SETPRIV = shutil.which("setpriv")
WITHOUT_OVERRIDE = pytest.mark.skipif(SETPRIV is None or os.geteuid() != 0,
                                      reason="needs root and setpriv to drop the permission override")


def as_another_user(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``args`` run as root without the capabilities that let root ignore permissions (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH): a folder of mode 000 is then as closed to it as to any other user.  (The tests
    run as root; dropping to an unprivileged uid is impossible here, the interpreter lives under /root.)"""
    caps = "-dac_override,-dac_read_search"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([SETPRIV, f"--bounding-set={caps}", f"--inh-caps={caps}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@WITHOUT_OVERRIDE
def test_an_unreadable_run_folder_is_listed_as_unreadable(sweep):
    root = sweep
    locked = a_run(root)
    locked.chmod(0)
    proc = as_another_user([sys.executable, "-m", "analysis", "status", str(root)], REPO)
    assert proc.returncode == 0, proc.stderr
    assert f"{root}: 4 run folders" in proc.stdout
    assert f"  {locked}  cannot list the folder: Permission denied" in proc.stdout
    assert "  unreadable      1" in proc.stdout


# ---- 5. a sweep named analysis ----------------------------------------------------------------
def test_a_sweep_named_analysis_is_found_and_the_analysis_output_is_not_a_run(tmp_path):
    sweeps = tmp_path / "outputs" / "sweeps"
    for h in (8, 16):
        write_run(sweeps / "analysis", make_config("analysis", **{"model.hidden_units": h}), test_acc=0.8)
    write_run(sweeps / "other", make_config("other"), test_acc=0.8)
    from analysis.cli import main
    assert main([str(sweeps / "analysis")]) == 0  # writes sweeps/analysis/analysis/ (runs.csv, status.csv...)
    assert (sweeps / "analysis" / "analysis" / "runs.csv").exists()
    assert len(run_status.scan([sweeps])) == 3


# ---- 6. a dead run is not running ------------------------------------------------------------
def test_a_killed_run_is_not_running_even_in_its_first_minutes(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"x")  # touched a moment ago
    code = ("import sys, time; from gen.sweeps import runlock; lock = runlock.acquire(sys.argv[1]); "
            "print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_status.scan([run_dir])[0].status == "running"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    (folder,) = run_status.scan([run_dir])  # now, not 15 minutes later
    assert folder.status == "interrupted" and not folder.held


def test_a_reused_pid_does_not_keep_a_dead_run_running(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "run.lock").write_text(f"{os.uname().nodename} {os.getpid()}\n")  # a live pid, no lock held
    old = time.time() - 3600
    for path in (run_dir / "run.lock", run_dir / ".hydra", run_dir):
        os.utime(path, (old, old))
    assert runlock.holder_alive(run_dir) is False
    assert run_status.scan([run_dir])[0].status == "missing"
    (run_dir / "run.lock").write_text(f"another-host {os.getpid()}\n")  # another host: this machine cannot tell
    assert runlock.holder_alive(run_dir) is None


# ---- 7, 9, 10. hostile records: no hang, no crash, no wrong type believed --------------------------------
def hostile_records(run_dir: Path) -> dict:
    """What to plant as metrics.json -> the reason a reader gives."""
    return {
        "fifo": "metrics.json: not a regular file but a FIFO",
        "dev_zero": "metrics.json: a symbolic link, not a file (gen reads no file through a link)",
        "huge": f"metrics.json: {record.MAX_RECORD_BYTES + 1} bytes, more than the {record.MAX_RECORD_BYTES} "
                f"gen reads of it",
        "deep": "metrics.json: nested too deeply to be a record",
    }


def plant(run_dir: Path, kind: str) -> None:
    path = run_dir / "metrics.json"
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "huge":
        with open(path, "wb") as f:
            f.truncate(record.MAX_RECORD_BYTES + 1)  # sparse: costs no disk
    elif kind == "deep":
        path.write_text("[" * 100000)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "huge", "deep"])
def test_a_hostile_record_is_unreadable_at_once_with_its_reason(kind, sweep):
    run_dir = a_run(sweep)
    plant(run_dir, kind)
    found = record.read(run_dir)
    assert (found.status, found.reason) == ("unreadable", hostile_records(run_dir)[kind])
    proc = subprocess.run([sys.executable, "-m", "analysis", "status", str(sweep)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and f"  {run_dir}  {found.reason}" in proc.stdout, proc.stderr


@pytest.mark.parametrize("block, key, value, why", [
    ("final", "gen_gap", "oops", "'final.gen_gap' is 'oops', not a number or null"),
    ("final", "test_error", [1], "'final.test_error' is [1], not a number or null"),
    ("measures", "margin", "big", "'measures.margin' is 'big', not a number or null"),
    ("measures", "margin", True, "'measures.margin' is True, not a number or null"),
])
def test_a_record_with_a_number_of_the_wrong_type_is_invalid(block, key, value, why, sweep):
    run_dir = a_run(sweep)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics[block][key] = value
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    assert record.read(run_dir).reason == f"metrics.json: {why}"
    collection = collect([sweep])
    assert len(collection.runs) == 3 and collection.counts()["invalid"] == 1
    collection.runs.to_parquet(sweep / "runs.parquet")  # the table's columns have one type each


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fifo", "deep"])
def test_a_relaunch_moves_a_hostile_record_aside_and_counts_the_run_trained(kind, tmp_path):
    args = ["-m", *TINY, "seed=0,1", *QUIET]
    assert launch(args, tmp_path).returncode == 0
    sweep = tmp_path / "outputs" / "sweeps" / "default"
    run_dir = sweep / run_id(compose_config([*TINY, "seed=0"]))
    plant(run_dir, kind)
    again = launch(args, tmp_path, timeout=120)
    assert again.returncode == 0, again.stderr
    log = again.stdout + again.stderr
    assert f"{run_dir}/metrics.json is unreadable" in log and "moved to metrics.json.unreadable" in log
    assert "sweep: 2/2 runs finished (1 trained, 0 failed, 1 skipped)" in log
    assert record.read(run_dir).status == "completed"
    aside = (run_dir / "metrics.json.unreadable").lstat()
    assert stat.S_ISFIFO(aside.st_mode) if kind == "fifo" else stat.S_ISREG(aside.st_mode)


# ---- 11. duplicate jobs -----------------------------------------------------------------------------
@pytest.mark.parametrize("lockstep", [[], ["trainer.ensemble=4"]])
def test_duplicate_jobs_run_once_and_the_progress_line_counts_runs(lockstep, tmp_path):
    proc = launch(["-m", *TINY, "seed=0,0,1", *lockstep, *QUIET], tmp_path)
    assert proc.returncode == 0, proc.stderr
    log = proc.stdout + proc.stderr
    assert "#1 is the same run as #0" in log and "launched once" in log
    assert "sweep: 2/2 runs finished (2 trained, 0 failed, 0 skipped)" in log
    assert "3/2" not in log and "Traceback" not in log
    assert len(list((tmp_path / "outputs").rglob("metrics.json"))) == 2


# ---- 12. a run folder this user cannot write ------------------------------------------------------
@WITHOUT_OVERRIDE
def test_a_run_folder_another_user_cannot_write_stops_the_sweep_with_one_line(tmp_path):
    sweep = tmp_path / "outputs" / "sweeps" / "default"
    locked = sweep / run_id(compose_config([*TINY, "seed=1"]))
    locked.mkdir(parents=True)
    locked.chmod(0)
    proc = as_another_user([sys.executable, str(REPO / "launch.py"), "-m", *TINY, "seed=0,1", *QUIET], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc) == [f"error: cannot read run folder {locked}: Permission denied"]
    assert "Traceback" not in proc.stderr and not list(sweep.rglob("metrics.json"))
    locked.chmod(0o555)  # readable, not writable by that user: Hydra's launch.log could not be written
    proc = as_another_user([sys.executable, str(REPO / "launch.py"), "-m", *TINY, "seed=0,1", *QUIET], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc) == [f"error: cannot write in run folder {locked}: Permission denied"]


# ---- 13. values a library would refuse are refused by gen first ----------------------------------------
LONG_NAME = "a" * 300
REFUSED = {
    "dataset.test_fraction=0.001": "invalid config: dataset.test_fraction=0.001: the stratified split needs at least "
                                   "10 test and 10 training images (one per class) of the 1797: from 0.0056 to 0.9944",
    "model.hidden_units=99999999999999999999999": "invalid config: model.hidden_units=99999999999999999999999: must "
                                                  "fit in a 64-bit integer (from -2^63 to 2^63 - 1)",
    "name=日本語": "invalid config: name=日本語: holds characters not allowed ('日' '本' '語'); a plain folder name has "
                "1 to 200 ASCII letters, digits and _ . = + -, not starting with a dot",
    f"name={LONG_NAME}": f"invalid config: name={'a' * 100}… (300 characters): is 300 characters long; a plain "
                         f"folder name has 1 to 200 ASCII letters, digits and _ . = + -, not starting with a dot; "
                         f"choose the folder itself with hydra.sweep.dir",
    "model.name=日本": "invalid config: model.name=日本: characters outside ASCII need quotes in an override "
                     "(key='value')",
}


@pytest.mark.parametrize("override", list(REFUSED))
@pytest.mark.parametrize("mode", [[], ["-m", "seed=0,1"]])
def test_a_value_a_library_would_refuse_is_one_line_from_gen(override, mode, tmp_path):
    proc = launch([*mode, *TINY, override], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc) == [f"error: {REFUSED[override]}"] and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_huge_list_is_refused_at_once_and_not_echoed_whole(tmp_path):
    betas = "optimizer.betas=[" + ",".join(["0.5"] * 30000) + "]"
    started = time.monotonic()
    proc = launch([*TINY, betas], tmp_path, timeout=60)
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert line.endswith(f"… ({len(betas) - len('optimizer.betas=')} characters): an override may have at most 2000 "
                         f"characters, this one has {len(betas)}; sweep a long range with range(start,stop)")
    assert len(line) < 400 and time.monotonic() - started < 30  # Hydra's parser alone would take minutes
    within = "optimizer.betas=[" + ",".join(["0.5"] * 300) + "]"  # parsed by Hydra, refused by gen's check
    proc = launch([*TINY, "optimizer=adam", within], tmp_path, timeout=120)
    assert proc.returncode == 2 and error_lines(proc)[0].endswith("(1500 characters): expected a list of 2 values")
    proc = launch([*TINY, within], tmp_path, timeout=120)  # sgd has no betas: Hydra's own error, shortened too
    assert proc.returncode == 2 and len(error_lines(proc)[0]) < 400, proc.stderr


# ---- 14. small untruths ------------------------------------------------------------------------
def test_a_run_another_process_trained_is_not_counted_as_trained_by_this_sweep(tmp_path):
    from gen.sweeps.sweep_progress import SweepProgress

    mine = tmp_path / "S" / "mine"
    theirs = tmp_path / "S" / run_id(compose_config(["name=S"]))
    progress = SweepProgress([mine, theirs])
    assert write_run(tmp_path / "S", make_config("S"), test_acc=0.8) == theirs  # meanwhile, not by this process
    assert progress.finished(theirs) == ("sweep: 1/2 runs finished (0 trained, 0 failed, 0 skipped, 1 trained by "
                                         "another process), time left unknown until a run has trained")
    train(compose_config(TINY), mine)  # this process writes it
    assert progress.finished(mine).startswith("sweep: 2/2 runs finished (1 trained, 0 failed, 0 skipped, 1 trained "
                                              "by another process), in ")


def preempt_after(monkeypatch, calls: int) -> None:
    """Ask for preemption at the ``calls``-th time the loop checks (as SIGTERM would, between two steps)."""
    from gen.training import checkpoint

    count = [0]

    def requested():
        count[0] += 1
        return count[0] >= calls
    monkeypatch.setattr(checkpoint, "requested", requested)


def test_the_preempted_and_the_resuming_lines_name_the_same_epoch_and_step(tmp_path, monkeypatch, caplog):
    import logging
    import re

    from gen.training import checkpoint

    caplog.set_level(logging.INFO)
    cfg = compose_config([*TINY, "trainer.max_epochs=4"])
    preempt_after(monkeypatch, 7)  # once before the run, then after each step: after step 6, in epoch 2 of 4 steps
    with pytest.raises(checkpoint.Interrupted) as stopped:
        train(cfg, tmp_path / "run")
    monkeypatch.undo()
    epoch, step = re.fullmatch(r"preempted at epoch (\d+), step (\d+)", str(stopped.value)).groups()
    assert (epoch, step) == ("2", "6")  # mid-epoch: the case where the two lines differed
    train(cfg, tmp_path / "run")
    assert f"resuming {tmp_path / 'run'} at epoch {epoch}, step {step}" in caplog.text


def test_a_resumed_lockstep_group_names_every_peer_it_trained_with(tmp_path, monkeypatch):
    from gen.sweeps import ensemble
    from gen.training import checkpoint

    seeds = [[*TINY, "trainer.max_epochs=4", "trainer.ensemble=3", f"seed={s}"] for s in range(3)]
    group = [ensemble.Member(compose_config(v), tmp_path / f"r{i}", tuple(v), None) for i, v in enumerate(seeds)]
    preempt_after(monkeypatch, 7)
    with pytest.raises(checkpoint.Interrupted):
        train_group(group)
    monkeypatch.undo()
    train_group(group[:2])  # the group resumes without r2 (held elsewhere, say)
    train(group[2].cfg, group[2].run_dir)  # and r2 resumes alone
    notes = {i: [n for n in read_metrics(group[i].run_dir / "metrics.json")["notes"] if "lockstep" in n]
             for i in range(3)}
    assert notes[0] == notes[1] == ["trained in lockstep with 2 other run(s) across its attempts (r0, r1, r2); the "
                                    "group changed on resuming (the last with r0, r1); timing.train_s is shared "
                                    "where it trained in a group"]
    assert notes[2] == ["trained in lockstep with 2 other run(s) across its attempts (r0, r1, r2); the group changed "
                        "on resuming (the last alone); timing.train_s is shared where it trained in a group"]


# ---- the other files a run or analysis reads ------------------------------------------------------
def test_a_fifo_as_checkpoint_is_moved_aside_and_the_run_trains(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.mkfifo(run_dir / "checkpoint.pt")  # torch.load would wait for a writer forever
    metrics = train_and_read(compose_config(TINY), run_dir)
    assert metrics["status"] == "completed"
    assert stat.S_ISFIFO((run_dir / "checkpoint.pt.corrupt").lstat().st_mode)


def test_a_planted_link_at_a_target_is_replaced_not_written_through(tmp_path):
    from gen import atomic

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.pt").symlink_to(victim)
    atomic.write_bytes(tmp_path / "run" / "model.pt", b"weights")
    assert victim.read_text() == "precious\n"
    written = tmp_path / "run" / "model.pt"
    assert not written.is_symlink() and written.read_bytes() == b"weights"


def test_a_fifo_as_multirun_yaml_does_not_hang_the_report(sweep):
    from analysis.cli import main

    os.mkfifo(sweep / "multirun.yaml")
    assert main([str(sweep)]) == 0
