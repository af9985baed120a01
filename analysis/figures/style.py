"""What every figure shares: the Agg backend, one seaborn theme, axis labels with units, percent
scaling of accuracies, log axes where the papers use them, derived columns, and saving."""
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display: works on clusters and in tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(context="paper", style="whitegrid", font_scale=1.15)
plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 130, "savefig.bbox": "tight", "legend.frameon": False,
                     "figure.constrained_layout.use": True})

BAND = "sd"  # seeds of one config: a line through the mean and a band of ± one standard deviation

# Axis labels with units.  Keys given as fractions in metrics.json are drawn in percent.
LABELS = {
    "model.hidden_units": "hidden units H",
    "dataset.train_size": "training-set size N (samples)",
    "data.train_size": "training-set size N (samples)",
    "corruption_level": "label corruption p",
    "corruption.prob": "label corruption p",
    "dataset.f": "target frequency f",
    "final.train_error": "train error (%)",
    "final.test_error": "test error (%)",
    "final.train_acc": "train accuracy (%)",
    "final.test_acc": "test accuracy (%)",
    "final.gen_gap": "gap: train − test accuracy (%)",
    "final.loss_gap": "gap: test − train loss",
    "final.train_loss": "train loss", "final.test_loss": "test loss",
    "final.epochs": "epochs trained", "final.steps": "SGD steps",
    "interpolation.epoch": "epochs to interpolation",
    "interpolation.step": "steps to interpolation (thousands)",
    "interpolation.seconds": "time to interpolation (s)",
    "interpolation.test_error": "test error at interpolation (%)",
    "split_acc.train_clean": "train accuracy, clean samples (%)",
    "split_acc.train_corrupted": "train accuracy, corrupted samples (%)",
    "timing.total_s": "run time (s)", "timing.train_s": "training time (s)",
    "timing.train_samples_per_s": "training throughput (samples/s)",
    "epoch": "epoch", "step": "SGD step (thousands)", "seconds": "training time (s)",
    "train_loss": "training loss", "test_loss": "test loss", "lr": "learning rate",
    "train_acc": "train accuracy (%)", "test_acc": "test accuracy (%)",
    "bias_trajectory_epoch": "first-layer bias trajectory length per epoch",
    "lipschitz": "local Lipschitz estimate",
    "optimizer.name": "optimizer", "model.name": "architecture", "sam": "SAM", "corruption.name": "corruption",
}

MEASURE_LABELS = {
    "num_params": "#parameters", "margin": "margin γ",
    "l2": "ℓ2 norm / γ²", "l1_path": "ℓ1-path norm / γ²", "l2_path": "ℓ2-path norm / γ²",
    "spectral": "spectral norm / γ²", "frobenius_product": "Π‖W‖_F", "spectral_product": "Π‖W‖₂",
    # S1's code's unsquared forms (docs/measures.md)
    "l2_plain": "Π‖W‖_F / γ (S1 code)", "spectral_plain": "Π‖W‖₂ / γ (S1 code)",
    "l1_path_plain": "ℓ1-path / γ (S1 code)", "l2_path_plain": "ℓ2-path / γ (S1 code)",
    "distance_from_init": "Σ‖W − W⁰‖²_F", "sharpness_worst": "worst-case sharpness",
    "sharpness_expected": "expected sharpness", "pacbayes_init": "PAC-Bayes (init)",
    "pacbayes_orig": "PAC-Bayes (orig)", "pacbayes_flatness": "PAC-Bayes flatness 1/σ²",
    "pacbayes_mag_init": "mag.-aware PAC-Bayes (init)", "pacbayes_mag_orig": "mag.-aware PAC-Bayes (orig)",
    "pacbayes_mag_flatness": "mag.-aware flatness 1/σ'²", "bartlett2017": "Bartlett et al. 2017 bound",
    "neyshabur2018": "Neyshabur et al. 2018 bound", "min_sharpness": "minimum sharpness",
    "hessian_trace": "Hessian trace", "hessian_top_eig": "Hessian top eigenvalue",
    "bias_trajectory": "bias trajectory length", "bias_variance": "bias variance",
    "bias_distance_init": "bias distance from init", "lipschitz": "local Lipschitz estimate",
    "steps_to_ce_0.1": "steps to train CE 0.1", "steps_ce_0.1_to_0.01": "steps from CE 0.1 to 0.01",
}

# Keys whose values are fractions in [0, 1]: drawn ×100.
PERCENT_KEYS = {"final.train_error", "final.test_error", "final.train_acc", "final.test_acc", "final.gen_gap",
                "interpolation.test_error", "split_acc.train_clean", "split_acc.train_corrupted",
                "train_acc", "test_acc",
                "train_error", "test_error"}
THOUSANDS_KEYS = {"interpolation.step", "step"}


def label(key: str) -> str:
    if key in LABELS:
        return LABELS[key]
    if key.startswith("measures."):
        return MEASURE_LABELS.get(key.removeprefix("measures."), key.removeprefix("measures."))
    return key.replace("_", " ")


def display_values(table: pd.DataFrame, key: str) -> pd.Series:
    """The column as drawn: fractions in percent, steps in thousands."""
    values = pd.to_numeric(table[key], errors="coerce")
    if key in PERCENT_KEYS:
        return values * 100.0
    if key in THOUSANDS_KEYS:
        return values / 1000.0
    return values


def log_axis_wanted(key: str, values: pd.Series) -> bool:
    """Log scale for sizes the papers draw on log axes, and for positive values spanning > 2 decades."""
    if key in ("model.hidden_units", "dataset.train_size", "data.train_size"):
        return True
    v = pd.to_numeric(values, errors="coerce").dropna()
    return len(v) > 1 and bool((v > 0).all()) and v.max() / v.min() > 100


def set_log_x(ax, key: str, values: pd.Series) -> None:
    if log_axis_wanted(key, values):
        base = 2 if key == "model.hidden_units" else 10
        ax.set_xscale("log", base=base)
        if base == 2:  # H = 4, 16, 64 … read better as plain numbers than as 2^k
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))


# ---- derived columns: the categories the papers name ------------------------------------------

CORRUPTION_NAMES = {"none": "true labels", "random_labels": "random labels", "shuffled_pixels": "shuffled pixels",
                    "random_pixels": "random pixels", "gaussian": "Gaussian"}


def corruption_kind(row: pd.Series) -> str:
    """'true labels', 'random labels', 'labels p=0.4', 'shuffled pixels' …"""
    name = row.get("corruption.name")
    if not isinstance(name, str):
        return "true labels"
    prob = row.get("corruption.prob")
    if name == "labels":
        if prob is None or (isinstance(prob, float) and math.isnan(prob)) or prob == 0:
            return "true labels"
        return "random labels" if prob == 1 else f"labels p={prob:g}"
    return CORRUPTION_NAMES.get(name, name.replace("_", " "))


def corruption_level(row: pd.Series) -> float:
    """The fraction of labels randomized: 0 for clean data, the ``prob`` of a label corruption."""
    name = row.get("corruption.name")
    if name in (None, "none") or (isinstance(name, float) and math.isnan(name)):
        return 0.0
    prob = row.get("corruption.prob")
    if name in ("labels", "random_labels") and prob is not None and not pd.isna(prob):
        return float(prob)
    return math.nan


def with_derived_columns(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``labels`` (kind of corruption), ``corruption_level``, ``sam`` and ``batch_norm`` columns."""
    table = runs.copy()
    if not len(table):
        return table
    records = table.to_dict("records")
    table["labels"] = [corruption_kind(r) for r in records]
    table["corruption_level"] = [corruption_level(r) for r in records]
    if "optimizer.sam.enabled" in table:
        table["sam"] = np.where(table["optimizer.sam.enabled"].fillna(False).astype(bool), "with SAM", "without SAM")
    table["batch_norm"] = [_batch_norm(r) for r in records]
    return table


def _batch_norm(row: dict) -> str:
    flag = row.get("model.batch_norm")
    if isinstance(flag, (bool, np.bool_)):
        return "with BN" if flag else "without BN"
    name = str(row.get("model.name") or "")
    return "without BN" if "nobn" in name or "no_bn" in name else "with BN"


def join_history(history: pd.DataFrame, runs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """History rows with the run-level ``columns`` (hue, facets) attached."""
    keep = ["run_id"] + [c for c in dict.fromkeys(columns)  # a measure along epochs is the history's own column
                         if c in runs and c != "run_id" and c not in history]
    return history.merge(runs[keep], on="run_id", how="inner")


def varies(table: pd.DataFrame, key: str) -> bool:
    return key in table and table[key].nunique(dropna=True) > 1


def measure_columns(table: pd.DataFrame) -> list[str]:
    """``measures.*`` columns with at least two finite values."""
    found = []
    for column in table.columns:
        if column.startswith("measures."):
            values = pd.to_numeric(table[column], errors="coerce")
            if np.isfinite(values).sum() >= 2:
                found.append(column)
    return found


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.6, height: float = 3.5, **kwargs):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)
    return fig, axes


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def chance_error(runs: pd.DataFrame) -> float | None:
    """Test error (%) of guessing the most frequent class of a balanced k-class task: 100·(1 − 1/k);
    None when the runs do not share one class count (regression, or mixed tasks)."""
    classes = pd.to_numeric(runs.get("data.num_classes", pd.Series(dtype=float)), errors="coerce").dropna().unique()
    if len(classes) != 1 or classes[0] < 2:
        return None
    return 100.0 * (1.0 - 1.0 / classes[0])


def draw_chance(ax, level: float | None, over_bars: bool = False) -> None:
    """A dotted line at the chance level, labelled, so a curve at chance reads as such (behind the
    curves; ``over_bars``: in front, where bars would hide it)."""
    if level is None:
        return
    ax.axhline(level, color="0.25" if over_bars else "0.45", linestyle=":", linewidth=1.2, zorder=3 if over_bars else 0)
    right = level >= 50        # error curves reach chance at the right (wide nets, high p), accuracy at the left
    ax.annotate("chance", xy=(1.0 if right else 0.0, level), xycoords=("axes fraction", "data"),
                xytext=(-2 if right else 2, 3), textcoords="offset points", ha="right" if right else "left",
                va="bottom", fontsize="small", color="0.35")


def over_seeds(runs: pd.DataFrame) -> str:
    """' (mean ± sd over N seeds)' where seeds vary, else '' (one seed has no spread to show)."""
    seeds = runs["seed"].nunique() if "seed" in runs else 1
    return f" (mean ± sd over {seeds} seeds)" if seeds > 1 else ""


def chance_level(runs: pd.DataFrame, key: str) -> float | None:
    """The chance level of ``key`` as drawn (percent): the chance error for an error, 100 minus it for an
    accuracy, None for anything else (or where :func:`chance_error` has none)."""
    error = chance_error(runs)
    if error is None or key not in PERCENT_KEYS or "gap" in key:
        return None
    return error if key.endswith("error") else 100.0 - error


MARGIN = "measures.margin"
UNDEFINED_BY_MARGIN = "margin ≤ 0: measure undefined"


def undefined_by_margin(runs: pd.DataFrame, measure: str) -> pd.Series:
    """Runs where ``measure`` is null because their margin γ is ≤ 0: the measures that divide by γ
    (gen.measures.context.MeasureContext.positive_margin) do not exist there.  Where the runs' notes are at hand,
    the measure's own note must say so ("NAME: the margin ... ≤ 0"), so a measure null for another
    reason is not put down to the margin."""
    if MARGIN not in runs or measure not in runs or measure == MARGIN:
        return pd.Series(False, index=runs.index)
    margin = pd.to_numeric(runs[MARGIN], errors="coerce")
    undefined = pd.to_numeric(runs[measure], errors="coerce").isna() & (margin <= 0)
    if "notes" in runs:
        name = re.escape(measure.removeprefix("measures."))
        undefined &= runs["notes"].fillna("").astype(str).str.contains(rf"(?:^|; ){name}: the margin .*≤ 0")
    return undefined


UNDEFINED_GID = "undefined_by_margin"


def mark_undefined(ax, x: pd.Series, colors: list, y: float) -> None:
    """Crosses where a measure is undefined, one per run, at height ``y`` as a fraction of the panel's
    height (near its bottom), whatever the y scale."""
    from matplotlib.transforms import blended_transform_factory
    ax.scatter(x, [y] * len(x), marker="x", s=28, c=colors, linewidths=1.2, clip_on=False, zorder=3,
               transform=blended_transform_factory(ax.transData, ax.transAxes), gid=UNDEFINED_GID)


def hide_unused(axes, used: int) -> None:
    for ax in axes.flat[used:]:
        ax.set_visible(False)


def facets(table: pd.DataFrame, col: str | None) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per value of ``col``; one untitled facet when ``col`` is None or constant."""
    if col is None or col not in table or table[col].nunique(dropna=False) <= 1:
        return [("", table)]
    return [(f"{label(col)} = {value}", rows) for value, rows in table.groupby(col, sort=True, dropna=False)]


# Sub-legend titles for derived columns: the entries say enough by themselves ("train", "with BN").
LEGEND_TITLES = {"labels": "labels / inputs", "split": "", "part": "", "batch_norm": "", "sam": "",
                 "p": "label corruption"}


def legend_outside(ax, title: str | None = None) -> None:
    """The legend to the right of the axes, so it never hides a curve."""
    if ax.get_legend() is None:
        return
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1.0), title=title, fontsize="small")
    for text in ax.get_legend().get_texts():  # seaborn titles sub-legends with the column key
        key = text.get_text()
        if key in LEGEND_TITLES:
            text.set_text(LEGEND_TITLES[key])
        elif key in LABELS:
            text.set_text(LABELS[key])


# The same kind of labels keeps its colour in every figure: true blue, random red (as in S1's figures).
LABEL_COLORS = {"true labels": "C0", "random labels": "C3", "shuffled pixels": "C1", "random pixels": "C2",
                "Gaussian": "C4"}


def label_order(labels: pd.Series) -> list[str]:
    """Label corruptions by p (true labels, labels p=…, random labels), then the input corruptions."""
    def position(kind: str) -> tuple:
        p = {"true labels": 0.0, "random labels": 1.0}.get(kind, _partial_p(kind))
        if p != math.inf:
            return 0, p, kind
        return 1, list(LABEL_COLORS).index(kind) if kind in LABEL_COLORS else len(LABEL_COLORS), kind
    return sorted(dict.fromkeys(labels.dropna()), key=position)


def label_palette(labels: pd.Series) -> dict[str, tuple]:
    """Fixed colours per kind; with partial label corruption, one sequential scale from true (p = 0)
    to random labels (p = 1), as Zhang et al.'s corruption-level figures read."""
    order = label_order(labels)
    levels = [k for k in order if k not in LABEL_COLORS or k in ("true labels", "random labels")]
    if len(levels) > 2 or (levels and not all(k in LABEL_COLORS for k in order)):
        levels = sorted(levels, key=lambda k: {"true labels": 0.0, "random labels": 1.0}.get(k, _partial_p(k)))
        scale = dict(zip(levels, sns.color_palette("viridis", len(levels))))
    else:
        scale = {}
    return {k: scale.get(k) or LABEL_COLORS.get(k) for k in order}


def _partial_p(name: str) -> float:
    try:
        return float(name.rsplit("=", 1)[1])
    except (IndexError, ValueError):
        return math.inf


def show_all_tick_labels(axes) -> None:
    """With shared axes, matplotlib hides inner tick labels; a grid with empty cells needs them back."""
    for ax in axes.flat:
        ax.tick_params(labelbottom=True, labelleft=True)
