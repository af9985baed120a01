"""``plot --x KEY --y KEY [--hue KEY] [--col KEY]``: any column against any other.

Keys are run-table columns (``model.hidden_units``, ``final.test_error``, ``measures.l2``) or history
columns (``epoch``, ``train_loss``); with a history key on either axis, each run draws its curve.
Seeds (runs that differ only in ``seed``) are aggregated: mean and a ± sd band for a numeric x, bars
with ± sd for a categorical x.
"""
import re
from pathlib import Path

import pandas as pd
import seaborn as sns

from analysis.figures import style
from analysis.figures.common import Context, Skip


def draw(ctx: Context, x: str, y: str, hue: str | None = None, col: str | None = None,
         logx: bool | None = None, logy: bool | None = None) -> Path:
    data = _data(ctx, [k for k in (x, y, hue, col) if k])
    data = data.assign(_y=style.display_values(data, y)).dropna(subset=["_y"])
    if data.empty:
        raise Skip(f"no runs with a value for {y}")
    numeric_x = pd.api.types.is_numeric_dtype(data[x]) and not pd.api.types.is_bool_dtype(data[x])
    panels = style.facets(data, col)
    fig, axes = style.new_figure(len(panels), width=4.8, height=3.6, sharey=True)
    for ax, (title, rows) in zip(axes.flat, panels):
        legend = ax is axes.flat[-1]
        if numeric_x:
            rows = rows.assign(_x=style.display_values(rows, x))
            sns.lineplot(rows, x="_x", y="_y", hue=hue, marker="o" if x not in ctx.history else None,
                         errorbar=style.BAND, ax=ax, legend=legend)
            if logx or (logx is None and style.log_axis_wanted(x, rows["_x"])):
                ax.set_xscale("log", base=2 if x == "model.hidden_units" else 10)
        else:
            sns.barplot(rows, x=x, y="_y", hue=hue, errorbar=style.BAND, ax=ax, legend=legend)
        if logy or (logy is None and style.log_axis_wanted(y, rows["_y"])):
            ax.set_yscale("log")
        ax.set(xlabel=style.label(x), ylabel=style.label(y), title=title)
        style.draw_chance(ax, style.chance_level(rows, y), over_bars=not numeric_x)
    style.legend_outside(axes.flat[-1], title=style.label(hue) if hue else None)
    if style.over_seeds(data):
        fig.suptitle(f"{style.label(y)} vs {style.label(x)}{style.over_seeds(data)}")
    return style.save(fig, ctx.path(file_name(x, y, hue, col)))


def file_name(x: str, y: str, hue: str | None, col: str | None) -> str:
    parts = [y, "vs", x] + (["by", hue] if hue else []) + (["per", col] if col else [])
    return "plot_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(parts))


def _data(ctx: Context, keys: list[str]) -> pd.DataFrame:
    """The run table, or history rows joined with run columns when a key lives in the history."""
    unknown = [k for k in keys if k not in ctx.runs and k not in ctx.history]
    if unknown:
        known = sorted(set(ctx.runs.columns) | set(ctx.history.columns))
        raise Skip(f"unknown column {', '.join(unknown)}; columns: {', '.join(known)}")
    if any(k not in ctx.runs for k in keys):
        return style.join_history(ctx.history, ctx.runs, [k for k in keys if k in ctx.runs])
    return ctx.runs
