"""Upgrade run folders written by gen <= 0.5 in place: ``python -m gen.migrate PATH...``.

gen 0.6 gives a run the id of what determines its trained network; gen <= 0.5 hashed the measure set
too (gen.sweeps.run_id.legacy_run_id).  For every run folder at or below each PATH whose record is of
schema 1 this command, under the run's lock:

- renames the folder to its new id (a folder named by hand keeps its name) and rewrites metrics.json
  atomically as schema 2: ``run_id`` the new id, ``legacy_run_id`` the old one (the trackers the run
  logged to know it by that), each measure's provenance (``measured``, ``measure_params``: the params its
  config resolves to, the gen version that computed it, its seconds, why a value is null); Hydra's
  ``.hydra/`` and every other file stay as they are;
- merges two old runs that now share one id (they differed only in their measure sets) into one record
  when their training matches (the same history, seconds aside): the measures of the second join the
  first's record, each with its provenance, and the second folder is kept whole inside the first, in
  ``merged/<old id>/`` (no reader looks there).  Trainings that differ are both left as they are, and a
  line says why.

Nothing is retrained.  Idempotent: a folder already upgraded is "up to date".  One line per folder.
Exit status: 0, or 1 if a folder was left (a line says why), 2 for a path that is not a folder.
"""
import json
import logging
import os
import sys
from pathlib import Path

from gen import record
from gen.sweeps import runlock
from gen.sweeps.run_id import legacy_run_id, looks_like_run_id, run_id_of_record

MERGED = "merged"


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv]
    if not paths or not all(p.is_dir() for p in paths):
        bad = next((p for p in paths if not p.is_dir()), "(none)")
        print(f"error: PATH={bad}: not a folder (usage: python -m gen.migrate PATH...)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    left = 0
    for run_dir in run_folders(paths):
        line, ok = migrate(run_dir)
        print(line)
        left += not ok
    return 1 if left else 0


def run_folders(paths: list[Path]) -> list[Path]:
    from gen.sweeps import status

    return [f.path for f in status.scan(paths) if (f.path / record.METRICS_FILE).exists()]


def migrate(run_dir: Path) -> tuple[str, bool]:
    """(the folder's one line, False if it was left as it was for a reason to look at)."""
    lock = runlock.acquire(run_dir)
    if lock is None:
        return f"{run_dir}: left: running in another process", False
    try:
        return _migrate_locked(run_dir)
    finally:
        lock.release()


def _migrate_locked(run_dir: Path) -> tuple[str, bool]:
    try:
        metrics = json.loads((run_dir / record.METRICS_FILE).read_text())
    except (OSError, ValueError) as error:
        return f"{run_dir}: left: {record.METRICS_FILE} unreadable ({error})", False
    if not isinstance(metrics, dict) or metrics.get("schema") != record.LEGACY_SCHEMA:
        return f"{run_dir}: up to date", True
    config, old = metrics.get("config"), metrics.get("run_id")
    if not isinstance(config, dict) or old != legacy_run_id(config):
        return f"{run_dir}: left: its run_id {old} is not gen 0.5's id of its config", False
    new = run_id_of_record(config)
    upgraded = upgrade(metrics, new)
    reason = record.check(upgraded)
    if reason:
        return f"{run_dir}: left: the upgraded record would be invalid ({reason})", False
    target = run_dir.with_name(new) if looks_like_run_id(run_dir.name) else run_dir
    if target != run_dir and target.exists():
        return _merge(run_dir, upgraded, target)
    if target != run_dir:
        os.rename(run_dir, target)
    record.write(target, upgraded)
    said = f"{run_dir.parent}: {old} -> {new}" if target != run_dir else f"{run_dir}: upgraded (id {old} -> {new})"
    return said, True


def upgrade(metrics: dict, new_id: str) -> dict:
    """The schema-2 record of a schema-1 one: the new id, the legacy id, each measure's provenance."""
    upgraded = dict(metrics, schema=record.SCHEMA_VERSION, run_id=new_id, legacy_run_id=metrics["run_id"])
    if metrics.get("status") not in record.RESULT_STATUSES:
        return upgraded
    from gen.measures import MeasureResults
    from gen.measures.context import resolve_params
    import dataclasses

    values = dict(metrics.get("measures") or {})
    code = f"gen {(metrics.get('env') or {}).get('package_version', '<= 0.5')}"
    seconds = (metrics.get("timing") or {}).get("measure_s") or {}
    notes = metrics.get("notes") or []
    reasons = {name: next((n.split(": ", 1)[1] for n in notes if n.startswith(f"{name}: ")), "null in gen <= 0.5")
               for name, value in values.items() if value is None}
    results = MeasureResults(values=values, seconds={k: seconds.get(k) for k in values}, reasons=reasons,
                             params=dataclasses.asdict(resolve_params((metrics["config"] or {}).get("measure"))),
                             codes={name: code for name in values})
    upgraded.update(measures={}, measured={}, measure_params={}, notes=list(notes))
    record.add_measures(upgraded, results)
    upgraded["timing"] = metrics.get("timing")  # as it was (add_measures merged the same seconds)
    return upgraded


def _merge(run_dir: Path, incoming: dict, target: Path) -> tuple[str, bool]:
    """Join ``incoming`` (the record of ``run_dir``) to the run already at ``target`` when they trained alike."""
    kept = record.read(target, incoming["run_id"])
    if not kept.is_result and kept.status not in (record.FAILED,):
        return (f"{run_dir}: left: {target.name} already holds a folder that is not an upgraded record "
                f"({kept.reason or kept.status})"), False
    if kept.is_result and incoming["status"] in record.RESULT_STATUSES:
        if _training(kept.metrics) != _training(incoming):
            return (f"{run_dir}: left: {target.name} holds the same config trained to another history "
                    f"(not the same network); both kept, this one not migrated"), False
        metrics = kept.metrics
        _join_measures(metrics, incoming)
        metrics["notes"].append(f"merged the measures of legacy run {incoming['legacy_run_id']} "
                                f"(the same training; its folder is in {MERGED}/)")
        record.write(target, metrics)
    elif incoming["status"] in record.RESULT_STATUSES:  # the result takes the folder, the failed attempt is kept inside
        failed = target.with_name(target.name + ".failed-attempt")
        os.rename(target, failed)
        os.rename(run_dir, target)
        record.write(target, incoming)
        (target / MERGED).mkdir(exist_ok=True)
        os.rename(failed, target / MERGED / kept.metrics.get("legacy_run_id", failed.name))
        return (f"{run_dir.parent}: {incoming['legacy_run_id']} -> {target.name} "
                f"(a failed attempt kept in {MERGED}/)"), True
    (target / MERGED).mkdir(exist_ok=True)
    os.rename(run_dir, target / MERGED / run_dir.name)
    return f"{run_dir.parent}: {run_dir.name} merged into {target.name} (the same training)", True


def _training(metrics: dict) -> tuple:
    """What two records of one training share: history and final metrics, wall-clock seconds aside."""
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in metrics.get("history") or []]
    return json.dumps(history, sort_keys=True), json.dumps(metrics.get("final"), sort_keys=True), metrics["status"]


def _join_measures(metrics: dict, incoming: dict) -> None:
    """Every measure of ``incoming`` joins ``metrics`` with its provenance; a name both hold under other params
    keeps ``metrics``' value and the other as ``replaced``."""
    metrics["measure_params"].update(incoming["measure_params"])
    for name, value in incoming["measures"].items():
        entry = dict(incoming["measured"][name])
        mine = metrics["measured"].get(name)
        if mine is None:
            metrics["measures"][name], metrics["measured"][name] = value, entry
        elif mine["params"] != entry["params"] or mine["code"] != entry["code"]:
            mine["replaced"] = {"value": value, "params": entry["params"], "code": entry["code"]}
    record.drop_unused_params(metrics)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
