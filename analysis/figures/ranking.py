"""The ranking of measures drawn: τ, Ψ, CMI and sign-error per measure (J/PGDL/D's tables as bars),
and the distribution of sign-errors over environments per hyperparameter (D).

Everything is drawn from the ranking's table, the rows rank.csv holds (τ's interval included).  Measures
that order the runs identically (``same_order_as``) share one row, labelled with every name: their scores
are equal by construction.  Where every environment holds one pair of runs (one seed), the worst
sign-error can only be 0 or 1; that panel then draws the mean and says why."""
from pathlib import Path

import numpy as np
import seaborn as sns

from analysis.figures import style
from analysis.rank import Ranking

SCORES = {"kendall_tau": ("Kendall τ", (-1, 1)), "psi": ("granulated Ψ", (-1, 1)),
          "cmi": ("conditional MI (J/PGDL)", (0, 1)), "sign_error_max": ("robust sign-error, worst (D)", (0, 1))}


def draw_ranking(ranking: Ranking, out_dir: Path) -> list[Path]:
    if not len(ranking.table):
        return []
    paths = [_scores(ranking, out_dir / "rank.png")]
    if len(ranking.sign_errors):
        paths.append(_sign_errors(ranking, out_dir / "rank_sign_errors.png"))
    return paths


def _scores(ranking: Ranking, path: Path) -> Path:
    table = grouped_rows(ranking.table)
    labels = list(table["label"])
    y = np.arange(len(table))
    single_pair = "pairs_per_environment_max" in table and table["pairs_per_environment_max"].max() <= 1
    scores = dict(SCORES)
    if single_pair:
        scores["sign_error_mean"] = ("robust sign-error, mean (D)", (0, 1))
        del scores["sign_error_max"]
    fig, axes = style.new_figure(len(scores), width=3.0, height=1.6 + 0.42 * len(table), sharey=True)
    for ax, (key, (title, limits)) in zip(axes.flat, scores.items()):
        values = table[key].astype(float).to_numpy()
        ax.set(xlim=limits, title=title, yticks=y, yticklabels=labels)
        if key == "kendall_tau" and "tau_low" in table:
            title += "\n(line: 95% interval)"
            low, high = table["tau_low"].astype(float), table["tau_high"].astype(float)
            ax.hlines(y, low, high, color="0.15", linewidth=1.2, zorder=3)
        if key == "cmi":
            title = CMI_TITLE[ranking.definitions.cmi]
        if np.isnan(values).all():
            _no_data(ax, NO_DATA.get(key, "not defined for these runs"))
            ax.set_title(title)
            continue
        ax.barh(y, np.nan_to_num(values), color=["C0" if v >= 0 else "C3" for v in np.nan_to_num(values)])
        ends = values
        if key == "kendall_tau" and "tau_low" in table:  # the number goes past τ's interval, not over it
            ends = np.where(values >= 0, table["tau_high"].astype(float), table["tau_low"].astype(float))
            ends = np.where(np.isnan(ends), values, ends)
        for yi, v, end in zip(y, values, ends):
            _annotate(ax, yi, v, limits, end)
        if key == "sign_error_max" and "sign_error_mean" in table:
            ax.plot(table["sign_error_mean"].astype(float), y, "k|", markersize=14)
            title += "\n(bar: worst environment, |: mean)"
        if key == "sign_error_mean":
            title += ("\none pair per environment (one seed):\nthe worst is 0 or 1, so not drawn")
        ax.axvline(0, color="0.3", linewidth=0.8)
        ax.set_title(title)
    axes.flat[0].invert_yaxis()  # shared y: the best measure on top in every panel
    axes.flat[0].set_ylabel("measure (sorted by |τ|; = : same order of the runs)")
    definitions = ", ".join(f"{k} {v}" for k, v in vars(ranking.definitions).items())
    fig.suptitle(f"measures vs the generalization gap ({ranking.gap}) over {int(table['runs'].max())} runs"
                 f"\n(definitions: {definitions})")
    return style.save(fig, path)


CMI_TITLE = {"jiang": "conditional MI (Jiang et al.)", "pgdl": "conditional MI (PGDL scorer)"}


def grouped_rows(table):
    """One row per group of measures that order the runs identically, labelled with all their names."""
    table = table.copy()
    names = table["measure"].map(lambda m: style.label(f"measures.{m}"))
    leader = table["same_order_as"] if "same_order_as" in table else table["measure"]
    members = names.groupby(leader.to_numpy()).agg(list)
    table["label"] = [" = ".join(members[lead]) for lead in leader]
    return table[table["measure"] == leader].reset_index(drop=True)


# Why a score can be missing for every measure of a sweep (analysis/rank.py).
NO_DATA = {"kendall_tau": "needs two runs with different values",
           "psi": "needs runs that differ\nin one swept hyperparameter",
           "cmi": "needs swept hyperparameters",
           "sign_error_max": "needs runs that differ\nin one hyperparameter only",
           "sign_error_mean": "needs runs that differ\nin one hyperparameter only"}


def _no_data(ax, reason: str) -> None:
    """A panel without a value says so instead of showing empty bars."""
    ax.text(0.5, 0.5, f"no data:\n{reason}", transform=ax.transAxes, ha="center", va="center",
            fontsize="small", color="0.35")
    ax.set_xticks([])
    ax.grid(False)


def _annotate(ax, y: float, value: float, limits: tuple, at: float | None = None) -> None:
    """The number at its bar's end (or at ``at``, past a drawn interval): outside where there is room,
    else inside the bar in white."""
    if np.isnan(value):
        ax.text(0, y, " n/a", va="center", ha="left", fontsize="small", color="0.4")
        return
    at = value if at is None else at
    end = limits[1] if value >= 0 else limits[0]
    room = abs(at) < 0.75 * abs(end) if end else True
    outward = "left" if value >= 0 else "right"
    ha = outward if room else {"left": "right", "right": "left"}[outward]
    x = at if room else value
    ax.text(x, y, f" {value:.2f} ", va="center", ha=ha, fontsize="small", color="0.1" if room else "white", zorder=4)


def _sign_errors(ranking: Ranking, path: Path) -> Path:
    errors = ranking.sign_errors.assign(
        measure_label=lambda t: t["measure"].map(lambda m: style.label(f"measures.{m}")))
    order = [style.label(f"measures.{m}") for m in ranking.table["measure"]
             if m in set(ranking.sign_errors["measure"])]
    axes_names = list(dict.fromkeys(errors["axis"]))
    fig, axes = style.new_figure(len(axes_names), width=3.6, height=0.9 + 0.32 * len(order), sharey=True)
    for ax, axis in zip(axes.flat, axes_names):
        rows = errors[errors["axis"] == axis]
        sns.boxplot(rows, x="sign_error", y="measure_label", order=order, color="0.85", fliersize=0, ax=ax)
        sns.stripplot(rows, x="sign_error", y="measure_label", order=order, size=3, color="C0", alpha=0.6, ax=ax)
        for position, measure in enumerate(order):  # a blank row would read as a sign-error of 0
            if measure not in set(rows["measure_label"]):
                ax.text(0.5, position, "no data", ha="center", va="center",
                        fontsize="small", color="0.45")
        ax.set(xlim=(-0.05, 1.05), xlabel="sign-error per environment", ylabel="",
               title=f"varying {style.label(axis)}")
    fig.suptitle("robust sign-error distributions (Dziugaite et al. 2020): 0 = always the gap's sign")
    return style.save(fig, path)
