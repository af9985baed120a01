"""Collecting a sweep's run folders: tables, the state of every run, the CLI, the report and the
multirun callback.  A corrupt, a half-written, a failed and a diverged run are reported and never
enter the results."""
import json
import logging
import os
import time

import pandas as pd
import pytest
from omegaconf import OmegaConf

from gen.sweeps import status as run_status
from analysis.callback import AnalysisCallback
from analysis.cli import main
from analysis.collect import collect
from analysis.testing import (make_config, make_history, write_multirun_yaml, write_run,
                              write_unfinished_run)

HOURS_AGO = time.time() - 3 * 3600


@pytest.fixture
def sweep(tmp_path):
    """Three completed runs (H = 8, 16, 32), then one of each way a run can fail to be a result
    (the hollow record, ``{"status": "completed"}`` alone, is invalid: it holds no result)."""
    root = tmp_path / "outputs" / "sweeps" / "quickstart"
    write_multirun_yaml(root, "quickstart", {"model.hidden_units": "8,16,32,64,128,256,512"})
    for h in (8, 16, 32):
        write_run(root, make_config("quickstart", **{"model.hidden_units": h, "corruption.name": "labels",
                                                     "corruption.prob": 0.5}),
                  test_acc=0.8 + h / 1000, measures={"num_params": 74 * h, "margin": h / 10},
                  split_acc={"train_clean": 1.0, "train_corrupted": 0.9})
    write_run(root, make_config("quickstart", **{"model.hidden_units": 64}), status="diverged", run_id="diverged0001")
    write_run(root, make_config("quickstart", **{"model.hidden_units": 128}), status="failed", run_id="failed000001",
              error=("ValueError", "hidden_units too large for this machine\nsecond line"))
    corrupt = write_run(root, make_config("quickstart", **{"model.hidden_units": 256}), run_id="corrupt00001")
    (corrupt / "metrics.json").write_text('{"schema": 1, "status": "comp')  # cut off mid-write
    hollow = write_run(root, make_config("quickstart", **{"model.hidden_units": 4096}), run_id="hollow000001")
    (hollow / "metrics.json").write_text('{"status": "completed"}')  # says completed, holds nothing
    half = write_unfinished_run(root, make_config("quickstart", **{"model.hidden_units": 512}), run_id="halfwritten1")
    stopped = write_unfinished_run(root, make_config("quickstart", **{"model.hidden_units": 2048}),
                                   run_id="preempted001")
    (stopped / "checkpoint.pt").write_bytes(b"checkpoint")
    for path in [half, half / ".hydra", half / ".hydra" / "config.yaml",
                 stopped, stopped / ".hydra", stopped / ".hydra" / "config.yaml", stopped / "checkpoint.pt"]:
        os.utime(path, (HOURS_AGO, HOURS_AGO))
    running = write_unfinished_run(root, make_config("quickstart", **{"model.hidden_units": 1024}),
                                   run_id="running00001")
    (running / "checkpoint.pt").write_bytes(b"checkpoint")
    return root


def test_only_completed_runs_are_results(sweep):
    collection = collect([sweep])
    assert collection.counts() == {"completed": 3, "diverged": 1, "failed": 1, "running": 1, "interrupted": 1,
                                   "missing": 1, "invalid": 1, "unreadable": 1}
    assert sorted(collection.runs["model.hidden_units"]) == [8, 16, 32]
    assert list(collection.diverged["run_id"]) == ["diverged0001"]
    assert set(collection.history["run_id"]) == set(collection.runs["run_id"])
    assert len(collection.history) == 3 * 6  # epochs 0…5 per run


def test_every_block_becomes_dotted_columns(sweep):
    runs = collect([sweep]).runs.set_index("model.hidden_units")
    for column in ("corruption.name", "corruption.prob", "optimizer.sam.enabled", "optimizer.schedule.name",
                   "final.gen_gap", "final.test_error", "split_acc.train_corrupted", "interpolation.reached",
                   "measures.margin", "timing.total_s", "data.test_size", "model.num_params", "seed"):
        assert column in runs.columns, column
    assert runs.loc[16, "measures.margin"] == pytest.approx(1.6)
    assert runs.loc[8, "final.gen_gap"] == pytest.approx(runs.loc[8, "final.train_acc"] - runs.loc[8, "final.test_acc"])
    assert json.loads(runs.loc[8, "measure.names"]) == ["num_params", "margin"]  # lists stay hashable text


def test_each_state_has_its_reason(sweep):
    folders = {f.path.name: f for f in run_status.scan([sweep])}
    assert folders["failed000001"].reason == "ValueError: hidden_units too large for this machine"
    assert folders["failed000001"].log.name == "launch.log"
    assert folders["corrupt00001"].status == "unreadable" and "metrics.json" in folders["corrupt00001"].reason
    assert folders["halfwritten1"].status == "missing"
    assert folders["running00001"].status == "running"
    assert folders["preempted001"].status == "interrupted" and "resumes" in folders["preempted001"].reason
    assert folders["diverged0001"].status == "diverged"


def test_status_command_prints_counts_and_failures(sweep, capsys):
    assert main(["status", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "completed       3" in out and "failed          1" in out and "missing         1" in out
    assert "ValueError: hidden_units too large for this machine" in out
    assert str(sweep / "failed000001" / "launch.log") in out


def test_full_analysis_writes_tables_figures_ranking_and_report(sweep, capsys):
    assert main([str(sweep)]) == 0
    out_dir = sweep / "analysis"
    printed = capsys.readouterr().out
    for name in ("runs.csv", "history.csv", "status.csv", "rank.csv", "report.md", "report.html",
                 "figures/s1_error_vs_hidden_units.png"):
        assert (out_dir / name).exists(), name
        assert f"wrote {out_dir / name}" in printed
    runs = pd.read_csv(out_dir / "runs.csv")
    assert sorted(runs["model.hidden_units"]) == [8, 16, 32]
    assert set(pd.read_csv(out_dir / "status.csv")["status"]) == set(run_status.STATUSES)
    report = (out_dir / "report.md").read_text()
    assert "failed (1)" in report and "ValueError: hidden_units too large" in report
    assert "](figures/s1_error_vs_hidden_units.png)" in report
    assert "python launch.py -m model.hidden_units=8,16,32,64,128,256,512" in report
    assert "| margin |" in report  # the ranking table
    html = (out_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and "</html>" in html
    # a second analysis of the same sweep does not read its own output folder as a run
    assert main([str(sweep)]) == 0
    assert collect([sweep]).counts()["completed"] == 3


def test_several_sweeps_and_an_out_folder(sweep, tmp_path, capsys):
    other = tmp_path / "other"
    write_run(other, make_config("quickstart", **{"model.hidden_units": 8, "corruption.name": "labels",
                                                  "corruption.prob": 0.5}))  # the same config: the same run_id
    collection = collect([sweep, other])
    assert len(collection.runs) == 4 and collection.runs["run_id"].is_unique
    assert main(["collect", str(sweep), str(other), "--out", str(tmp_path / "out")]) == 0
    assert len(pd.read_csv(tmp_path / "out" / "runs.csv")) == 4


def test_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_history_keys_that_start_later_are_kept(tmp_path):
    """Tracker keys appear from epoch 1 on; runs without them get empty cells, not a crash."""
    history = make_history(3, 10, 1.0, 0.9, bias_trajectory_epoch=[0.3, 0.2, 0.1])
    write_run(tmp_path, make_config("x", seed=0), history=history)
    write_run(tmp_path, make_config("x", seed=1))
    table = collect([tmp_path]).history
    assert table["bias_trajectory_epoch"].notna().sum() == 3
    assert len(table) == 4 + 6


def test_callback_writes_the_report_and_never_raises(sweep, caplog):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "analysis": {"auto": True}})
    AnalysisCallback().on_multirun_end(config)
    assert (sweep / "analysis" / "report.html").exists()

    off = tmp_sweep_config(sweep.parent / "off", auto=False)
    AnalysisCallback().on_multirun_end(off)
    assert not (sweep.parent / "off" / "analysis").exists()

    with caplog.at_level(logging.WARNING, logger="analysis"):
        AnalysisCallback().on_multirun_end(tmp_sweep_config(sweep.parent / "never_created", auto=True))
    assert "could not analyse the sweep" in caplog.text


def tmp_sweep_config(path, auto):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(path)}}, "analysis": {"auto": auto}})
