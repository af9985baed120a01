"""Zhang et al. 2017's Table 1 (the role of explicit regularization) from a sweep's runs: one row per
model × data augmentation × weight decay, the train and test accuracy on true and on random labels.

Written (``regularization.csv``, and a section of the report) whenever the completed runs vary
``augment.name`` or ``optimizer.weight_decay``.  Runs from before the ``augment`` group count as
``augment=none`` (what they trained with).  Several runs of one cell (seeds) are averaged and counted.
"""
from pathlib import Path

import pandas as pd

MODEL, AUGMENT, WEIGHT_DECAY, CORRUPTION = "model.name", "augment.name", "optimizer.weight_decay", "corruption.name"
LABELS = {"none": "true labels", "random_labels": "random labels"}   # other corruptions keep their own name
ACCURACIES = {"final.train_acc": "train acc", "final.test_acc": "test acc"}
FILE = "regularization.csv"


def applies(runs: pd.DataFrame) -> bool:
    """True when the runs vary a regularizer Zhang's Table 1 switches on and off."""
    if not len(runs) or MODEL not in runs:
        return False
    settings = _settings(runs)
    return settings[AUGMENT].nunique() > 1 or settings[WEIGHT_DECAY].nunique() > 1


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """model, augmentation, weight decay, then "<train|test> acc (<labels>)" and each cell's run count."""
    settings = _settings(runs)
    keys = [MODEL, AUGMENT, WEIGHT_DECAY]
    cells = settings.groupby(keys + ["labels"], sort=True).agg(
        **{name: (column, "mean") for column, name in ACCURACIES.items()}, runs=("run_id", "count"))
    wide = cells.unstack("labels")
    order = sorted(wide.columns.get_level_values("labels").unique(), key=_label_order)
    columns = [(measure, labels) for labels in order for measure in [*ACCURACIES.values(), "runs"]]
    wide = wide[columns]
    wide.columns = [f"{measure} ({labels})" for measure, labels in columns]
    wide = wide.reset_index().rename(columns={MODEL: "model", AUGMENT: "augmentation", WEIGHT_DECAY: "weight decay"})
    return wide.sort_values(["model", "augmentation", "weight decay"], ascending=[True, True, False],
                            ignore_index=True)


def write(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``regularization.csv`` in ``out_dir`` when :func:`applies`; the files written."""
    if not applies(runs):
        return []
    path = Path(out_dir) / FILE
    table(runs).to_csv(path, index=False)
    return [path]


def _settings(runs: pd.DataFrame) -> pd.DataFrame:
    settings = pd.DataFrame({
        "run_id": runs["run_id"], MODEL: runs[MODEL],
        AUGMENT: runs[AUGMENT].fillna("none") if AUGMENT in runs else "none",
        WEIGHT_DECAY: runs[WEIGHT_DECAY].fillna(0.0).astype(float) if WEIGHT_DECAY in runs else 0.0,
        "labels": (runs[CORRUPTION].fillna("none") if CORRUPTION in runs else pd.Series("none", index=runs.index))
        .map(lambda name: LABELS.get(name, name)),
    }, index=runs.index)
    for column in ACCURACIES:
        settings[column] = runs[column] if column in runs else float("nan")
    return settings


def _label_order(labels: str) -> tuple[int, str]:
    ranks = {name: rank for rank, name in enumerate(LABELS.values())}
    return ranks.get(labels, len(ranks)), labels
