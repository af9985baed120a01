"""The figures of each study, chosen by the sweep's preset name or by which config keys vary.

One module per study (s1_capacity … s5_trajectory) lists its figure functions; each takes a
``Context`` and returns the PNG it wrote, or raises ``Skip`` saying what the data lacks.
"""
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import double_descent as dd
from analysis.figures import dr_certified, double_descent, epochs, s1_capacity, s2_randomization, s3_corruption
from analysis.figures import s4_sharpness, s5_trajectory, style
from analysis.figures.common import Context, Skip

log = logging.getLogger("analysis")

FIGURES = {**s1_capacity.FIGURES, **s2_randomization.FIGURES, **s3_corruption.FIGURES, **s4_sharpness.FIGURES,
           **s5_trajectory.FIGURES, **epochs.FIGURES, **dr_certified.FIGURES, **double_descent.FIGURES}

STUDY_TITLES = {"s1_width": "S1: capacity vs hidden units (Neyshabur et al. 2017)",
                "s1_size": "S1: capacity vs training-set size (Neyshabur et al. 2017)",
                "s2": "S2: randomization tests (Zhang et al. 2017)",
                "s2_bn": "S2: batch-norm ablation (Zhang et al. 2017)",
                "s3": "S3: fitting clean and corrupted labels",
                "s4": "S4: minimum sharpness and SAM across optimizers",
                "s5": "S5: the first-layer bias trajectory (Loukas et al. 2021)",
                "epochs": "Measures along training (trainer.save_epochs)",
                "dr": "Certified PAC-Bayes bounds (Dziugaite & Roy 2017)",
                "double_descent": "Double descent, model-wise (Belkin et al. 2019; Nakkiran et al. 2019)",
                "double_descent_epochwise": "Double descent, epoch-wise (Nakkiran et al. 2019)"}

# The study presets (conf/experiment/) and the figures each reproduces.
PRESET_STUDIES = {
    "quickstart": ["s1_width"], "neyshabur_width": ["s1_width"], "neyshabur_size": ["s1_size"],
    "zhang_randomization": ["s2"], "zhang_label_noise": ["s2", "s3"], "zhang_bn_ablation": ["s2_bn"],
    "sharpness_optimizers": ["s4"], "steady_sinusoid": ["s5"], "steady_cnn": ["s5"], "jiang_grid": [],
    "dziugaite_roy": ["dr"],
    dd.MODELWISE_PRESET: ["double_descent"], dd.EPOCHWISE_PRESET: ["double_descent_epochwise"],
}


@dataclass
class Drawn:
    study: str
    name: str              # the figure function's name
    caption: str           # its docstring's first line
    path: Path | None      # None when skipped
    skipped: str = ""      # why, when skipped


def detect_studies(runs: pd.DataFrame, history: pd.DataFrame) -> list[str]:
    """The preset's studies when the sweep names one; otherwise inferred from what varies."""
    names = set()
    for key in ("experiment", "name"):
        if key in runs:
            names |= set(runs[key].dropna().astype(str))
    known = [study for name in sorted(names) for study in PRESET_STUDIES.get(name, [])]
    if any(name in PRESET_STUDIES for name in names):
        return list(dict.fromkeys(known))
    return infer_studies(runs, history)


def infer_studies(runs: pd.DataFrame, history: pd.DataFrame) -> list[str]:
    table = style.with_derived_columns(runs)
    if dd.modelwise_applies(table):  # Belkin's sweep: squared loss, widths on both sides of n·K
        return ["double_descent"]
    if dd.epochwise_applies(table):
        return ["double_descent_epochwise"]
    studies = []
    if style.varies(table, "model.hidden_units"):
        studies.append("s1_width")
    if style.varies(table, "dataset.train_size") or style.varies(table, "data.train_size"):
        studies.append("s1_size")
    if style.varies(table, "dataset.f") or "bias_trajectory_epoch" in history:
        studies.append("s5")
    elif style.varies(table, "labels") or style.varies(table, "corruption_level"):
        studies.append("s2")
        if "split_acc.train_clean" in table:
            studies.append("s3")
    if style.varies(table, "batch_norm") and "s2" not in studies:
        studies.append("s2_bn")
    if style.varies(table, "optimizer.name") or style.varies(table, "optimizer.sam.enabled"):
        studies.append("s4")
    return studies


def draw_figures(runs: pd.DataFrame, history: pd.DataFrame, out_dir: Path,
                 studies: list[str] | None = None) -> list[Drawn]:
    """Draw every figure of ``studies`` (default: detected) into ``out_dir``; report what was skipped."""
    if runs.empty:
        return []
    if studies is None:
        studies = detect_studies(runs, history)
        if any(c.startswith("measures.") for c in history.columns):  # weights kept along training were measured
            studies.append("epochs")
    ctx = Context(style.with_derived_columns(runs), history, Path(out_dir))
    drawn = []
    for study in studies:
        for figure in FIGURES.get(study, []):
            caption = (figure.__doc__ or figure.__name__).strip().splitlines()[0]
            try:
                drawn.append(Drawn(study, figure.__name__, caption, figure(ctx)))
            except Skip as reason:
                log.info("figure %s skipped: %s", figure.__name__, reason)
                drawn.append(Drawn(study, figure.__name__, caption, None, str(reason)))
            except Exception as error:  # one bad figure must not cost the others, or the report
                log.warning("figure %s failed: %s: %s", figure.__name__, type(error).__name__, error)
                drawn.append(Drawn(study, figure.__name__, caption, None, f"failed: {type(error).__name__}: {error}"))
    return drawn
