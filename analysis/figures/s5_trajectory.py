"""S5 (Loukas et al. 2021, the steady learner): how the first-layer bias travels during training,
against the complexity of the task (the sinusoid's frequency f, or the label corruption).

Figures: bias trajectory length per epoch and in total; violins of the bias variance and the distance
from initialization; the local Lipschitz estimate per epoch.
"""
import pandas as pd
import seaborn as sns

from analysis.figures import style
from analysis.figures.common import Context, Skip

TRAJECTORY_HISTORY = "bias_trajectory_epoch"


def trajectory(ctx: Context):
    """Bias trajectory length per epoch (left) and in total (right) by task complexity (S5)."""
    factor = _factor(ctx)
    has_curve = TRAJECTORY_HISTORY in ctx.history and ctx.history[TRAJECTORY_HISTORY].notna().any()
    has_total = "measures.bias_trajectory" in ctx.runs and ctx.runs["measures.bias_trajectory"].notna().any()
    if not (has_curve or has_total):
        raise Skip("no bias trajectory recorded (measure=trajectory tracks it)")
    fig, axes = style.new_figure(int(has_curve) + int(has_total), width=4.8, height=3.6)
    panels = iter(axes.flat)
    if has_curve:
        ax = next(panels)
        curves = style.join_history(ctx.history, ctx.runs, [factor]).dropna(subset=[TRAJECTORY_HISTORY])
        sns.lineplot(curves, x="epoch", y=TRAJECTORY_HISTORY, hue=factor, palette="viridis", errorbar=style.BAND,
                     ax=ax)
        if (curves[TRAJECTORY_HISTORY] > 0).all():
            ax.set_yscale("log")
        ax.set(xlabel=style.label("epoch"), ylabel="trajectory length per epoch", title="per epoch")
        ax.legend(title=style.label(factor), fontsize="small")
    if has_total:
        ax = next(panels)
        sns.stripplot(ctx.runs, x=factor, y="measures.bias_trajectory", color="0.3", size=4, ax=ax)
        sns.pointplot(ctx.runs, x=factor, y="measures.bias_trajectory", errorbar=style.BAND, color="C0",
                      markers="D", ax=ax)
        ax.set(xlabel=style.label(factor), ylabel="total trajectory length", title="whole training")
    fig.suptitle("first-layer bias trajectory" + style.over_seeds(ctx.runs))
    return style.save(fig, ctx.path("s5_trajectory"))


def violins(ctx: Context):
    """Violins of the bias variance and the bias distance from initialization vs task complexity (S5);
    with one run per setting there is no distribution to draw: its points, joined, and the title says so."""
    factor = _factor(ctx)
    keys = [k for k in ("measures.bias_variance", "measures.bias_distance_init")
            if k in ctx.runs and ctx.runs[k].notna().any()]
    if not keys:
        raise Skip("no bias variance or distance recorded (measure=trajectory records them)")
    fig, axes = style.new_figure(len(keys), width=4.4, height=3.6)
    for ax, key in zip(axes.flat, keys):
        rows = ctx.runs.assign(y=pd.to_numeric(ctx.runs[key], errors="coerce")).dropna(subset=["y"])
        if rows.groupby(factor).size().max() > 1:
            sns.violinplot(rows, x=factor, y="y", inner="point", cut=0, color="C0", ax=ax)
            title = style.label(key)
        else:
            sns.pointplot(rows, x=factor, y="y", color="C0", markers="o", errorbar=None, ax=ax)
            title = f"{style.label(key)}\n(one run per {style.label(factor)}: no spread to draw)"
        ax.set(xlabel=style.label(factor), ylabel=style.label(key), title=title)
    return style.save(fig, ctx.path("s5_violins"))


def lipschitz_vs_epoch(ctx: Context):
    """The local Lipschitz estimate at the training points per epoch, by task complexity (S5)."""
    factor = _factor(ctx)
    ctx.need_history("epoch", "lipschitz")
    curves = style.join_history(ctx.history, ctx.runs, [factor]).dropna(subset=["lipschitz"])
    fig, axes = style.new_figure(width=5.0, height=3.6)
    ax = axes[0, 0]
    sns.lineplot(curves, x="epoch", y="lipschitz", hue=factor, palette="viridis", errorbar=style.BAND, ax=ax)
    ax.set(xlabel=style.label("epoch"), ylabel=style.label("lipschitz"),
           title="local Lipschitz estimate" + style.over_seeds(ctx.runs))
    style.legend_outside(ax, title=style.label(factor))
    return style.save(fig, ctx.path("s5_lipschitz_vs_epoch"))


FIGURES = {"s5": [trajectory, violins, lipschitz_vs_epoch]}


def _factor(ctx: Context) -> str:
    """What makes the task harder in this sweep: the frequency f, else the label corruption."""
    for key in ("dataset.f", "corruption_level"):
        if style.varies(ctx.runs, key):
            return key
    raise Skip("neither the frequency dataset.f nor the label corruption varies")
