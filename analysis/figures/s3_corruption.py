"""S3 (the randomization-test suite): how well a network fits the clean and the corrupted part of
its training set, at the end of training and epoch by epoch."""
import pandas as pd
import seaborn as sns

from analysis.figures import style
from analysis.figures.common import Context, Skip

PARTS = {"split_acc.train_clean": "train, clean samples", "split_acc.train_corrupted": "train, corrupted samples",
         "final.test_acc": "test"}


def split_accuracy_vs_corruption(ctx: Context):
    """Final train accuracy on clean vs corrupted samples, and test accuracy, vs label corruption."""
    ctx.need("split_acc.train_clean", "corruption_level")
    if ctx.runs["corruption_level"].dropna().nunique() < 2:
        raise Skip("the label corruption level does not vary")
    long = pd.concat([ctx.runs.assign(accuracy=style.display_values(ctx.runs, key), part=part)
                      for key, part in PARTS.items() if key in ctx.runs], ignore_index=True)
    panels = style.facets(long, "model.name")
    fig, axes = style.new_figure(len(panels), width=4.8, height=3.6, sharey=True)
    for ax, (title, rows) in zip(axes.flat, panels):
        sns.lineplot(rows, x="corruption_level", y="accuracy", hue="part", hue_order=list(PARTS.values()),
                     marker="o", errorbar=style.BAND, ax=ax, legend=ax is axes.flat[-1])
        ax.set(xlabel=style.label("corruption_level"), ylabel="accuracy (%)", title=title, ylim=(-3, 103))
        chance_error = style.chance_error(rows)
        style.draw_chance(ax, None if chance_error is None else 100.0 - chance_error)
    style.legend_outside(axes.flat[-1])
    fig.suptitle("accuracy on clean and corrupted training samples, and on the test set" + style.over_seeds(ctx.runs))
    return style.save(fig, ctx.path("s3_split_accuracy_vs_corruption"))


def split_accuracy_vs_epoch(ctx: Context):
    """Train accuracy on clean vs corrupted samples per epoch, one line per corruption level."""
    ctx.need_history("epoch", "split_acc.train_clean", "split_acc.train_corrupted")
    curves = style.join_history(ctx.history, ctx.runs, ["corruption_level", "model.name"])
    curves = curves[curves["corruption_level"] > 0]  # clean runs have no corrupted samples to split
    if curves.empty:
        raise Skip("no corrupted runs with per-epoch split accuracy")
    curves = curves.assign(p=curves["corruption_level"].map(lambda v: f"p = {v:g}"))
    long = pd.concat([curves.assign(accuracy=style.display_values(curves, key), part=PARTS[key])
                      for key in ("split_acc.train_clean", "split_acc.train_corrupted")], ignore_index=True)
    panels = style.facets(long, "model.name")
    fig, axes = style.new_figure(len(panels), width=5.0, height=3.6, sharey=True)
    for ax, (title, rows) in zip(axes.flat, panels):
        order = sorted(rows["p"].unique(), key=lambda s: float(s.split("=")[1]))
        sns.lineplot(rows, x="epoch", y="accuracy", hue="p", hue_order=order, style="part",
                     errorbar=style.BAND, ax=ax, legend=ax is axes.flat[-1])
        ax.set(xlabel=style.label("epoch"), ylabel="train accuracy (%)", title=title, ylim=(-3, 103))
    style.legend_outside(axes.flat[-1])
    fig.suptitle("train accuracy per epoch, clean and corrupted samples" + style.over_seeds(ctx.runs))
    return style.save(fig, ctx.path("s3_split_accuracy_vs_epoch"))


FIGURES = {"s3": [split_accuracy_vs_corruption, split_accuracy_vs_epoch]}
