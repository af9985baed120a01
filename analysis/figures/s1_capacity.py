"""S1 (Neyshabur et al. 2017): error and complexity measures as capacity grows, true vs random labels.

Figures: train/test error vs hidden units H (log x) and vs training-set size N, and each measure's own
values vs H and vs N, one line per kind of labels, on a log y axis where every value is positive: the
factor between true and random labels reads off directly.
"""
import numpy as np
import pandas as pd
import seaborn as sns

from analysis.figures import style
from analysis.figures.common import Context, Skip

SKIPPED_MEASURES = ("measures.num_params",)  # fixed by H: a line that says nothing about generalization
UNDEFINED_Y = 0.04  # where the crosses of runs whose measure is undefined (margin ≤ 0) sit: panel fraction


def error_vs_hidden_units(ctx: Context):
    """Train and test error vs hidden units (S1, Fig. 1 left)."""
    return _error_figure(ctx, "model.hidden_units", "s1_error_vs_hidden_units")


def measures_vs_hidden_units(ctx: Context):
    """Each measure vs hidden units, true vs random labels (S1, Fig. 1 right)."""
    return _measures_figure(ctx, "model.hidden_units", "s1_measures_vs_hidden_units")


def error_vs_train_size(ctx: Context):
    """Train and test error vs training-set size (S1, Fig. 2 left)."""
    return _error_figure(ctx, _size_key(ctx), "s1_error_vs_train_size")


def measures_vs_train_size(ctx: Context):
    """Each measure vs training-set size, true vs random labels (S1, Fig. 2)."""
    return _measures_figure(ctx, _size_key(ctx), "s1_measures_vs_train_size")


FIGURES = {"s1_width": [error_vs_hidden_units, measures_vs_hidden_units],
           "s1_size": [error_vs_train_size, measures_vs_train_size]}


def _size_key(ctx: Context) -> str:
    """The actual number of training samples where recorded (``dataset.train_size`` may be null = all)."""
    for key in ("data.train_size", "dataset.train_size"):
        if style.varies(ctx.runs, key):
            return key
    raise Skip("the training-set size does not vary")


def _error_figure(ctx: Context, x: str, name: str):
    ctx.need(x, "final.train_error", "final.test_error")
    if not style.varies(ctx.runs, x):
        raise Skip(f"{x} does not vary")
    long = pd.concat([pd.DataFrame({"x": ctx.runs[x], "labels": ctx.runs["labels"], "error":
                                    style.display_values(ctx.runs, f"final.{split}_error"), "split": split})
                      for split in ("train", "test")], ignore_index=True)
    fig, axes = style.new_figure(width=5.2, height=3.8)
    ax = axes[0, 0]
    sns.lineplot(long, x="x", y="error", hue="labels", hue_order=style.label_order(long["labels"]),
                 palette=style.label_palette(long["labels"]), style="split", style_order=["train", "test"],
                 markers={"train": "o", "test": "s"}, dashes={"train": (3, 2), "test": ""}, errorbar=style.BAND, ax=ax)
    style.set_log_x(ax, x, ctx.runs[x])
    ax.set(xlabel=style.label(x), ylabel="error (%)", ylim=(-2, 102))
    style.draw_chance(ax, style.chance_error(ctx.runs))
    ax.set_title("train and test error" + style.over_seeds(ctx.runs))
    style.legend_outside(ax)
    return style.save(fig, ctx.path(name))


def positive(values: pd.Series) -> bool:
    """Every recorded value > 0: the panel is drawn on a log axis."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    return len(v) > 0 and bool((v > 0).all())


def _measures_figure(ctx: Context, x: str, name: str):
    ctx.need(x)
    if not style.varies(ctx.runs, x):
        raise Skip(f"{x} does not vary")
    measures = [m for m in style.measure_columns(ctx.runs) if m not in SKIPPED_MEASURES]
    if not measures:
        raise Skip("no measures recorded (measure=default records only num_params and margin)")
    ncols = min(4, len(measures))
    nrows = int(np.ceil(len(measures) / ncols))
    fig, axes = style.new_figure(ncols, nrows, width=3.6, height=3.0, sharex=True)
    palette = style.label_palette(ctx.runs["labels"])
    undefined_anywhere = False
    for ax, measure in zip(axes.flat, measures):
        y = pd.to_numeric(ctx.runs[measure], errors="coerce").astype(float)
        panel = pd.DataFrame({"x": ctx.runs[x], "y": y, "labels": ctx.runs["labels"]}).dropna()
        sns.lineplot(panel, x="x", y="y", hue="labels", hue_order=style.label_order(ctx.runs["labels"]),
                     palette=palette, marker="o", errorbar=style.BAND, ax=ax, legend=ax is axes.flat[0])
        if positive(y):
            ax.set_yscale("log")
        undefined = ctx.runs[style.undefined_by_margin(ctx.runs, measure)]
        if len(undefined):
            for row, (kind, rows) in enumerate(undefined.groupby("labels", sort=False)):  # kinds side by side
                style.mark_undefined(ax, rows[x], [palette[kind]] * len(rows), UNDEFINED_Y + 0.05 * row)
            undefined_anywhere = True
        style.set_log_x(ax, x, ctx.runs[x])
        constant = y.nunique() <= 1
        ax.set_title(style.label(measure) + (" (constant)" if constant else ""), fontsize="medium")
        ax.set(xlabel=style.label(x), ylabel="value (log scale)" if positive(y) else "value")
    style.hide_unused(axes, len(measures))
    style.show_all_tick_labels(axes)
    if undefined_anywhere:
        axes.flat[0].scatter([], [], marker="x", color="0.3", label=style.UNDEFINED_BY_MARGIN)
    if axes.flat[0].get_legend() is not None:
        axes.flat[0].legend(title=None, fontsize="small", loc="best")
    fig.suptitle("complexity measures, each on its own scale" + style.over_seeds(ctx.runs))
    return style.save(fig, ctx.path(name))
