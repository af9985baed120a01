"""Read the finished runs of one or more sweeps into tidy pandas tables.

``runs``: one row per completed run — its config flattened to dotted columns (``model.hidden_units``,
``corruption.name``, ``optimizer.sam.enabled``) and the record's ``final.*``, ``split_acc.*``,
``interpolation.*``, ``measures.*``, ``timing.*``, ``data.*`` blocks.  ``history``: a long table,
``run_id`` plus one history row per evaluation.  Failed, diverged, unfinished and unreadable runs
are kept apart (``folders``) and never enter ``runs``.

Speed: rows are built as plain dicts and turned into a DataFrame once; 10,000 runs take seconds.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gen.sweeps import status as run_status
from gen import record

# metrics.json blocks that become prefixed columns (besides the config, which keeps its own keys)
BLOCKS = ("final", "split_acc", "interpolation", "measures", "timing", "data")
MEASURE_PREFIX = "measures."


@dataclass
class Collection:
    sweeps: list[Path]
    folders: list[run_status.RunFolder]
    runs: pd.DataFrame                     # completed runs only: the results
    diverged: pd.DataFrame                 # diverged runs, same columns: reported, never results
    history: pd.DataFrame                  # run_id + one row per evaluation of a completed run
    config_columns: list[str] = field(default_factory=list)

    @property
    def measure_columns(self) -> list[str]:
        return [c for c in self.runs.columns if c.startswith(MEASURE_PREFIX)]

    def counts(self) -> dict[str, int]:
        return run_status.counts(self.folders)

    def status_table(self) -> pd.DataFrame:
        return pd.DataFrame([{"run_id": f.run_id, "status": f.status, "reason": f.reason,
                              "path": str(f.path), "log": str(f.log) if f.log else ""} for f in self.folders],
                            columns=["run_id", "status", "reason", "path", "log"])

    def sweep_names(self) -> list[str]:
        """The sweeps' ``name`` keys (the preset names), falling back to the folder names."""
        if "name" in self.runs and self.runs["name"].notna().any():
            return sorted(self.runs["name"].dropna().astype(str).unique())
        return [p.resolve().name for p in self.sweeps]


def collect(sweeps: list[Path]) -> Collection:
    sweeps = [Path(s) for s in sweeps]
    folders = run_status.scan(sweeps)
    completed = [f for f in folders if f.status == record.COMPLETED]
    diverged = [f for f in folders if f.status == record.DIVERGED]
    rows, config_columns = [], {}
    for folder in completed:
        rows.append(flat_row(folder, config_columns))
    diverged_rows = [flat_row(f, config_columns) for f in diverged]
    _make_run_ids_unique(rows + diverged_rows)
    runs = _frame(rows)
    history = history_table(completed, [r["run_id"] for r in rows])
    return Collection(sweeps=sweeps, folders=folders, runs=runs, diverged=_frame(diverged_rows),
                      history=with_epoch_measures(history, completed, [r["run_id"] for r in rows]),
                      config_columns=[c for c in config_columns if c in runs.columns])


RESULT_COLUMNS = ("run_id", "status", "experiment", "path", "notes", "model.num_params", "weights_sha256")


def read_runs_tables(paths: list[Path]) -> Collection:
    """The runs of ``runs.csv`` tables that :func:`write_tables` wrote (e.g. the committed reproductions'), as
    a Collection without folders or history: its config columns are every column that is not a result."""
    frames = [pd.read_csv(path) for path in paths]
    for frame, path in zip(frames, paths):  # the same run id in two tables: two rows, as collect() keeps them
        frame["path"] = frame.get("path", pd.Series([str(path)] * len(frame)))
    runs = pd.concat(frames, ignore_index=True) if frames else _frame([])
    config = [c for c in runs.columns if c not in RESULT_COLUMNS and not c.startswith(tuple(f"{b}." for b in BLOCKS))]
    return Collection(sweeps=[Path(p) for p in paths], folders=[], runs=runs, diverged=_frame([]),
                      history=pd.DataFrame(columns=["run_id"]), config_columns=config)


def flat_row(folder: run_status.RunFolder, config_columns: dict) -> dict:
    """One run as a flat dict: identity, the config's dotted keys, then the record's blocks."""
    m = folder.metrics
    row = {"run_id": folder.run_id, "status": m.get("status"),
           "experiment": m.get("experiment"), "path": str(folder.path)}
    config = flatten(m.get("config") or {})
    for key in config:
        config_columns.setdefault(key, None)  # a dict keeps first-seen order, unlike a set
    row.update(config)
    model = m.get("model") or {}
    if "num_params" in model:
        row["model.num_params"] = model["num_params"]
    for block in BLOCKS:
        flatten(m.get(block) or {}, f"{block}.", row)
    if m.get("weights_sha256"):  # absent from records written before it was added
        row["weights_sha256"] = m["weights_sha256"]
    row["notes"] = "; ".join(str(n) for n in m.get("notes") or [])
    return row


def flatten(tree: dict, prefix: str = "", out: dict | None = None) -> dict:
    """Nested dicts → one dict with dotted keys; lists become JSON text so they stay hashable."""
    out = {} if out is None else out
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flatten(value, f"{name}.", out)
        elif isinstance(value, list):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def history_table(folders: list[run_status.RunFolder], run_ids: list[str]) -> pd.DataFrame:
    """All runs' history rows in one frame, built column by column (far faster than row dicts)."""
    columns: dict[str, list] = {"run_id": []}
    total = 0
    for folder, run_id in zip(folders, run_ids):
        rows = folder.metrics.get("history") or []
        if not rows:
            continue
        keys = dict.fromkeys(k for row in rows for k in row)  # ordered union: tracker keys start at epoch 1
        for key in keys:
            if key not in columns:
                columns[key] = [None] * total
            columns[key].extend([row.get(key) for row in rows])
        for key, values in columns.items():
            if key not in keys and key != "run_id":
                values.extend([None] * len(rows))
        columns["run_id"].extend([run_id] * len(rows))
        total += len(rows)
    return pd.DataFrame(columns)


def with_epoch_measures(history: pd.DataFrame, folders: list[run_status.RunFolder],
                        run_ids: list[str]) -> pd.DataFrame:
    """``history`` with ``measures.*`` columns at the epochs whose weights a run kept (trainer.save_epochs,
    metrics.json ``at_epochs``) and at its last epoch (its final measures), so that any measure can be drawn
    against epoch; unchanged for sweeps that kept no epochs."""
    rows = []
    for folder, run_id in zip(folders, run_ids):
        m = folder.metrics
        kept = m.get("at_epochs") or {}
        if not kept:
            continue
        for epoch, block in kept.items():
            rows.append({"run_id": run_id, "epoch": int(epoch),
                         **{f"{MEASURE_PREFIX}{k}": v for k, v in (block.get("measures") or {}).items()}})
        rows.append({"run_id": run_id, "epoch": int(m["final"]["epochs"]),
                     **{f"{MEASURE_PREFIX}{k}": v for k, v in (m.get("measures") or {}).items()}})
    if not rows:
        return history
    measured = pd.DataFrame.from_records(rows).drop_duplicates(["run_id", "epoch"], keep="last")
    return history.merge(measured, on=["run_id", "epoch"], how="outer").sort_values(["run_id", "epoch"],
                                                                                  kind="stable", ignore_index=True)


def _make_run_ids_unique(rows: list[dict]) -> None:
    """The same config in two sweeps has the same run_id: qualify the repeats with their sweep folder."""
    seen = {}
    for row in rows:
        seen[row["run_id"]] = seen.get(row["run_id"], 0) + 1
    for row in rows:
        if seen[row["run_id"]] > 1:
            row["run_id"] = f"{Path(row['path']).parent.name}/{row['run_id']}"


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=["run_id", "status", "path"])


def write_tables(collection: Collection, out_dir: Path) -> list[Path]:
    """runs.csv (+ runs.parquet when pyarrow is installed), history.csv, status.csv, diverged.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    runs_csv = out_dir / "runs.csv"
    collection.runs.to_csv(runs_csv, index=False)
    written.append(runs_csv)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        parquet = out_dir / "runs.parquet"
        collection.runs.to_parquet(parquet, index=False)
        written.append(parquet)
    tables = {"history.csv": collection.history, "status.csv": collection.status_table()}
    if len(collection.diverged):
        tables["diverged.csv"] = collection.diverged
    for name, table in tables.items():
        table.to_csv(out_dir / name, index=False)
        written.append(out_dir / name)
    return written
