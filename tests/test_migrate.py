"""Upgrading loses nothing: ``python -m gen.migrate`` on a sweep written by gen 0.5.0 itself.

tests/fixtures/gen_0_5_0_sweep/ was written by gen 0.5.0 (commit 03dd363, before run ids left out the
measure set): ``launch.py -m trainer.max_epochs=2 trainer.progress=false dataset.train_size=200
model.hidden_units=16 name=legacy analysis.auto=false seed=0,1``, then the same with ``seed=0 measure=norms``
into the same folder: three runs, two of which (seed 0) share one training and now one id."""
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from gen import record
from tests.helpers import REPO, TINY, launch, read_metrics
from tests.launch_client import run_python

FIXTURE = REPO / "tests" / "fixtures" / "gen_0_5_0_sweep"


def migrate(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_python(["-m", "gen.migrate", *args], cwd, {**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "run.lock"}  # the lock a process takes


def test_a_gen_0_5_sweep_is_migrated_in_place_merged_where_trainings_match_and_never_retrained(tmp_path):
    from gen.sweeps.run_id import run_id_of_record

    sweep = tmp_path / "legacy"
    shutil.copytree(FIXTURE, sweep)
    old = {p.name: read_metrics(p / "metrics.json") for p in sweep.iterdir() if p.is_dir()}
    files = {name: digests(sweep / name) for name in old}
    assert all(record.read(sweep / name).status == "invalid" for name in old)
    assert "python -m gen.migrate" in record.read(sweep / next(iter(old))).reason
    new_of = {name: run_id_of_record(m["config"]) for name, m in old.items()}
    assert len(set(new_of.values())) == 2  # seed 0 with measure=default and with measure=norms: one training

    proc = migrate([str(sweep)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3 and sum("merged into" in line for line in proc.stdout.splitlines()) == 1

    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == sorted(set(new_of.values()))
    for name, m in old.items():
        home = sweep / new_of[name]
        merged = home / "merged" / name
        where = merged if merged.exists() else home
        moved = {k: v for k, v in digests(where).items() if not k.startswith("merged/")}
        if where == home:  # every file as it was but the record
            assert {k: v for k, v in moved.items() if k != "metrics.json"} == \
                {k: v for k, v in files[name].items() if k != "metrics.json"}
        else:  # the second run of one training: kept whole inside the first
            assert moved == files[name]
        rec = record.read(home)
        assert rec.status == "completed", rec.reason
        now = rec.metrics
        assert now["run_id"] == home.name and now["history"] == old[now["legacy_run_id"]]["history"]
        for measure, value in m["measures"].items():  # every value of both old runs, with its provenance
            assert now["measures"][measure] == value
            entry = now["measured"][measure]
            assert entry["code"] == "gen 0.5.0"
            assert now["measure_params"][entry["params"]]["margin_percentile"] == m["config"]["measure"]["params"]["margin_percentile"]
    seed0 = read_metrics(sweep / new_of[next(n for n, m in old.items() if m["config"]["measure"]["name"] == "norms")] / "metrics.json")
    assert any("merged the measures of legacy run" in note for note in seed0["notes"])

    before = digests(sweep)
    again = migrate([str(sweep)], tmp_path)
    assert again.returncode == 0 and again.stdout.count("up to date") == 2, again.stdout
    assert digests(sweep) == before

    # relaunching the gen 0.5 command finds every run: nothing trains (seed 1 is measured for norms on its weights)
    weights = {p: p.read_bytes() for p in sweep.glob("*/model.pt")}
    proc = launch(["-m", *TINY, "seed=0,1", "measure=norms", "analysis.auto=false", f"hydra.sweep.dir={sweep}"],
                  tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {p: p.read_bytes() for p in sweep.glob("*/model.pt")} == weights
    for home in sweep.iterdir():
        if home.is_dir():
            m = read_metrics(home / "metrics.json")
            assert "l2_path" in m["measures"] and m["history"] == old[m["legacy_run_id"]]["history"]


def test_two_old_runs_of_one_config_that_trained_differently_are_both_left_with_the_reason(tmp_path):
    sweep = tmp_path / "legacy"
    shutil.copytree(FIXTURE, sweep)
    norms = next(p for p in sweep.iterdir() if p.is_dir() and read_metrics(p / "metrics.json")["config"]["measure"]["name"] == "norms")
    m = read_metrics(norms / "metrics.json")
    m["history"][-1]["train_loss"] += 0.5  # not the same network
    (norms / "metrics.json").write_text(json.dumps(m))
    seed0 = {p.name: (p / "metrics.json").read_bytes() for p in sweep.iterdir()
             if p.is_dir() and read_metrics(p / "metrics.json")["seed"] == 0}
    proc = migrate([str(sweep)], tmp_path)
    assert proc.returncode == 1
    left = [line for line in proc.stdout.splitlines() if "left" in line]
    assert len(left) == 1 and "another history" in left[0]
    name = Path(left[0].split(":")[0]).name  # the second of the two, in path order: as it was
    assert name in seed0 and (sweep / name / "metrics.json").read_bytes() == seed0[name]


def test_relaunching_a_gen_0_5_sweep_before_migrating_trains_nothing_and_names_the_command(tmp_path):
    sweep = tmp_path / "legacy"
    shutil.copytree(FIXTURE, sweep)
    before = digests(sweep)
    proc = launch(["-m", *TINY, "seed=0,1", "analysis.auto=false", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "python -m gen.migrate" in proc.stderr.strip().splitlines()[-1]
    unchanged = lambda files: {k: v for k, v in files.items() if k != "multirun.yaml"}  # Hydra rewrites it on any launch
    assert unchanged(digests(sweep)) == unchanged(before) and sorted(p.name for p in sweep.iterdir() if p.is_dir()) == \
        sorted(p.name for p in FIXTURE.iterdir() if p.is_dir())
