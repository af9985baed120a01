"""Double descent (Belkin et al. 2019, Fig. 3; Nakkiran et al. 2019, Figs. 1, 2 and 9).

Figures: test error and training loss against the parameter count (log axis), one line per
label-noise level, the interpolation threshold n·K dashed and chance dotted, each curve's peak
marked (analysis.double_descent locates it); test error and training loss against the epoch (log
axis) for one fixed network, one line per noise level.
"""
import matplotlib.ticker
import pandas as pd

from analysis import double_descent as dd
from analysis.figures import style
from analysis.figures.common import Context, Skip


def error_vs_parameters(ctx: Context):
    """Test error and training loss vs parameter count, n·K marked, one line per label noise (Belkin Fig. 3)."""
    ctx.need(dd.PARAMS, dd.TEST_ERROR, dd.TRAIN_LOSS)
    if ctx.runs[dd.PARAMS].nunique() < 3:
        raise Skip("fewer than 3 parameter counts: no curve to find a peak on")
    curves, n_k = dd.modelwise_curves(ctx.runs), dd.threshold(ctx.runs)
    fig, axes = style.new_figure(2, width=5.0, height=3.8)
    error_ax, loss_ax = axes[0]
    for index, (noise, curve) in enumerate(curves.groupby(dd.NOISE, sort=True)):
        color, name = f"C{index}", _noise_name(noise)
        error = 100 * curve["test_error"]
        error_ax.plot(curve[dd.PARAMS], error, marker="o", markersize=3.5, color=color, label=name)
        if curve["seeds"].max() > 1:
            spread = 100 * curve["test_error_sd"].fillna(0)
            error_ax.fill_between(curve[dd.PARAMS], error - spread, error + spread, color=color, alpha=0.2, lw=0)
        loss_ax.plot(curve[dd.PARAMS], curve["train_loss"], marker="o", markersize=3.5, color=color, label=name)
        peak = dd.find_peak(curve[dd.PARAMS], curve["test_error"])
        if peak["peak_x"] is not None:
            error_ax.plot([peak["peak_x"]], [100 * peak["peak_y"]], marker="v", markersize=9, color=color,
                          markeredgecolor="black", linestyle="none", zorder=5)
    for ax in (error_ax, loss_ax):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("parameters (log scale)")
        _mark_threshold(ax, n_k)
    _draw_chance(error_ax, style.chance_error(ctx.runs), 100 * curves["test_error"].max())
    error_ax.set(ylabel=style.label(dd.TEST_ERROR), title="test error (▼: peak)")
    loss_ax.set_yscale("log")
    loss_ax.set(ylabel=f"training loss ({_loss_name(ctx.runs)}, log scale)", title="training loss")
    loss_ax.legend()
    style.legend_outside(loss_ax, title="label noise")
    fig.suptitle("model-wise double descent" + style.over_seeds(ctx.runs))
    return style.save(fig, ctx.path("double_descent_vs_parameters"))


def error_vs_epoch(ctx: Context):
    """Test error and training loss vs epoch (log axis) of one network (a width sweep's widest), one line per
    label noise (Nakkiran Fig. 9)."""
    ctx.need_history("epoch", "test_acc", "train_loss")
    curves = dd.epochwise_curves(ctx.runs, ctx.history)
    if curves["epoch"].nunique() < 3:
        raise Skip("fewer than 3 evaluated epochs: no curve over epochs")
    fig, axes = style.new_figure(2, width=5.0, height=3.8)
    error_ax, loss_ax = axes[0]
    for index, (noise, curve) in enumerate(curves.groupby(dd.NOISE, sort=True)):
        color, name = f"C{index}", _noise_name(noise)
        error_ax.plot(curve["epoch"], 100 * curve["test_error"], color=color, label=name)
        loss_ax.plot(curve["epoch"], curve["train_loss"], color=color, label=name)
        peak = dd.find_peak(curve["epoch"], curve["test_error"])
        if peak["peak_x"] is not None:
            error_ax.plot([peak["peak_x"]], [100 * peak["peak_y"]], marker="v", markersize=9, color=color,
                          markeredgecolor="black", linestyle="none", zorder=5)
    for ax in (error_ax, loss_ax):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("epoch (log scale)")
    _draw_chance(error_ax, style.chance_error(ctx.runs), 100 * curves["test_error"].max())
    error_ax.set(ylabel=style.label(dd.TEST_ERROR), title="test error (▼: peak)")
    loss_ax.set_yscale("log")
    loss_ax.set(ylabel=f"training loss ({_loss_name(ctx.runs)}, log scale)", title="training loss")
    loss_ax.legend()
    style.legend_outside(loss_ax, title="label noise")
    fig.suptitle(f"epoch-wise double descent: {_networks(dd.widest(ctx.runs))}" + style.over_seeds(ctx.runs))
    return style.save(fig, ctx.path("double_descent_vs_epoch"))


FIGURES = {"double_descent": [error_vs_parameters, error_vs_epoch], "double_descent_epochwise": [error_vs_epoch]}


def _draw_chance(ax, chance: float | None, highest: float) -> None:
    """Chance as a line where the curves come near it; far above them (a peak of a few points under a
    chance of 90 %), as a note at the top, so the axis stays on the curves."""
    if chance is not None and chance <= 2 * highest:
        style.draw_chance(ax, chance)
        ax.set_ylim(0, None)
        return
    ax.set_ylim(0, 1.25 * highest)
    if chance is not None:
        ax.annotate(f"chance: {chance:g} % (above the axis)", xy=(0.98, 0.97), xycoords="axes fraction",
                    ha="right", va="top", fontsize="small", color="0.35")


def _mark_threshold(ax, n_k: float | None) -> None:
    if n_k is None:
        return
    ax.axvline(n_k, color="0.3", linestyle="--", linewidth=1.1, zorder=0)
    ax.annotate(f"n·K = {n_k:,.0f}", xy=(n_k, 0.0), xycoords=("data", "axes fraction"), xytext=(3, 4),
                textcoords="offset points", fontsize="small", color="0.3")


def _noise_name(noise: float) -> str:
    return f"{100 * noise:g}%"


def _loss_name(runs: pd.DataFrame) -> str:
    losses = runs[dd.LOSS].dropna().unique() if dd.LOSS in runs else []
    return {"squared": "squared", "cross_entropy": "cross-entropy"}.get(losses[0], losses[0]) \
        if len(losses) == 1 else "mixed losses"


def _networks(runs: pd.DataFrame) -> str:
    params = runs[dd.PARAMS].dropna().unique() if dd.PARAMS in runs else []
    if len(params) != 1:
        return f"{len(params)} networks"
    width = runs[dd.WIDTH].iloc[0] if dd.WIDTH in runs else None
    return (f"H = {width:g}, " if width is not None and pd.notna(width) else "") + f"{int(params[0]):,} parameters"

