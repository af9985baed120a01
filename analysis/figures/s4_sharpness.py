"""S4 (minimum sharpness and SAM across optimizers): does a flatter minimum mean a smaller gap?

Figures: minimum sharpness vs the generalization gap, one panel per architecture with its Kendall τ;
bars of test accuracy, gap and sharpness by optimizer, with and without SAM.
"""
import numpy as np
import pandas as pd
import seaborn as sns

from analysis import rank
from analysis.figures import style
from analysis.figures.common import Context, Skip

SHARPNESS = ("measures.min_sharpness", "measures.sharpness_worst", "measures.hessian_trace",
             "measures.hessian_top_eig")


def sharpness_vs_gap(ctx: Context):
    """Minimum sharpness vs generalization gap per architecture, with Kendall τ (S4)."""
    sharpness = _sharpness_key(ctx)
    gap = rank.gap_column(ctx.runs)
    if gap is None:
        raise Skip("no generalization gap")
    runs = ctx.runs.assign(x=pd.to_numeric(ctx.runs[sharpness], errors="coerce"),
                           y=style.display_values(ctx.runs, gap)).dropna(subset=["x", "y"])
    if "optimizer.name" in runs:
        runs["optimizer"] = runs["optimizer.name"].map(lambda n: OPTIMIZER_NAMES.get(n, n))
    panels = style.facets(runs, "model.name")
    fig, axes = style.new_figure(len(panels), width=4.6, height=3.8)
    for ax, (title, rows) in zip(axes.flat, panels):
        tau, _ = rank.kendall_tau(rows["x"].to_numpy(float), rows["y"].to_numpy(float))
        sns.scatterplot(rows, x="x", y="y", hue=_hue(rows), style="sam" if "sam" in rows else None, s=60, ax=ax,
                        legend=ax is axes.flat[-1])
        style.set_log_x(ax, sharpness, rows["x"])
        ax.set(xlabel=style.label(sharpness), ylabel=style.label(gap))
        ax.set_title(f"{title.split(' = ')[-1] or 'all runs'}: Kendall τ = {tau:.2f}", fontsize="medium")
    style.legend_outside(axes.flat[-1])
    return style.save(fig, ctx.path("s4_sharpness_vs_gap"))


def optimizer_bars(ctx: Context):
    """Test accuracy and gap as bars, sharpness as points on a log axis (bars from an arbitrary floor
    would mislead there), by optimizer, with and without SAM (S4)."""
    ctx.need("optimizer.name")
    gap = rank.gap_column(ctx.runs)
    keys = ["final.test_acc"] + ([gap] if gap else [])
    keys += [k for k in SHARPNESS[:1] if k in ctx.runs and ctx.runs[k].notna().any()]
    runs = ctx.runs.assign(optimizer=ctx.runs["optimizer.name"].map(lambda n: OPTIMIZER_NAMES.get(n, n)))
    archs = style.facets(runs, "model.name")
    fig, axes = style.new_figure(len(keys), len(archs), width=4.0, height=3.3)
    order = sorted(runs["optimizer"].dropna().unique(), key=str.lower)
    hue_order = [h for h in ("without SAM", "with SAM") if "sam" in runs and h in set(runs["sam"])]
    for r, (title, rows) in enumerate(archs):
        for c, key in enumerate(keys):
            ax = axes[r, c]
            data = rows.assign(y=style.display_values(rows, key))
            common = dict(x="optimizer", y="y", hue="sam" if hue_order else None, order=order,
                          hue_order=hue_order or None, errorbar=style.BAND, ax=ax,
                          legend=(r, c) == (0, len(keys) - 1))
            if key in SHARPNESS:
                sns.pointplot(data, dodge=0.3, linestyle="none", markers="o", **common)
                if (data["y"] > 0).all():
                    ax.set_yscale("log")
            else:
                sns.barplot(data, **common)
            ax.set(xlabel="optimizer", ylabel=style.label(key), title=title)
            style.draw_chance(ax, style.chance_level(rows, key), over_bars=True)
            ax.tick_params(axis="x", labelrotation=45)
            for tick in ax.get_xticklabels():  # anchor the rotated names at their bars
                tick.set_horizontalalignment("right")
    style.legend_outside(axes[0, len(keys) - 1])
    fig.suptitle("by optimizer, with and without SAM" + style.over_seeds(runs))
    return style.save(fig, ctx.path("s4_optimizers"))


# The optimizers as S4 and docs/reproductions.md name them (config option → name).
OPTIMIZER_NAMES = {"s4_sgd": "SGD", "sgd": "SGD", "momentum": "heavy ball (PHB)", "nesterov": "Nesterov",
                   "adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad", "adabound": "AdaBound",
                   "adashift": "AdaShift"}


FIGURES = {"s4": [sharpness_vs_gap, optimizer_bars]}


def _sharpness_key(ctx: Context) -> str:
    for key in SHARPNESS:
        if key in ctx.runs and np.isfinite(pd.to_numeric(ctx.runs[key], errors="coerce")).sum() >= 2:
            return key
    raise Skip("no sharpness measure recorded (measure=sharpness adds min_sharpness)")


def _hue(rows: pd.DataFrame) -> str | None:
    return "optimizer" if "optimizer" in rows else None
