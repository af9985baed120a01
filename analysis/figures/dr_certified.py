"""Dziugaite & Roy 2017 (certified PAC-Bayes bounds): the errors and the certificate of each run, side by side.

Figure: per run (true and random labels), the deterministic network's train and test error, the stochastic
network's train error, its Monte-Carlo upper bound (δ′), its test error, and the certified bound on its error.
"""
import numpy as np

from analysis.figures import style
from analysis.figures.common import Context, Skip

BARS = [("final.train_error", "train error"), ("final.test_error", "test error"),
        ("measures.certified_stochastic_train_error", "SNN train error"),
        ("measures.certified_stochastic_train_error_bound", "SNN train error bound (δ′)"),
        ("measures.certified_stochastic_test_error", "SNN test error"),
        ("measures.certified_bound", "certified bound")]


def certified_errors(ctx: Context):
    """Errors of the network and of its stochastic twin, and the certified bound, per run (Dziugaite & Roy)."""
    ctx.need("measures.certified_bound")
    runs = ctx.runs.sort_values("corruption_level")
    keys = [(key, name) for key, name in BARS if key in runs]
    if not keys:
        raise Skip("no errors recorded")
    fig, axes = style.new_figure(width=6.5, height=4.0)
    ax = axes[0, 0]
    width = 0.8 / len(keys)
    positions = np.arange(len(runs))
    for i, (key, name) in enumerate(keys):
        values = runs[key].astype(float).to_numpy()
        bars = ax.bar(positions + (i - (len(keys) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize="x-small", rotation=90, padding=2)
    ax.set_xticks(positions, [f"{label}\n(m = {int(m)})" if np.isfinite(m) else label
                              for label, m in zip(runs["labels"], runs.get("data.train_size", np.nan))])
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set(ylabel="error (0-1)", ylim=(0, 1.25), title="certified PAC-Bayes bound (Dziugaite & Roy 2017)")
    ax.legend()
    style.legend_outside(ax)
    return style.save(fig, ctx.path("dr_certified_errors"))


FIGURES = {"dr": [certified_errors]}
