"""Double descent (issue 27): the squared loss on one-hot targets, the interpolation threshold n·K,
the loss key's identity and validation, and the model-/epoch-wise analysis on synthetic sweeps."""
import json
import math

import pandas as pd
import pytest
import torch
from omegaconf import open_dict

from analysis import double_descent as dd
from analysis.collect import collect
from analysis.figures import detect_studies, draw_figures
from analysis.figures.style import with_derived_columns
from analysis.testing import make_config, make_history, write_run
from gen.config import ConfigError, validate
from gen.record import interpolation_threshold
from gen.sweeps.run_id import run_id
from gen.training import divergence
from gen.training.objective import Objective, objective_for
from tests.helpers import compose_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---- the loss ----------------------------------------------------------------------------------
def test_squared_loss_value_gradient_and_accuracy_by_hand():
    outputs = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]], requires_grad=True)
    targets = torch.tensor([1, 0])
    squared = Objective("squared")
    # sample 0: ½‖(1, 2, 0) − (0, 1, 0)‖² = ½(1 + 1 + 0) = 1; sample 1: ½‖(0.5, −1, 3) − (1, 0, 0)‖² = ½(0.25 + 1 + 9)
    per_sample = squared.loss(outputs, targets, reduction="none")
    assert per_sample.tolist() == pytest.approx([1.0, 5.125])
    assert squared.loss(outputs, targets, reduction="sum").item() == pytest.approx(6.125)
    loss = squared.loss(outputs, targets)
    assert loss.item() == pytest.approx(3.0625)
    loss.backward()
    # d/df of the mean over 2 samples of ½‖f − e_y‖²: (f − e_y) / 2
    assert outputs.grad.flatten().tolist() == pytest.approx([0.5, 0.5, 0.0, -0.25, -0.5, 1.5])
    # sample 0's largest output is its class, sample 1's (class 0) is not
    assert squared.correct(outputs.detach(), targets).tolist() == [True, False]


def test_the_squared_losss_chance_level_is_that_of_a_uniform_prediction():
    for classes in (2, 10):
        uniform = torch.full((classes, classes), 1.0 / classes)
        expected = Objective("squared").loss(uniform, torch.arange(classes)).item()
        assert divergence.chance_loss("squared", classes) == pytest.approx(expected)
    assert divergence.chance_loss("squared", 10) == pytest.approx(0.45)
    assert divergence.chance_loss("cross_entropy", 10) == pytest.approx(math.log(10))


class _Data:
    def __init__(self, task):
        self.task, self.name = task, "toy"


def test_the_loss_applies_to_classifiers_with_one_output_per_class_only():
    assert objective_for(_Data("classification"), 10, "squared") == Objective("squared")
    assert objective_for(_Data("classification"), 10) == Objective("cross_entropy")
    for task, outputs in (("regression", 1), ("classification", 1)):
        with pytest.raises(ConfigError, match="trainer.loss=squared") as caught:
            objective_for(_Data(task), outputs, "squared")
        assert "\n" not in str(caught.value)


# ---- config, identity, record --------------------------------------------------------------------
def test_a_bad_loss_is_one_line_naming_the_key_and_the_choices():
    with pytest.raises(ConfigError) as caught:
        validate(compose_config(["trainer.loss=hinge"]))
    message = str(caught.value)
    assert "trainer.loss" in message and "hinge" in message and "squared" in message and "\n" not in message


def test_a_bad_loss_on_the_command_line_exits_2_and_leaves_nothing(run_in):
    proc, folder = run_in(["trainer.loss=hinge", "trainer.max_epochs=1", "trainer.progress=false"])
    assert proc.returncode == 2
    assert "trainer.loss" in proc.stderr and "hinge" in proc.stderr
    assert not (folder / "outputs" / "runs").exists() or not any((folder / "outputs" / "runs").iterdir())


def test_the_default_loss_leaves_the_run_id_and_the_squared_loss_moves_it():
    default = compose_config([])
    without_key = compose_config([])
    with open_dict(without_key):
        del without_key.trainer["loss"]   # a config from before the key
    assert run_id(default) == run_id(without_key)
    assert run_id(compose_config(["trainer.loss=squared"])) != run_id(default)


def test_the_threshold_of_a_known_shape():
    assert interpolation_threshold(4000, 10) == 40_000   # Belkin's MNIST subset: n·K
    assert interpolation_threshold(1347, 10) == 13_470
    assert interpolation_threshold(200, 0) is None       # regression: no classes


@pytest.mark.slow
def test_a_squared_loss_run_records_its_loss_and_threshold(run_in):
    proc, folder = run_in(["trainer.loss=squared", "trainer.max_epochs=30", "model.hidden_units=16",
                           "optimizer=momentum", "optimizer.lr=0.05",
                           "dataset.train_size=300", "trainer.progress=false", "measure=none",
                           "hydra.run.dir=outputs/run"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((folder / "outputs" / "run" / "metrics.json").read_text())
    assert metrics["model"]["objective"] == "squared"
    assert metrics["data"]["interpolation_threshold"] == 300 * metrics["data"]["num_classes"] == 3000
    assert metrics["config"]["trainer"]["loss"] == "squared"
    history = metrics["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] and history[-1]["train_acc"] > 0.5


# ---- analysis ----------------------------------------------------------------------------------
def test_find_peak_takes_the_highest_point_after_the_first_minimum():
    found = dd.find_peak([1, 2, 4, 8, 16, 32], [0.5, 0.3, 0.2, 0.35, 0.25, 0.15])
    assert (found["min_x"], found["peak_x"], found["last_x"]) == (4, 8, 32)
    assert found["peak_y"] == 0.35 and found["min_y"] == 0.2
    assert dd.find_peak([1, 2, 3], [0.5, 0.4, 0.3])["peak_x"] is None   # no second rise: no peak
    assert dd.find_peak([1, 2, 3, 4], [0.5, 0.3, 0.35, 0.4])["peak_x"] is None   # still rising: no descent seen


PEAKED = {4: 0.30, 16: 0.20, 40: 0.28, 64: 0.24, 256: 0.15}  # H → test error; n·K = 100·10 = 1000 ≈ H 40 × 25


def double_descent_sweep(root, name="double_descent_modelwise"):
    """Test error with its peak at H = 40 (1,000 parameters = n·K), sharper under noise, two seeds."""
    for width, error in PEAKED.items():
        for noise in (0.0, 0.2):
            for seed in (0, 1):
                config = make_config(name, **{"model.hidden_units": width, "corruption.name": "labels",
                                              "corruption.prob": noise, "seed": seed, "trainer.loss": "squared"})
                bump = 0.1 if noise and width == 40 else 0.0
                test_acc = 1 - error - bump - 0.01 * seed - noise / 4
                history = make_history(5, 4, train_acc=1.0, test_acc=test_acc, rate=50)  # at test_acc from epoch 1
                write_run(root, config, history=history, train_size=100, measures={"num_params": 25 * width})
    return root


def test_the_modelwise_table_and_figure_from_a_synthetic_sweep(tmp_path):
    collection = collect([double_descent_sweep(tmp_path / "sweep")])
    runs = collection.runs
    assert detect_studies(runs, collection.history) == ["double_descent"]
    table = dd.modelwise_table(with_derived_columns(runs))
    assert list(table["label_noise"]) == [0.0, 0.2]
    assert list(table["peak_params"]) == [1000, 1000] and list(table["peak_over_threshold"]) == [1.0, 1.0]
    assert list(table["peak_width"]) == [40, 40] and list(table["seeds"]) == [2, 2]
    # the peak's test error: mean over seeds 0 and 1 (−0.01 for seed 1), noise adds p/4 and 10 points at the peak
    assert table["peak_test_error_%"].tolist() == pytest.approx([28.5, 28.5 + 5 + 10])
    assert table["min_params"].tolist() == [400, 400]
    drawn = draw_figures(runs, collection.history, tmp_path / "figures")
    assert [d.name for d in drawn] == ["error_vs_parameters", "error_vs_epoch"] and drawn[0].path is not None
    assert drawn[0].path.read_bytes().startswith(PNG_MAGIC)
    written = dd.write(runs, collection.history, tmp_path)
    assert [p.name for p in written] == [dd.MODELWISE_FILE, dd.EPOCHWISE_FILE]
    assert len(pd.read_csv(written[0])) == 2


def test_the_epochwise_table_and_figure_from_a_synthetic_sweep(tmp_path):
    errors = [0.9, 0.3, 0.2, 0.25, 0.35, 0.3, 0.22, 0.18]   # epochs 0…7: down, up (peak at 4), down
    for noise in (0.0, 0.2):
        config = make_config("double_descent_epochwise", **{"corruption.name": "labels", "corruption.prob": noise,
                                                            "trainer.loss": "squared"})
        history = make_history(7, 4, train_acc=1.0, test_acc=0.8)
        for row, error in zip(history, errors):
            row["test_acc"] = 1 - error - noise / 10
        write_run(tmp_path / "sweep", config, history=history, measures={"num_params": 5000})
    collection = collect([tmp_path / "sweep"])
    assert detect_studies(collection.runs, collection.history) == ["double_descent_epochwise"]
    table = dd.epochwise_table(with_derived_columns(collection.runs), collection.history)
    assert list(table["min_epoch"]) == [2, 2] and list(table["peak_epoch"]) == [4, 4]
    assert table["peak_test_error_%"].tolist() == pytest.approx([35.0, 37.0])
    drawn = draw_figures(collection.runs, collection.history, tmp_path / "figures")
    assert [d.name for d in drawn] == ["error_vs_epoch"] and drawn[0].path.read_bytes().startswith(PNG_MAGIC)


def test_a_squared_loss_width_sweep_is_recognised_without_the_preset(tmp_path):
    collection = collect([double_descent_sweep(tmp_path / "sweep", name="my_sweep")])
    assert detect_studies(collection.runs, collection.history) == ["double_descent"]


def test_lockstep_trains_the_squared_loss_as_each_member_would_alone(tmp_path):
    from gen.run import train, train_group
    from gen.sweeps import ensemble
    base = ["trainer.loss=squared", "dataset.train_size=200", "model.hidden_units=16", "trainer.max_epochs=3",
            "trainer.progress=false", "optimizer=momentum", "optimizer.lr=0.05"]
    variants = [base + ["seed=0"], base + ["seed=1", "corruption=labels", "corruption.prob=0.2"]]
    group = [ensemble.Member(compose_config(v + ["trainer.ensemble=2"]), tmp_path / "lockstep" / str(i), tuple(v),
                             None) for i, v in enumerate(variants)]
    train_group(group)
    for i, overrides in enumerate(variants):
        train(compose_config(overrides), tmp_path / "alone" / str(i))
        together, alone = (json.loads((d / "metrics.json").read_text())
                           for d in (group[i].run_dir, tmp_path / "alone" / str(i)))
        assert together["model"]["objective"] == alone["model"]["objective"] == "squared"
        assert [r["train_loss"] for r in together["history"]] == pytest.approx(
            [r["train_loss"] for r in alone["history"]], rel=1e-5)
        assert any("lockstep" in note for note in together["notes"])


def test_the_epochwise_view_of_a_width_sweep_is_its_widest_network(tmp_path):
    collection = collect([double_descent_sweep(tmp_path / "sweep")])
    runs = with_derived_columns(collection.runs)
    assert set(dd.widest(runs)[dd.WIDTH]) == {256}
    table = dd.epochwise_table(runs, collection.history)
    # H = 256's final test error: mean over seeds of 0.15 (+0.01 for seed 1), + p/4 under noise
    assert table["last_test_error_%"].tolist() == pytest.approx([15.5, 20.5], abs=1e-3)


def test_the_trajectory_measures_prediction_error_follows_the_squared_losss_identity_link():
    from gen.measures.trajectory import prediction_error
    outputs, targets = torch.tensor([[3.0, 4.0, 1.0]]), torch.tensor([1])
    # ‖(3, 4, 1) − (0, 1, 0)‖ = √(9 + 9 + 1)
    assert prediction_error(outputs, targets, identity_link=True).item() == pytest.approx(math.sqrt(19))
    softmax = torch.softmax(outputs, -1)[0] - torch.tensor([0.0, 1.0, 0.0])
    assert prediction_error(outputs, targets).item() == pytest.approx(softmax.norm().item())
