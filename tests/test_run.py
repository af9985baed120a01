"""A run end to end through launch.py, as a user types it."""

import pytest
import torch

from tests.helpers import TINY, metrics_files, read_metrics

SCHEMA_KEYS = ["schema", "run_id", "status", "config", "overrides", "seed", "model", "final", "interpolation",
               "measures", "history", "timing", "env", "notes"]


def test_single_run_writes_a_complete_record(run_in):
    proc, root = run_in(TINY + ["seed=3"])
    assert proc.returncode == 0, proc.stderr
    (path,) = metrics_files(root / "outputs" / "runs")
    m = read_metrics(path)
    for key in SCHEMA_KEYS:
        assert key in m, key
    assert m["status"] == "completed" and m["schema"] == 2 and m["seed"] == 3
    assert m["run_id"] == path.parent.name
    assert m["model"] == {"name": "fc", "num_params": 64 * 16 + 16 + 16 * 10 + 10, "objective": "cross_entropy"}
    for key in ["train_acc", "train_loss", "test_acc", "test_loss", "train_error", "test_error", "gen_gap",
                "epochs", "steps"]:
        assert key in m["final"], key
    assert m["final"]["gen_gap"] == pytest.approx(m["final"]["train_acc"] - m["final"]["test_acc"])
    assert [row["epoch"] for row in m["history"]] == [0, 1, 2]
    assert m["timing"]["train_samples_per_s"] > 0
    assert set(m["env"]) >= {"python", "torch", "device", "git_sha", "host", "package_version"}
    assert set(m["interpolation"]) == {"reached", "epoch", "step", "seconds", "test_error"}
    assert {"num_params", "margin"} <= set(m["measures"])
    weights = torch.load(path.parent / "model.pt", weights_only=True)
    assert set(weights) == set(torch.load(path.parent / "init.pt", weights_only=True))
    from gen.fingerprint import weights_sha256
    model = torch.nn.Module()  # the fingerprint is of the state dict that model.pt holds
    model.state_dict = lambda: weights
    assert m["weights_sha256"] == weights_sha256(model)


@pytest.mark.slow
def test_multirun_sweeps_then_relaunch_skips_every_completed_run(run_in):
    args = ["-m", *TINY, "model.hidden_units=8,32", "seed=0,1", "name=default"]
    proc, root = run_in(args)
    assert proc.returncode == 0, proc.stderr
    files = metrics_files(root / "outputs" / "sweeps" / "default")
    assert len(files) == 4
    before = {p: p.stat().st_mtime_ns for p in files}
    again, _ = run_in(args)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("skipping") + again.stdout.count("skipping") == 4
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_same_config_and_seed_give_identical_results(tmp_path):
    from tests.helpers import compose_config, train_and_read

    results = []
    for i in range(2):
        cfg = compose_config(TINY + ["seed=5", "rerun=true"])
        results.append(train_and_read(cfg, tmp_path / str(i)))
    a, b = results
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert a["final"] == b["final"]
    assert strip(a["history"]) == strip(b["history"])
    assert a["measures"] == b["measures"]
    assert a["weights_sha256"] == b["weights_sha256"] and len(a["weights_sha256"]) == 64


BAD_INPUT = [
    ["model=nonexistent"],
    ["model.hidden_units=0"],
    ["model.hidden_units=abc"],
    ["dataset.train_size=-5"],
    ["dataset.train_size=100000"],
    ["trainer.max_epochs=-1"],
    ["optimizer.lr=-0.1"],
    ["trainer.foo=1"],
    ["dataset=mnist", "dataset.root=/nonexistent/mnist"],
    ["optimizer=sam"],
]


@pytest.mark.parametrize("args", BAD_INPUT, ids=lambda a: " ".join(a))
def test_bad_input_gets_one_clear_line_and_leaves_nothing(run_in, args):
    proc, root = run_in(args + ["trainer.progress=false"])
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    key = args[-1].split("=")[0]
    assert key in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    assert not metrics_files(root)
    assert not any((root / "outputs" / "runs").glob("*"))  # no run folder either (a missing folder globs nothing)
