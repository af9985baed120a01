"""Measure sets: every name known, `all` complete, `all` running on the model zoo and through
launch.py, the fixed seeded subsample, per-measure timings, and one clear line for bad input."""
import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from gen.measures import check_set, compute_measures, known_names
from gen.measures.margin import margins
from gen.config import ConfigError
from tests.helpers import CONF, compose_config, measure_context, metrics_files, read_metrics, train_and_read

SETS = sorted(path.stem for path in (CONF / "measure").glob("*.yaml"))

# Few samples, probes, draws and steps: every code path, little arithmetic.  q = 100 (the largest
# margin) keeps γ > 0 after one epoch, so the margin-based measures compute too.
FAST = ["measure.params.max_samples=8", "measure.params.hessian_probes=2", "measure.params.power_iterations=3",
        "measure.params.flatness_search_depth=3", "measure.params.flatness_mc_samples=2",
        "measure.params.sharpness_steps=2", "measure.params.expected_samples=2",
        "measure.params.min_sharpness_iterations=10", "measure.params.margin_percentile=100"]
TINY_MODELS = {"fc": ["model.hidden_units=8"], "vgg": ["model.layers=[4,M,8,M]", "model.head_width=8"],
               "nin": ["model.width=1", "model.depth=1"], "inception_small": []}
# After one epoch the train cross-entropy is far above 0.1: these have no value yet, and say so.
NOT_YET = {"steps_to_ce_0.1", "steps_ce_0.1_to_0.01"}
# A magnitude-aware search has no answer where its ε alone drops the accuracy past the target.
FLOOR = "alone drops the train accuracy"
# The tiny nets' layers have fewer eigenvalues than a power-law fit needs (gen.measures.heavy_tail).
TOO_SMALL_TO_FIT = {"alpha", "alpha_weighted", "log_alpha_norm", "mp_softrank"}


def test_every_set_lists_only_known_measures_and_composes_with_the_schema():
    known = set(known_names())
    for name in SETS:
        cfg = compose_config([f"measure={name}"])
        assert set(cfg.measure.names) <= known, name
        check_set(cfg.measure)


def test_the_all_set_lists_every_known_measure_once():
    names = list(OmegaConf.load(CONF / "measure" / "all.yaml").names)
    assert len(names) == len(set(names))
    assert set(names) == set(known_names())


def test_check_set_names_the_unknown_measure_and_its_position():
    with pytest.raises(ConfigError) as error:
        check_set(OmegaConf.create({"names": ["margin", "nonsense"], "params": {}}))
    assert "measure.names[1]" in str(error.value) and "nonsense" in str(error.value)


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.slow) if m == "inception_small" else m  # ~20 s
                                   for m in TINY_MODELS])
def test_the_all_set_runs_on_every_architecture_and_explains_every_null(model, tmp_path):
    cfg = compose_config([f"model={model}", "measure=all", "trainer.max_epochs=1", "trainer.progress=false",
                          "dataset.train_size=40", "trainer.save_weights=false", *TINY_MODELS[model], *FAST])
    metrics = train_and_read(cfg, tmp_path)
    assert metrics["status"] == "completed"
    assert list(metrics["measures"]) == list(cfg.measure.names)
    reasons = {note.split(":", 1)[0]: note for note in metrics["notes"]}
    floored = {name for name, reason in reasons.items() if FLOOR in reason}
    for name, value in metrics["measures"].items():
        if value is None:
            assert name in reasons, f"{name} is null without a reason"
            assert name in NOT_YET or "margin" in reasons[name] or name in floored or \
                (name in TOO_SMALL_TO_FIT and "eigenvalues" in reasons[name]), reasons[name]
    assert all("_mag_" in name for name in floored), floored
    if model != "nin":  # NiN's ReLU head can leave every logit at 0 after one epoch: γ = 0
        unfitted = {n for n in TOO_SMALL_TO_FIT if metrics["measures"][n] is None}
        assert {n for n, v in metrics["measures"].items() if v is None} - floored - unfitted == NOT_YET


def test_all_runs_end_to_end_through_launch_and_records_every_measure_and_its_time(run_in):
    proc, root = run_in(["measure=all", "trainer.max_epochs=1", "dataset.train_size=200", "model.hidden_units=16",
                         "trainer.progress=false"])
    assert proc.returncode == 0, proc.stderr
    (path,) = metrics_files(root)
    m = read_metrics(path)
    names = list(OmegaConf.load(CONF / "measure" / "all.yaml").names)
    assert list(m["measures"]) == names
    assert set(m["timing"]["measure_s"]) == set(names)
    assert all(s >= 0 for s in m["timing"]["measure_s"].values())
    assert m["timing"]["measures_s"] >= sum(m["timing"]["measure_s"].values())  # the total holds every part
    for name, value in m["measures"].items():
        assert value is not None or any(n.startswith(f"{name}:") for n in m["notes"]), name
    assert m["measures"]["num_params"] == m["model"]["num_params"]
    history_rows = [row for row in m["history"] if row["epoch"] > 0]
    assert all("bias_trajectory_epoch" in row for row in history_rows)  # the tracker ran


BAD_MEASURE_INPUT = [
    (["measure.params.margin_percentile=150"], "measure.params.margin_percentile"),
    (["measure.names=[foo]"], "measure.names[0]"),
    (["measure.names=[margin,nonsense]"], "measure.names[1]"),
    (["measure.params.max_samples=0"], "measure.params.max_samples"),
]


@pytest.mark.parametrize("args,key", BAD_MEASURE_INPUT, ids=[" ".join(args) for args, _ in BAD_MEASURE_INPUT])
def test_bad_measure_input_gets_one_clear_line_and_leaves_nothing(run_in, args, key):
    proc, root = run_in(args + ["trainer.progress=false"])
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert key in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    assert not metrics_files(root)


# ---- the subsample ----------------------------------------------------------------------------------------
def labelled_points(n: int = 50):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3))
    x = torch.randn(n, 3)
    y = torch.randint(0, 3, (n,))
    return model, x, y


def test_measures_evaluate_on_a_fixed_seeded_subsample_of_the_training_set():
    model, x, y = labelled_points()
    first = measure_context(model, x, y, max_samples=10, seed=3).sample
    again = measure_context(model, x, y, max_samples=10, seed=3).sample
    other = measure_context(model, x, y, max_samples=10, seed=4).sample
    assert len(first[0]) == 10
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])
    rows = [int((x == row).all(1).nonzero()) for row in first[0]]  # every sampled row is a training row
    assert len(set(rows)) == 10 and torch.equal(y[rows], first[1])
    everything = measure_context(model, x, y, max_samples=1000).sample
    assert torch.equal(everything[0], x)  # more than there are: the whole set, in order


def test_the_margin_is_computed_on_exactly_the_subsample():
    model, x, y = labelled_points()
    ctx = measure_context(model, x, y, max_samples=12, margin_percentile=50)
    sx, sy = ctx.sample
    with torch.no_grad():
        expected = torch.quantile(margins(model(sx), sy).double(), 0.5).item()
    assert ctx.margin == pytest.approx(expected, rel=1e-6)
    full = measure_context(model, x, y, margin_percentile=50)
    assert full.margin != pytest.approx(ctx.margin)


def test_results_time_each_measure_and_leave_the_model_untouched():
    model, x, y = labelled_points()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    cfg = {"names": ["margin", "sharpness_worst", "hessian_trace", "min_sharpness"], "params": {"hessian_probes": 2}}
    results = compute_measures(cfg, model, None, measure_context(model, x, y).data, None)
    assert set(results.seconds) == set(cfg["names"])
    assert results.total_seconds >= sum(results.seconds.values())
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_measures_that_watch_training_are_those_the_run_id_keeps():
    """gen.sweeps.run_id reads the torch-free list in gen.config.measure; the registry is the truth."""
    from gen.config.measure import TRACKED_MEASURES
    from gen.measures.registry import MEASURES

    assert set(TRACKED_MEASURES) == {name for name, m in MEASURES.items() if m.needs_trajectory}
