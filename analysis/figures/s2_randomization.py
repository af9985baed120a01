"""S2 (Zhang et al. 2017): randomization tests.

Figures: training loss vs step for each randomization test (Fig. 1a); steps, epochs and time to
interpolation vs label corruption per model (Fig. 1b, "convergence slowdown"); test error at
interpolation vs label corruption per model (Fig. 1c, "generalization error growth"); learning curves
with and without batch normalization (the BN ablation).
"""
import pandas as pd
import seaborn as sns

from analysis.figures import style
from analysis.figures.common import Context, Skip


DASHES = ["", (4, 2), (1, 1.5), (6, 2, 1, 2), (2, 3), (8, 3), (3, 1, 1, 1)] * 3


def loss_vs_step(ctx: Context):
    """Training loss vs step for each randomization test, one panel per model (Zhang Fig. 1a)."""
    ctx.need_history("step", "train_loss")
    if not style.varies(ctx.runs, "labels"):
        raise Skip("one kind of labels/inputs only: no randomization tests to compare")
    curves = style.join_history(ctx.history, ctx.runs, ["labels", "model.name"])
    panels = style.facets(curves, "model.name")
    fig, axes = style.new_figure(len(panels), width=4.8, height=3.6, sharey=True)
    for ax, (title, rows) in zip(axes.flat, panels):
        rows = rows.assign(x=style.display_values(rows, "step"))
        order = style.label_order(ctx.runs["labels"])
        # a dash pattern per test as well as a colour: curves that coincide (true labels and shuffled pixels
        # on an MLP) stay visible one through the other
        sns.lineplot(rows, x="x", y="train_loss", hue="labels", style="labels", errorbar=style.BAND, ax=ax,
                     hue_order=order, style_order=order, palette=style.label_palette(ctx.runs["labels"]),
                     dashes=DASHES[:len(order)], linewidth=1.8, legend=ax is axes.flat[-1])
        ax.set(xlabel=style.label("step"), ylabel="average training loss", title=title)
    style.legend_outside(axes.flat[-1])
    fig.suptitle("training loss per randomization test" + style.over_seeds(ctx.runs))
    return style.save(fig, ctx.path("s2_loss_vs_step"))


def time_to_interpolation(ctx: Context):
    """Steps, epochs and seconds to interpolation vs label corruption, per model (Zhang Fig. 1b)."""
    reached = _interpolated(ctx)
    keys = ["interpolation.step", "interpolation.epoch", "interpolation.seconds"]
    fig, axes = style.new_figure(len(keys), width=4.0, height=3.4)
    for ax, key in zip(axes.flat, keys):
        rows = reached.assign(y=style.display_values(reached, key))
        sns.lineplot(rows, x="corruption_level", y="y", hue="model.name", marker="o", errorbar=style.BAND, ax=ax,
                     legend=ax is axes.flat[-1])
        ax.set(xlabel=style.label("corruption_level"), ylabel=style.label(key))
    style.legend_outside(axes.flat[-1], title=style.label("model.name"))
    fig.suptitle(_reached_note(ctx, reached, "convergence slowdown") + style.over_seeds(reached))
    return style.save(fig, ctx.path("s2_time_to_interpolation"))


def test_error_at_interpolation(ctx: Context):
    """Test error at the interpolation point vs label corruption, per model (Zhang Fig. 1c)."""
    reached = _interpolated(ctx)
    rows = reached.assign(y=style.display_values(reached, "interpolation.test_error"))
    fig, axes = style.new_figure(width=5.0, height=3.6)
    ax = axes[0, 0]
    sns.lineplot(rows, x="corruption_level", y="y", hue="model.name", marker="o", errorbar=style.BAND, ax=ax)
    ax.set(xlabel=style.label("corruption_level"), ylabel=style.label("interpolation.test_error"))
    style.draw_chance(ax, style.chance_error(reached))
    ax.set_title(_reached_note(ctx, reached, "generalization error growth") + style.over_seeds(reached))
    style.legend_outside(ax, title=style.label("model.name"))
    return style.save(fig, ctx.path("s2_test_error_at_interpolation"))


def batch_norm_ablation(ctx: Context):
    """Train and test accuracy vs step with and without batch normalization (Zhang's BN ablation)."""
    ctx.need_history("step", "train_acc", "test_acc")
    if not style.varies(ctx.runs, "batch_norm"):
        raise Skip("no runs without batch normalization to compare (model.batch_norm or a *_nobn model)")
    curves = style.join_history(ctx.history, ctx.runs, ["batch_norm", "labels"])
    long = pd.concat([curves.assign(split=split, accuracy=style.display_values(curves, f"{split}_acc"))
                      for split in ("train", "test")], ignore_index=True)
    panels = style.facets(long, "labels")
    fig, axes = style.new_figure(len(panels), width=4.8, height=3.6, sharey=True)
    for ax, (title, rows) in zip(axes.flat, panels):
        rows = rows.assign(x=style.display_values(rows, "step"))
        sns.lineplot(rows, x="x", y="accuracy", hue="batch_norm", hue_order=["with BN", "without BN"], style="split",
                     style_order=["train", "test"],
                     dashes={"train": "", "test": (3, 2)}, errorbar=style.BAND, ax=ax, legend=ax is axes.flat[-1])
        ax.set(xlabel=style.label("step"), ylabel="accuracy (%)", title=title)
        style.draw_chance(ax, style.chance_level(ctx.runs, "test_acc"))
    style.legend_outside(axes.flat[-1])
    fig.suptitle("train and test accuracy with and without batch norm" + style.over_seeds(ctx.runs))
    return style.save(fig, ctx.path("s2_batch_norm_ablation"))


FIGURES = {"s2": [loss_vs_step, time_to_interpolation, test_error_at_interpolation, batch_norm_ablation],
           "s2_bn": [batch_norm_ablation]}


def _interpolated(ctx: Context) -> pd.DataFrame:
    ctx.need("interpolation.reached", "corruption_level")
    if ctx.runs["corruption_level"].dropna().nunique() < 2:
        raise Skip("the label corruption level does not vary")
    reached = ctx.runs[ctx.runs["interpolation.reached"].fillna(False).astype(bool)]
    if reached["corruption_level"].dropna().nunique() < 2:
        raise Skip("fewer than two corruption levels have runs that reached interpolation")
    return reached


def _reached_note(ctx: Context, reached: pd.DataFrame, title: str) -> str:
    missed = len(ctx.runs) - len(reached)
    return title + (f" ({missed} runs never interpolated: not drawn)" if missed else "")

