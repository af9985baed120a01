"""Identical networks counted once.

Two runs can end with the same network under two configs: ``corruption=random_labels`` and
``corruption=labels corruption.prob=1.0`` draw the same labels, and the same config launched in two sweeps
trains twice.  A ranking that keeps both counts one network twice and its exact ties inflate the pair-based
scores (CMI, sign-error).  The twins are found

- by ``weights_sha256`` (gen/fingerprint.py) where both runs' records hold it: equal fingerprints;
- otherwise by their results, which do not depend on the config's names: two runs are twins when every
  ``final.*``, ``measures.*``, ``interpolation.*`` (less its seconds), ``split_acc.*`` value, the training-set
  size and the parameter count are equal (NaN equal to NaN), and, where the history was collected, every
  evaluation's losses and accuracies too.  Training losses agree to the last bit only when the networks do.

The first run of each set of twins (in the runs' order) is kept; the others are dropped and named.
"""
import numpy as np
import pandas as pd

FINGERPRINT = "weights_sha256"
RESULT_PREFIXES = ("final.", "measures.", "interpolation.", "split_acc.")
RESULT_COLUMNS = ("data.train_size", "data.test_size", "model.num_params")
NOT_RESULTS = ("interpolation.seconds",)  # wall time: differs between identical networks
HISTORY_COLUMNS = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc")


def find(runs: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per dropped run: ``run_id`` (dropped), ``same_as`` (kept), ``by`` (fingerprint | results)."""
    keys = _keys(runs, history)
    rows, first = [], {}
    for position, key in enumerate(keys):
        if key is None:
            continue
        if key in first:
            rows.append({"run_id": _run_id(runs, position), "same_as": _run_id(runs, first[key]),
                         "by": "fingerprint" if key[0] == FINGERPRINT else "results"})
        else:
            first[key] = position
    return pd.DataFrame(rows, columns=["run_id", "same_as", "by"])


def drop(runs: pd.DataFrame, history: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs`` without its twins (index reset), and :func:`find`'s table of what was dropped."""
    twins = find(runs, history)
    if not len(twins):
        return runs, twins
    ids = runs["run_id"].astype(str) if "run_id" in runs else pd.Series(map(str, range(len(runs))))
    kept = ~ids.isin(set(twins["run_id"])).to_numpy()
    return runs.loc[kept].reset_index(drop=True), twins


def _run_id(runs: pd.DataFrame, position: int) -> str:
    return str(runs["run_id"].iloc[position]) if "run_id" in runs else str(position)


def _keys(runs: pd.DataFrame, history: pd.DataFrame | None) -> list[tuple | None]:
    fingerprints = runs[FINGERPRINT] if FINGERPRINT in runs else pd.Series([None] * len(runs), index=runs.index)
    columns = [c for c in runs.columns if (c.startswith(RESULT_PREFIXES) or c in RESULT_COLUMNS)
               and c not in NOT_RESULTS]
    histories = _histories(runs, history)
    keys = []
    for position, (_, row) in enumerate(runs.iterrows()):
        fingerprint = fingerprints.iloc[position]
        if isinstance(fingerprint, str) and fingerprint:
            keys.append((FINGERPRINT, fingerprint))
            continue
        losses = [row[c] for c in ("final.train_loss", "final.test_loss") if c in row]
        if not losses or any(pd.isna(v) for v in losses):
            keys.append(None)  # too little recorded to tell two networks apart
            continue
        keys.append(("results", tuple(_exact(row[c]) for c in columns), histories.get(position)))
    return keys


def _exact(value) -> str:
    """A value as text that tells apart any two distinct floats and makes NaN equal to NaN."""
    if isinstance(value, (float, np.floating)):
        return "nan" if np.isnan(value) else float(value).hex()
    return repr(value)


def _histories(runs: pd.DataFrame, history: pd.DataFrame | None) -> dict[int, tuple]:
    if history is None or not len(history) or "run_id" not in history or "run_id" not in runs:
        return {}
    columns = [c for c in HISTORY_COLUMNS if c in history]
    by_run = {run_id: tuple(tuple(_exact(v) for v in row) for row in rows[columns].itertuples(index=False))
              for run_id, rows in history.groupby("run_id", sort=False)}
    return {position: by_run.get(run_id) for position, run_id in enumerate(runs["run_id"])}
