"""Zhang et al.'s Table 1 from fabricated runs: regularization.csv and the report's section."""
import itertools

import pandas as pd
import pytest

from analysis.cli import main
from analysis.testing import make_config, make_history, write_run

MODELS = ("fc", "mlp1")
AUGMENTS = ("crop_flip", "none")
DECAYS = (5e-4, 0.0)
LABELS = {"none": "true labels", "random_labels": "random labels"}


def accuracies(model: str, augment: str, decay: float, corruption: str) -> tuple[float, float]:
    """Distinct made-up numbers per cell, so a swapped row or column cannot pass."""
    index = (MODELS.index(model) * 8 + AUGMENTS.index(augment) * 4 + DECAYS.index(decay) * 2
             + (corruption != "none"))
    return 0.5 + index / 100, 0.1 + index / 200


def fabricate(sweep, seeds=(0,)) -> None:
    for model, augment, decay, corruption, seed in itertools.product(MODELS, AUGMENTS, DECAYS, LABELS, seeds):
        config = make_config("zhang_regularization", seed=seed, **{
            "model.name": model, "augment.name": augment, "optimizer.weight_decay": decay,
            "corruption.name": corruption})
        train, test = accuracies(model, augment, decay, corruption)
        train, test = train + seed / 1000, test + seed / 1000
        write_run(sweep, config, history=make_history(5, 20, train, test, rate=100.0))


def test_the_table_has_a_row_per_model_and_regularizers_and_true_and_random_accuracies(tmp_path):
    sweep = tmp_path / "sweep"
    fabricate(sweep, seeds=(0, 2))
    assert main([str(sweep)]) == 0
    table = pd.read_csv(sweep / "analysis" / "regularization.csv")
    assert list(table.columns) == ["model", "augmentation", "weight decay",
                                   "train acc (true labels)", "test acc (true labels)", "runs (true labels)",
                                   "train acc (random labels)", "test acc (random labels)", "runs (random labels)"]
    assert len(table) == len(MODELS) * len(AUGMENTS) * len(DECAYS)
    for row in table.to_dict("records"):
        for corruption, labels in LABELS.items():
            train, test = accuracies(row["model"], row["augmentation"], row["weight decay"], corruption)
            assert row[f"train acc ({labels})"] == pytest.approx(train + 0.001)   # the mean of seeds 0 and 2
            assert row[f"test acc ({labels})"] == pytest.approx(test + 0.001)
            assert row[f"runs ({labels})"] == 2
    report = (sweep / "analysis" / "report.md").read_text()
    assert "## Explicit regularization (Zhang et al. 2017, Table 1)" in report
    assert "| mlp1 | none | 0 |" in report


def test_runs_from_before_the_augment_group_count_as_no_augmentation(tmp_path):
    sweep = tmp_path / "sweep"
    for decay in DECAYS:
        config = make_config("old", **{"optimizer.weight_decay": decay})
        del config["augment"]  # a record written before the group existed
        write_run(sweep, config, history=make_history(5, 20, 0.9, 0.8, rate=100.0))
    assert main([str(sweep)]) == 0
    table = pd.read_csv(sweep / "analysis" / "regularization.csv")
    assert table["augmentation"].tolist() == ["none", "none"] and table["weight decay"].tolist() == [5e-4, 0.0]


def test_a_sweep_that_varies_no_regularizer_gets_no_table(tmp_path):
    sweep = tmp_path / "sweep"
    for width in (8, 16):
        write_run(sweep, make_config("widths", **{"model.hidden_units": width}))
    assert main([str(sweep)]) == 0
    assert not (sweep / "analysis" / "regularization.csv").exists()
    assert "Explicit regularization" not in (sweep / "analysis" / "report.md").read_text()
