"""Double descent (Belkin et al. 2019; Nakkiran et al. 2019): where a sweep's test-error peak falls.

Model-wise: the final test error of each width, averaged over seeds, against the parameter count,
one curve per label-noise level, beside the interpolation threshold n·K (training samples × classes:
the parameter count at which a network can first fit every output of every sample; Belkin's dashed
line).  Epoch-wise: the test error against the epoch, averaged over seeds, of the sweep's network (of
its widest one in a model-wise sweep).

A *peak* is the highest point of a curve to the right of its first local minimum, where the curve
falls again after it: the classical U-curve's bottom comes first, then the error climbs to the peak,
then the second descent.  A curve that never rises again after its first minimum, or that is still
rising at its last point (no second descent seen), has no peak (None), and the table says so.

Written (``double_descent.csv``, ``double_descent_epochwise.csv`` and a section of the report) when
the sweep is a double-descent sweep (:func:`modelwise_applies`, :func:`epochwise_applies`); a model-wise
sweep gets both.
"""
from pathlib import Path

import pandas as pd

PARAMS, TEST_ERROR, TRAIN_LOSS = "model.num_params", "final.test_error", "final.train_loss"
NOISE, LOSS, WIDTH = "corruption_level", "trainer.loss", "model.hidden_units"
MODELWISE_PRESET, EPOCHWISE_PRESET = "double_descent_modelwise", "double_descent_epochwise"
MODELWISE_FILE, EPOCHWISE_FILE = "double_descent.csv", "double_descent_epochwise.csv"


def threshold(runs: pd.DataFrame) -> float | None:
    """n·K of the runs (the record's ``data.interpolation_threshold``, else train size × classes), or
    None when the runs do not share one (regression, or several data sets)."""
    if "data.interpolation_threshold" in runs and runs["data.interpolation_threshold"].notna().all():
        values = runs["data.interpolation_threshold"]
    elif {"data.train_size", "data.num_classes"} <= set(runs):
        values = runs["data.train_size"] * runs["data.num_classes"]
    else:
        return None
    values = pd.to_numeric(values, errors="coerce").dropna().unique()
    return float(values[0]) if len(values) == 1 and values[0] > 0 else None


def named_preset(runs: pd.DataFrame, preset: str) -> bool:
    return any(key in runs and (runs[key].astype(str) == preset).any() for key in ("experiment", "name"))


def modelwise_applies(runs: pd.DataFrame) -> bool:
    """The preset, or squared-loss runs whose parameter counts lie on both sides of n·K (Belkin's sweep)."""
    if not len(runs) or PARAMS not in runs or TEST_ERROR not in runs:
        return False
    if named_preset(runs, MODELWISE_PRESET):
        return True
    n_k = threshold(runs)
    squared = LOSS in runs and (runs[LOSS] == "squared").all()
    return bool(squared and n_k is not None and runs[PARAMS].min() < n_k < runs[PARAMS].max())


def epochwise_applies(runs: pd.DataFrame) -> bool:
    """The preset, or squared-loss runs of one width (Nakkiran's epoch-wise sweep)."""
    if not len(runs):
        return False
    if named_preset(runs, EPOCHWISE_PRESET):
        return True
    squared = LOSS in runs and (runs[LOSS] == "squared").all()
    return bool(squared and PARAMS in runs and runs[PARAMS].nunique() == 1)


def modelwise_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per noise level × parameter count: mean and sd over seeds of the final test error and train loss."""
    grouped = runs.groupby([NOISE, PARAMS], sort=True)
    curves = grouped.agg(test_error=(TEST_ERROR, "mean"), test_error_sd=(TEST_ERROR, "std"),
                         train_loss=(TRAIN_LOSS, "mean"), seeds=(TEST_ERROR, "count")).reset_index()
    if WIDTH in runs:
        widths = grouped[WIDTH].first().reset_index(drop=True)
        curves.insert(2, WIDTH, widths.values)
    return curves


def find_peak(x: pd.Series, y: pd.Series) -> dict:
    """The peak of the curve y(x) (x ascending): the highest point after its first local minimum, if
    the curve falls again after it.

    Returns the first minimum, the peak and the last point (each x and y); ``peak_x`` is None when
    the curve never rises again after its first minimum or is highest at its last point."""
    x, y = list(x), list(y)
    first_min = next((i for i in range(len(y)) if i == len(y) - 1 or y[i + 1] > y[i]), len(y) - 1)
    after = range(first_min + 1, len(y))
    peak = max(after, key=lambda i: y[i], default=None)
    if peak is not None and (y[peak] <= y[first_min] or y[-1] >= y[peak]):
        peak = None
    return {"min_x": x[first_min], "min_y": y[first_min],
            "peak_x": x[peak] if peak is not None else None, "peak_y": y[peak] if peak is not None else None,
            "last_x": x[-1], "last_y": y[-1]}


def modelwise_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per noise level: the classical minimum, the peak (its parameter count, × n·K, width, test error)
    and the widest network's test error; errors in %."""
    curves, n_k = modelwise_curves(runs), threshold(runs)
    rows = []
    for noise, curve in curves.groupby(NOISE, sort=True):
        found = find_peak(curve[PARAMS], curve["test_error"])
        peak_row = curve[curve[PARAMS] == found["peak_x"]]
        rows.append({
            "label_noise": noise, "threshold_n_k": n_k,
            "min_params": found["min_x"], "min_test_error_%": 100 * found["min_y"],
            "peak_params": found["peak_x"],
            "peak_over_threshold": found["peak_x"] / n_k if found["peak_x"] is not None and n_k else None,
            "peak_width": peak_row[WIDTH].iloc[0] if WIDTH in curve and len(peak_row) else None,
            "peak_test_error_%": 100 * found["peak_y"] if found["peak_y"] is not None else None,
            "peak_train_loss": peak_row["train_loss"].iloc[0] if len(peak_row) else None,
            "widest_params": found["last_x"], "widest_test_error_%": 100 * found["last_y"],
            "seeds": int(curve["seeds"].max()),
        })
    return pd.DataFrame(rows).round(4)


def widest(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the largest network: the epoch-wise view of a sweep over widths (Nakkiran's Fig. 2 slice)."""
    if PARAMS not in runs or runs[PARAMS].nunique() <= 1:
        return runs
    return runs[runs[PARAMS] == runs[PARAMS].max()]


def epochwise_curves(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """One row per noise level × evaluated epoch (after epoch 0) of the widest network's runs: mean test
    error and train loss over seeds."""
    rows = history.merge(widest(runs)[["run_id", NOISE]], on="run_id")
    rows = rows[rows["epoch"] > 0].assign(test_error=lambda t: 1 - t["test_acc"])
    return rows.groupby([NOISE, "epoch"], sort=True).agg(
        test_error=("test_error", "mean"), train_loss=("train_loss", "mean"),
        seeds=("test_error", "count")).reset_index()


def epochwise_table(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Per noise level: the epoch and test error (%) of the widest network's first minimum, its peak and its
    last evaluation."""
    rows = []
    for noise, curve in epochwise_curves(runs, history).groupby(NOISE, sort=True):
        found = find_peak(curve["epoch"], curve["test_error"])
        rows.append({"label_noise": noise, "min_epoch": found["min_x"], "min_test_error_%": 100 * found["min_y"],
                     "peak_epoch": found["peak_x"],
                     "peak_test_error_%": 100 * found["peak_y"] if found["peak_y"] is not None else None,
                     "last_epoch": found["last_x"], "last_test_error_%": 100 * found["last_y"],
                     "seeds": int(curve["seeds"].max())})
    return pd.DataFrame(rows).round(4)


def write(runs: pd.DataFrame, history: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The tables that apply, in ``out_dir``; the files written."""
    from analysis.figures.style import with_derived_columns
    runs = with_derived_columns(runs)
    written = []
    if modelwise_applies(runs):
        written.append(Path(out_dir) / MODELWISE_FILE)
        modelwise_table(runs).to_csv(written[-1], index=False)
    if (epochwise_applies(runs) or modelwise_applies(runs)) and "epoch" in history:
        written.append(Path(out_dir) / EPOCHWISE_FILE)
        epochwise_table(runs, history).to_csv(written[-1], index=False)
    return written
