"""The run record: ``metrics.json`` (schema 1), written atomically as a run's last act, and
checked against its schema whenever it is read.

One home for what a record is: the statuses, the keys each status requires and their types
(:data:`REQUIRED`), and :func:`check`, which the writer applies to what it writes and every reader
(a relaunch, the launchers, ``analysis``) to what it reads.  A record that fails is ``invalid``
(``unreadable`` when it is not JSON at all): it is never skipped as done, never counted as a result.
This module imports neither torch nor Hydra, so that analysis can use it cheaply.
"""
import json
import math
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import gen
from gen import atomic
from gen.fingerprint import weights_sha256
from gen.sweeps.run_id import looks_like_run_id, run_id_of_record

SCHEMA_VERSION = 2  # 2 (gen 0.6): run ids without the measure set; each measure's provenance beside its value
LEGACY_SCHEMA = 1   # gen <= 0.5: ``python -m gen.migrate`` upgrades such folders in place
METRICS_FILE = "metrics.json"

COMPLETED, DIVERGED, FAILED = "completed", "diverged", "failed"
RECORDED_STATUSES = (COMPLETED, DIVERGED, FAILED)  # what a run writes
RESULT_STATUSES = (COMPLETED, DIVERGED)            # a relaunch skips these: they are results
INVALID, UNREADABLE = "invalid", "unreadable"      # what a reader makes of a record that fails its check

# ---- the schema ---------------------------------------------------------------------------------
NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))
COMMON = {"schema": int, "run_id": str, "status": str, "config": dict, "overrides": list, "seed": int,
          "experiment": (str, type(None)), "env": dict, "notes": list}
RESULT = {"model": dict, "data": dict, "final": dict, "interpolation": dict, "measures": dict, "history": list,
          "timing": dict, "measured": dict, "measure_params": dict}
PROVENANCE = {"params": str, "code": str, "seconds": OPTIONAL_NUMBER}  # each entry of ``measured``
FINAL = {"train_loss": OPTIONAL_NUMBER, "test_loss": OPTIONAL_NUMBER, "train_acc": OPTIONAL_NUMBER,
         "test_acc": OPTIONAL_NUMBER, "epochs": int, "steps": int}
NUMBER_BLOCKS = ("final", "measures")  # blocks whose every value is a number or null (see _check_numbers)
MAX_RECORD_BYTES = 64 * 2**20  # far above any record gen writes (history of 10,000 evaluations: ~3 MB)
REQUIRED: dict[str, dict[str, dict[str, Any]]] = {  # status -> {block: {key: type}}; "" is the top level
    COMPLETED: {"": {**COMMON, **RESULT}, "final": {**FINAL, "train_loss": NUMBER}},
    DIVERGED: {"": {**COMMON, **RESULT, "divergence": dict}, "final": FINAL, "divergence": {"rule": str}},
    FAILED: {"": {**COMMON, "error": dict}, "error": {"type": str, "message": str}},
}


def check(metrics: Any, run_dir: Path | None = None, run_id: str | None = None) -> str | None:
    """Why ``metrics`` is not a valid record of the run in ``run_dir`` (of id ``run_id``), or None."""
    if not isinstance(metrics, dict):
        return f"not a JSON object but {type(metrics).__name__}"
    status = metrics.get("status")
    if status not in REQUIRED:
        return f"status {status!r} is not one of {list(REQUIRED)}"
    if metrics.get("schema") == LEGACY_SCHEMA:
        return legacy_reason(run_dir)
    for block, keys in REQUIRED[status].items():
        where = metrics if block == "" else metrics[block]
        for key, kind in keys.items():
            name = f"{block}.{key}" if block else key
            if key not in where:
                return f"a {status} record needs '{name}'"
            if not _is(where[key], kind):
                return f"'{name}' is {where[key]!r}, not {_type_names(kind)}"
    return _check_identity(metrics, run_dir, run_id) or _check_values(metrics) or _check_numbers(metrics)


def legacy_reason(run_dir: Path | None) -> str:
    return (f"written by gen <= 0.5 (schema {LEGACY_SCHEMA}: the measure set was in the run id); "
            f"`python -m gen.migrate {run_dir.parent if run_dir is not None else 'SWEEP_DIR'}` upgrades it "
            f"in place, nothing retrained")


def _check_identity(metrics: dict, run_dir: Path | None, run_id: str | None) -> str | None:
    if metrics["schema"] != SCHEMA_VERSION:
        return f"schema {metrics['schema']} is not {SCHEMA_VERSION}"
    recorded = metrics["run_id"]
    of_config = run_id_of_record(metrics["config"])
    if recorded != of_config:
        return f"run_id {recorded} is not the id of its own config ({of_config})"
    if run_id is not None and recorded != run_id:
        return f"run_id {recorded} is not the id of this run ({run_id})"
    # a folder named by a run id holds that run; one named by hand (hydra.run.dir) holds whichever run it was given
    if run_dir is not None and looks_like_run_id(run_dir.name) and recorded != run_dir.name:
        return f"run_id {recorded} is not the folder's ({run_dir.name})"
    if metrics["seed"] != metrics["config"].get("seed"):
        return f"seed {metrics['seed']} is not its config's ({metrics['config'].get('seed')})"
    return None


def _check_values(metrics: dict) -> str | None:
    if metrics["status"] == FAILED:
        return None
    if not metrics["history"] or not all(isinstance(row, dict) for row in metrics["history"]):
        return "'history' holds no evaluations"
    for key in ("train_acc", "test_acc"):
        value = metrics["final"][key]
        if value is not None and not 0 <= value <= 1:
            return f"'final.{key}' is {value}, not in [0, 1]"
    blocks = [("", metrics)] + [(f"at_epochs.{epoch}.", block) for epoch, block in
                                (metrics.get("at_epochs") or {}).items() if isinstance(block, dict)]
    for where, block in blocks:
        reason = _check_provenance(block, metrics["measure_params"], where)
        if reason:
            return reason
    return None


def _check_provenance(block: dict, params: dict, where: str = "") -> str | None:
    """Every value of ``block["measures"]`` has its provenance in ``block["measured"]``, whose params are
    one of the record's ``measure_params``."""
    measures, measured = block.get("measures"), block.get("measured")
    if not isinstance(measures, dict) or not isinstance(measured, dict):
        return f"'{where}measures' and '{where}measured' must be objects"
    for name, value in measures.items():
        entry = measured.get(name)
        if value is not None and not _is(value, NUMBER):
            return f"'{where}measures.{name}' is {value!r}, not a number or null"
        if not isinstance(entry, dict):
            return f"'{where}measured' has no provenance of the measure '{name}'"
        for key, kind in PROVENANCE.items():
            if not _is(entry.get(key), kind):
                return f"'{where}measured.{name}.{key}' is {entry.get(key)!r}, not {_type_names(kind)}"
        if entry["params"] not in params:
            return f"'{where}measured.{name}.params' names {entry['params']!r}, which 'measure_params' lacks"
    return None


def _check_numbers(metrics: dict) -> str | None:
    """Every value of the :data:`NUMBER_BLOCKS` a record holds is a number or null (a string or a list
    there would reach analysis as a column of mixed types)."""
    for block in NUMBER_BLOCKS:
        values = metrics.get(block)
        if values is None:
            continue
        if not isinstance(values, dict):
            return f"'{block}' is {_short(values)}, not an object"
        for key, value in values.items():
            if not _is(value, OPTIONAL_NUMBER):
                return f"'{block}.{key}' is {_short(value)}, not a number or null"
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _is(value: Any, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):  # JSON true is not a number
        return bool in kinds
    return isinstance(value, kinds)


def _type_names(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:  # an integer is a number too
        kinds = tuple(k for k in kinds if k is not int)
    names = {int: "an integer", float: "a number", str: "a string", dict: "an object", list: "a list",
             type(None): "null", bool: "true/false"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


class NotRecorded(Exception):
    """A run failed and not even its failure could be written (a full disk): every later run would
    meet the same, so the sweep stops here."""


# ---- reading ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """What a run folder's metrics.json says, once checked: ``status`` is one of the recorded
    statuses, ``invalid``, ``unreadable``, or None (no metrics.json)."""
    status: str | None
    metrics: dict | None = None
    reason: str = ""        # why it is invalid or unreadable

    @property
    def is_result(self) -> bool:
        return self.status in RESULT_STATUSES


def read(run_dir: Path, run_id: str | None = None) -> Record:
    """The checked record of ``run_dir``; ``run_id``: the id the record must carry (a relaunch knows it)."""
    path = Path(run_dir) / METRICS_FILE
    try:
        text = atomic.read_regular_file(path, MAX_RECORD_BYTES)
    except FileNotFoundError:
        return Record(None)
    except OSError as error:
        return Record(UNREADABLE, reason=f"{METRICS_FILE}: {error.strerror or error}")
    try:
        metrics = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as error:
        return Record(UNREADABLE, reason=f"{METRICS_FILE}: not valid JSON ({_short(str(error), 120)})")
    except RecursionError:
        return Record(UNREADABLE, reason=f"{METRICS_FILE}: nested too deeply to be a record")
    reason = check(metrics, Path(run_dir), run_id)
    if reason:
        return Record(INVALID, metrics if isinstance(metrics, dict) else None, f"{METRICS_FILE}: {reason}")
    return Record(metrics["status"], metrics)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def has_result(run_dir: Path, run_id: str | None = None) -> bool:
    """True if the run folder holds a valid result (a relaunch skips it unless ``rerun``)."""
    return read(run_dir, run_id).is_result


def remove_if_fresh(run_dir: Path) -> None:
    """Bad input leaves nothing behind: drop a run folder that holds only Hydra's bookkeeping."""
    import shutil

    from gen.sweeps.runlock import LOCK_FILE

    run_dir = Path(run_dir)
    leftovers = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    if leftovers <= {".hydra", "launch.log", LOCK_FILE}:
        shutil.rmtree(run_dir, ignore_errors=True)


# ---- writing ------------------------------------------------------------------------------------
def write(run_dir: Path, metrics: dict) -> None:
    """Check ``metrics`` against the schema, then write it atomically as the run's metrics.json."""
    payload = to_json(metrics)
    reason = check(payload, Path(run_dir))
    if reason:  # a bug in gen, not in the run: never leave a record that readers would refuse
        raise ValueError(f"refusing to write an invalid {METRICS_FILE} in {run_dir}: {reason}")
    atomic.write_json(Path(run_dir) / METRICS_FILE, payload)
    _written_here.add(os.path.abspath(run_dir))


_written_here: set[str] = set()  # run folders whose metrics.json this process wrote


def written_here(run_dir: Path) -> bool:
    """Whether this process wrote ``run_dir``'s metrics.json (a sweep's progress tells its own runs from
    those another launch trained meanwhile)."""
    return os.path.abspath(run_dir) in _written_here


def header(cfg, status: str, overrides: list[str], experiment: str | None) -> dict:
    """What every record starts with: which run (its id, resolved config, overrides) and its status."""
    from omegaconf import OmegaConf

    from gen.sweeps.run_id import run_id

    return {"schema": SCHEMA_VERSION, "run_id": run_id(cfg), "status": status,
            "config": OmegaConf.to_container(cfg, resolve=True), "overrides": list(overrides),
            "experiment": experiment, "seed": cfg.seed}


def trained(head: dict, model, data, result, measured, timing: dict, device) -> dict:
    """The record of a run that trained (``completed`` or ``diverged``, as ``head`` says): ``result``
    is its gen.training.loop.TrainingRecord, ``measured`` its gen.measures results."""
    last = result.final
    has_acc = last["train_acc"] is not None
    final = {"train_acc": last["train_acc"], "train_loss": last["train_loss"], "test_acc": last["test_acc"],
             "test_loss": last["test_loss"],
             "train_error": 1 - last["train_acc"] if has_acc else None,
             "test_error": 1 - last["test_acc"] if has_acc else None,
             "gen_gap": last["train_acc"] - last["test_acc"] if has_acc else None,
             "loss_gap": last["test_loss"] - last["train_loss"],
             "epochs": result.epoch, "steps": result.step}
    notes = []
    if result.status == DIVERGED:
        notes.append(f"training diverged ({result.divergence['rule']}, gen.training.divergence) in epoch "
                     f"{result.divergence['epoch']}")
    metrics = dict(head)
    metrics.update({
        "model": {"name": head["config"]["model"]["name"], "num_params": sum(p.numel() for p in model.parameters()),
                  "objective": getattr(result, "objective", None)},
        "data": {"name": data.name, "train_size": len(data.x_train), "test_size": len(data.x_test),
                 "input_shape": list(data.input_shape), "num_classes": data.num_classes,
                 "corrupted_fraction": data.corrupted.float().mean().item(),
                 "interpolation_threshold": interpolation_threshold(len(data.x_train), data.num_classes)},
        "final": final, "interpolation": result.interpolation, "measures": {}, "measured": {},
        "measure_params": {}, "history": result.history, "timing": timing, "env": environment(device), "notes": notes,
        "weights_sha256": weights_sha256(model),  # identical networks share it (gen/fingerprint.py)
    })
    add_measures(metrics, measured)
    if result.split_acc is not None:
        metrics["split_acc"] = result.split_acc
    if getattr(measured, "details", None):
        metrics["measure_details"] = measured.details
    if result.status == DIVERGED:
        metrics["divergence"] = result.divergence
    return metrics


# ---- measures and their provenance -------------------------------------------------------------
def params_key(params: dict) -> str:
    """The short name under which a record keeps one resolved ``measure.params`` (``measure_params``)."""
    import hashlib

    return hashlib.sha1(json.dumps(to_json(params), sort_keys=True).encode()).hexdigest()[:8]


def is_current(metrics: dict, name: str, params: dict, code: str | None = None, epoch: str | None = None) -> bool:
    """True if the record holds ``name`` computed under ``params`` (and, given ``code``, by that code)."""
    block = metrics if epoch is None else (metrics.get("at_epochs") or {}).get(epoch) or {}
    entry = (block.get("measured") or {}).get(name)
    if entry is None or name not in (block.get("measures") or {}):
        return False
    return entry.get("params") == params_key(params) and (code is None or entry.get("code") == code)


def add_measures(metrics: dict, results, epoch: str | None = None) -> None:
    """Put ``results`` (gen.measures.MeasureResults) into the record, each value with its provenance
    (``measured``: params key, code, seconds, why null).  A value computed before under other params or by
    other code is replaced, never mixed in silently: its entry keeps what it replaced (``replaced``) and a
    note says so.  ``epoch``: the weights kept at that epoch (``at_epochs``), not the final ones."""
    key = params_key(results.params)
    metrics.setdefault("measure_params", {})[key] = to_json(results.params)
    block = metrics if epoch is None else metrics.setdefault("at_epochs", {}).setdefault(epoch, {})
    values, measured = block.setdefault("measures", {}), block.setdefault("measured", {})
    notes = metrics.setdefault("notes", [])
    where = "" if epoch is None else f" (weights of epoch {epoch})"
    for name, value in results.values.items():
        old = measured.get(name)
        entry = {"params": key, "code": results.codes.get(name, ""), "seconds": results.seconds.get(name)}
        if name in results.reasons:
            entry["reason"] = results.reasons[name]
        if old is not None:  # the notes on the value it replaces no longer hold
            notes[:] = [n for n in notes if not n.startswith(f"{name}{where}: ")]
        if old is not None and (old.get("params"), old.get("code")) != (key, entry["code"]):
            entry["replaced"] = {"value": values.get(name), "params": old.get("params"), "code": old.get("code")}
            why = "other params" if old.get("params") != key else f"other code ({old.get('code')})"
            notes.append(f"{name}{where}: replaced a value computed under {why} "
                         f"(measure_params {old.get('params')} -> {key})")
        values[name], measured[name] = value, entry
        if epoch is None and name in results.seconds:
            metrics.setdefault("timing", {}).setdefault("measure_s", {})[name] = results.seconds[name]
    for note in results.notes:
        name, sep, rest = note.partition(": ")
        text = f"{name}{where}: {rest}" if sep and epoch is not None else note
        if text not in notes:
            notes.append(text)
    drop_unused_params(metrics)


def drop_unused_params(metrics: dict) -> None:
    blocks = [metrics, *(metrics.get("at_epochs") or {}).values()]
    used = {ref for block in blocks for entry in (block.get("measured") or {}).values()
            for ref in (entry.get("params"), (entry.get("replaced") or {}).get("params")) if ref}
    metrics["measure_params"] = {k: v for k, v in metrics.get("measure_params", {}).items() if k in used}


def interpolation_threshold(train_size: int, num_classes: int) -> int | None:
    """n·K, Belkin et al. 2019's interpolation threshold: the parameter count at which a network can
    first fit n samples' K outputs exactly (None for regression, which has no classes)."""
    return train_size * num_classes if num_classes else None


def failed(head: dict, error: BaseException, seconds: float) -> dict:
    """The record of a run that raised ``error`` (call it inside the ``except``: it keeps the traceback's tail)."""
    import traceback

    metrics = dict(head, status=FAILED)
    metrics["error"] = {"type": type(error).__name__, "message": str(error),
                        "traceback_tail": traceback.format_exc().strip().splitlines()[-12:]}
    metrics["timing"] = {"total_s": seconds}
    metrics["env"] = environment("cpu")
    metrics["notes"] = [f"failed: {type(error).__name__}: {error}"]
    return metrics


def to_json(value: Any) -> Any:
    """Plain JSON numbers only: cast numpy/torch scalars, map NaN/inf to null."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "numel"):  # a torch tensor
        value = value.item() if value.numel() == 1 else value.tolist()
        return to_json(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def environment(device) -> dict:
    """What produced the run: interpreter, libraries, hardware, code version."""
    import torch

    name = str(device)
    if getattr(device, "type", None) == "cuda":
        name = f"cuda:{torch.cuda.get_device_name(device)}"
    return {"python": platform.python_version(), "torch": torch.__version__, "device": name,
            "git_sha": git_sha(), "host": socket.gethostname(), "package_version": gen.__version__,
            "argv": sys.argv}


@lru_cache(maxsize=1)
def git_sha() -> str | None:
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")
