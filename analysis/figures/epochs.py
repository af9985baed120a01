"""Measures along training: every measure against epoch, on the weights a run kept at
``trainer.save_epochs`` and its final ones (the history's ``measures.*`` columns, analysis.collect).

One panel per measure, one line per value of the swept axis (mean ± sd over seeds); any single measure
is also ``python -m analysis plot SWEEP_DIR --x epoch --y measures.NAME``.
"""
import math

import seaborn as sns

from analysis.figures import style
from analysis.figures.common import Context, Skip

MOST_PANELS = 12


def measures_vs_epoch(ctx: Context):
    """Each measure against epoch, on the weights kept along training (trainer.save_epochs)."""
    names = [c for c in style.measure_columns(ctx.history) if c in ctx.history]
    if not names:
        raise Skip("no measures along training (trainer.save_epochs keeps weights to measure)")
    names = names[:MOST_PANELS]
    hue = next((c for c in ("model.hidden_units", "dataset.train_size", "corruption_level", "optimizer.name")
                if style.varies(ctx.runs, c)), None)
    curves = style.join_history(ctx.history, ctx.runs, [hue] if hue else [])
    cols = min(4, len(names))
    fig, axes = style.new_figure(cols, math.ceil(len(names) / cols), width=3.6, height=3.0)
    for ax, name in zip(axes.flat, names):
        rows = curves.dropna(subset=[name])
        sns.lineplot(rows, x="epoch", y=name, hue=hue, marker="o", errorbar=style.BAND, ax=ax,
                     legend=ax is axes.flat[0], palette="viridis" if hue else None)
        if style.log_axis_wanted(name, rows[name]):
            ax.set_yscale("log")
        ax.set(xlabel=style.label("epoch"), ylabel="", title=style.label(name))
    style.hide_unused(axes, len(names))
    if hue:
        style.legend_outside(axes.flat[0], title=style.label(hue))
    fig.suptitle("measures along training" + style.over_seeds(ctx.runs))
    fig.tight_layout()
    return style.save(fig, ctx.path("measures_vs_epoch"))


FIGURES = {"epochs": [measures_vs_epoch]}
