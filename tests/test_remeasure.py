"""A zoo trained once, measured many times: measures added to trained runs train nothing and equal
the values of runs trained with them from the start (gen.remeasure, python -m gen.measure, gen.run)."""
import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, SEQUENTIAL, TINY, launch, metrics_files, read_metrics
from tests.launch_client import run_python

SWEEP = ["-m", *TINY, "seed=0,1", "analysis.auto=false"]


def measure_cmd(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if not any(a.startswith("hydra/launcher=") for a in args):
        args = [*args, SEQUENTIAL]  # a measurement sweep's jobs one at a time, as the tests' training sweeps
    return run_python(["-m", "gen.measure", *args], cwd, {**env, "PYTHONPATH": str(REPO)}, timeout=300)


def snapshot(run_dir: Path) -> dict:
    """What training left: weight files (bytes and mtimes), Hydra's .hydra/, the history and timings."""
    m = read_metrics(run_dir / "metrics.json")
    files = [run_dir / "model.pt", run_dir / "init.pt", *sorted((run_dir / ".hydra").iterdir())]
    return {"files": {p.name: (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files},
            "history": m["history"], "final": m["final"], "config": m["config"], "run_id": m["run_id"],
            "timing": {k: m["timing"][k] for k in ("total_s", "data_s", "train_s", "train_samples_per_s")}}


def by_seed(root: Path) -> dict[int, Path]:
    return {read_metrics(p)["seed"]: p.parent for p in metrics_files(root)}


@pytest.mark.slow
def test_measures_added_to_a_trained_sweep_train_nothing_and_equal_training_with_them(tmp_path):
    proc = launch([*SWEEP, "name=zoo"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    zoo = by_seed(tmp_path / "outputs" / "sweeps" / "zoo")
    before = {seed: snapshot(run) for seed, run in zoo.items()}
    assert set(read_metrics(zoo[0] / "metrics.json")["measures"]) == {"num_params", "margin"}

    proc = measure_cmd(["outputs/sweeps/zoo", "measure=norms"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 run(s): 2 measured, 0 skipped, 0 not measured" in proc.stderr
    reference = launch([*SWEEP, "name=reference", "measure=norms"], tmp_path)  # trained with norms from the start
    assert reference.returncode == 0, reference.stderr
    trained_with = by_seed(tmp_path / "outputs" / "sweeps" / "reference")
    for seed, run in zoo.items():
        assert snapshot(run) == before[seed]  # no training step: weights, .hydra/, history, timings untouched
        assert run.name == trained_with[seed].name  # one training identity, whatever the measures
        m, ref = read_metrics(run / "metrics.json"), read_metrics(trained_with[seed] / "metrics.json")
        assert m["measures"] == ref["measures"]  # the same weights, the same data: the same values, bit for bit
        assert {name: m["measured"][name]["params"] for name in m["measures"]} == \
            {name: ref["measured"][name]["params"] for name in ref["measures"]}
        assert m["measure_params"] == ref["measure_params"]
        assert "computed on its saved weights" in (run / "measure.log").read_text()

    again = measure_cmd(["outputs/sweeps/zoo", "measure=norms"], tmp_path)  # up to date: nothing launched
    assert again.returncode == 0 and "0 measured, 2 skipped" in again.stderr, again.stderr
    relaunch = launch([*SWEEP, "name=zoo", "measure=norms"], tmp_path)  # the training sweep, larger set: skipped
    assert relaunch.returncode == 0 and (relaunch.stderr + relaunch.stdout).count("skipping") == 2, relaunch.stderr


@pytest.mark.slow
def test_a_relaunch_with_other_params_measures_again_and_says_what_it_replaced(tmp_path):
    from gen import record

    proc = launch([*TINY, "seed=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (path,) = metrics_files(tmp_path / "outputs" / "runs")
    first = read_metrics(path)
    weights = (path.parent / "model.pt").stat().st_mtime_ns
    proc = launch([*TINY, "seed=2", "measure.params.margin_percentile=50"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(path)
    assert (path.parent / "model.pt").stat().st_mtime_ns == weights and m["history"] == first["history"]
    entry = m["measured"]["margin"]
    assert m["measure_params"][entry["params"]]["margin_percentile"] == 50
    assert entry["replaced"] == {"value": first["measures"]["margin"], "params": first["measured"]["margin"]["params"],
                                 "code": first["measured"]["margin"]["code"]}
    assert m["measures"]["margin"] > first["measures"]["margin"]  # the median margin exceeds the 10th percentile
    assert any(n.startswith("margin: replaced a value computed under other params") for n in m["notes"])
    assert set(m["measure_params"]) == {entry["params"], first["measured"]["margin"]["params"]}
    assert record.read(path.parent).status == "completed"


@pytest.mark.slow
def test_a_run_saved_without_weights_says_in_one_line_it_cannot_be_measured_again(tmp_path):
    proc = launch([*TINY, "trainer.save_weights=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (path,) = metrics_files(tmp_path / "outputs" / "runs")
    before = path.read_bytes()
    proc = measure_cmd(["outputs/runs", "measure=norms"], tmp_path)
    lines = [line for line in proc.stderr.splitlines() if "cannot be measured again" in line]
    assert proc.returncode == 0 and len(lines) == 1 and "trainer.save_weights=false" in lines[0], proc.stderr
    assert path.read_bytes() == before


@pytest.mark.slow
@pytest.mark.parametrize("args,key", [(["measure=nonexistent"], "measure"), (["model=mlp"], "model"),
                                      (["optimizer.lr=0.1"], "optimizer.lr"), ([], "PATH"),
                                      (["no/such/folder"], "PATH"), (["measure_run=x"], "measure_run")])
def test_bad_input_to_the_command_is_one_line_and_exit_2(tmp_path, args, key):
    proc = measure_cmd(args, tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and key in proc.stderr.splitlines()[0]
    assert not (tmp_path / "outputs").exists()


def test_a_measure_that_raises_loses_no_other_value(tmp_path, monkeypatch):
    from gen import record, remeasure
    from gen.measures.registry import MEASURES
    from gen.run import train
    from tests.helpers import compose_config

    train(compose_config([*TINY, "measure=norms"]), run_dir=tmp_path)
    m = record.read(tmp_path).metrics
    monkeypatch.setitem(MEASURES, "l2", dataclasses.replace(MEASURES["l2"], compute=lambda ctx: 1 / 0))
    cfg = compose_config([*TINY, "measure=norms", "measure.params.margin_percentile=20"]).measure
    try:
        remeasure.measure_run(tmp_path, m, cfg, "cpu")
    except ZeroDivisionError:
        pass  # a raising measure ends the measurement: the record stands as it was
    after = record.read(tmp_path)
    assert after.status == "completed"
    kept = {k: v for k, v in after.metrics["measures"].items() if k != "l2"}
    assert set(kept) == set(m["measures"]) - {"l2"} and all(v is not None or m["measures"][k] is None
                                                             for k, v in kept.items())
    if after.metrics["measures"]["l2"] is None:  # recorded as null with its reason
        assert "reason" in after.metrics["measured"]["l2"]


@pytest.mark.slow
def test_measures_added_afterwards_reach_the_trackers_the_run_logged_to(tmp_path):
    from tests.test_tracking import mlflow_runs, tensorboard_of

    logger = ["logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={tmp_path / 'mlflow.db'}"]
    proc = launch([*TINY, *logger], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (path,) = metrics_files(tmp_path / "outputs" / "runs")
    proc = measure_cmd(["outputs/runs", "measure=norms"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(path)
    scalars, _ = tensorboard_of(path.parent)
    assert scalars["measures.frobenius_product"][-1][1] == pytest.approx(m["measures"]["frobenius_product"], rel=1e-6)
    runs = mlflow_runs(tmp_path, "runs")
    assert list(runs) == [m["run_id"]]  # the run's own MLflow run, reopened
    client, run = runs[m["run_id"]]
    assert client.get_run(run.info.run_id).data.metrics["measures.frobenius_product"] == pytest.approx(m["measures"]["frobenius_product"])


@pytest.mark.slow
def test_analysis_ranks_measures_added_afterwards_beside_the_old(tmp_path):
    proc = launch([*SWEEP, "name=zoo", "model.hidden_units=8,16"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = measure_cmd(["outputs/sweeps/zoo", "measure=norms"], tmp_path)  # analysis.auto: the report again
    assert proc.returncode == 0, proc.stderr
    rank = (tmp_path / "outputs" / "sweeps" / "zoo" / "analysis" / "rank.csv").read_text()
    measures = {line.split(",")[0] for line in rank.splitlines()[1:]}
    assert {"margin", "l2_path", "spectral_product"} <= measures


@pytest.mark.slow
def test_weights_kept_at_chosen_epochs_are_measured_like_the_final_ones(tmp_path):
    """trainer.save_epochs=[1]: the weights after epoch 1 of a 2-epoch run are those of a 1-epoch run (same seed,
    constant lr), so their measures, at training and added afterwards, equal that run's final measures."""
    from gen.sweeps.run_id import run_id
    from tests.helpers import compose_config

    short = [a for a in TINY if not a.startswith("trainer.max_epochs")] + ["trainer.max_epochs=1"]
    assert run_id(compose_config([*TINY, "trainer.save_epochs=[1]"])) == run_id(compose_config(TINY))
    for args, name in (([*TINY, "trainer.save_epochs=[1,5]"], "kept"), ([*short, "measure=norms"], "one_epoch")):
        proc = launch(["-m", *args, f"name={name}", "analysis.auto=false"], tmp_path)
        assert proc.returncode == 0, proc.stderr
    (kept,) = metrics_files(tmp_path / "outputs" / "sweeps" / "kept")
    (one,) = metrics_files(tmp_path / "outputs" / "sweeps" / "one_epoch")
    assert (kept.parent / "model_epoch_1.pt").exists() and not (kept.parent / "model_epoch_5.pt").exists()
    m = read_metrics(kept)
    assert set(m["at_epochs"]) == {"1"} and any("no weights after epoch(s) [5]" in n for n in m["notes"])
    assert m["at_epochs"]["1"]["measures"] == {k: read_metrics(one)["measures"][k] for k in ("num_params", "margin")}

    proc = measure_cmd(["outputs/sweeps/kept", "measure=norms"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(kept)
    assert m["at_epochs"]["1"]["measures"] == read_metrics(one)["measures"]
    assert m["at_epochs"]["1"]["measured"]["l2"]["params"] in m["measure_params"]
    history = tmp_path / "outputs" / "sweeps" / "kept" / "analysis"
    proc = subprocess.run([sys.executable, "-m", "analysis", "plot", "outputs/sweeps/kept", "--x", "epoch", "--y",
                           "measures.frobenius_product"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and (history / "figures" / "plot_measures.frobenius_product_vs_epoch.png").exists(), \
        proc.stdout + proc.stderr


def test_lockstep_groups_runs_of_one_training_whatever_their_measures_but_not_a_tracked_one():
    from gen.sweeps.ensemble import shape_key
    from tests.helpers import compose_config

    key = lambda *more: shape_key(compose_config([*TINY, "trainer.ensemble=4", *more]))
    assert key("measure=default") == key("measure=norms", "seed=3") == key("measure.params.margin_percentile=5")
    assert key("measure=trajectory") != key("measure=default")  # its tracker watches training


@pytest.mark.slow
def test_a_measure_from_a_package_outside_the_repository_is_added_afterwards(tmp_path):
    """A researcher's measure (a package and a config folder outside the repository) computed on a trained
    sweep by python -m gen.measure: no training, the value of a run trained with it, its code identity recorded."""
    from tests.user_package import write_user_package

    lab = write_user_package(tmp_path / "lab")
    search = f"hydra.searchpath=[file://{lab / 'conf'}]"
    env = {"PYTHONPATH": f"{lab}{os.pathsep}{REPO}"}
    assert launch([*SWEEP, "name=zoo"], tmp_path, env=env).returncode == 0
    zoo = by_seed(tmp_path / "outputs" / "sweeps" / "zoo")
    before = {seed: snapshot(run) for seed, run in zoo.items()}

    proc = run_python(["-m", "gen.measure", "outputs/sweeps/zoo", search, "measure=lab"], tmp_path,
                      {**os.environ, **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reference = launch([*SWEEP, "name=reference", search, "measure=lab"], tmp_path, env=env)
    assert reference.returncode == 0, reference.stderr
    trained_with = by_seed(tmp_path / "outputs" / "sweeps" / "reference")
    for seed, run in zoo.items():
        assert snapshot(run) == before[seed]
        m, ref = read_metrics(run / "metrics.json"), read_metrics(trained_with[seed] / "metrics.json")
        assert m["measures"]["lab_abs_sum"] == ref["measures"]["lab_abs_sum"] > 0
        assert m["measured"]["lab_abs_sum"]["code"].startswith("labpkg.measures ")  # module and a hash of its source
        assert m["measured"]["num_params"]["code"].startswith("gen ")
