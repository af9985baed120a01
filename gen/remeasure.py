"""Measures of a run already trained, computed on its saved weights: never a training step.

A run's id does not hash its measure set (gen.sweeps.run_id), so a run trained once is measured many
times in its own folder.  :func:`measure_run` loads the run's ``model.pt`` and ``init.pt`` (and the
weights it kept at ``trainer.save_epochs``; every load ``weights_only=True``), rebuilds its data exactly
as the run did (its recorded dataset and corruption config, seeds included) and the training record the
measures read (history, interpolation, steps: from metrics.json), computes the measures that are missing
or stale, and rewrites metrics.json atomically, each value with its provenance (gen.record.add_measures).
The trackers the run logged to (``config.logger``) are reopened and get the new ``measures.*``.

Who calls it: gen.run, when a relaunched training sweep asks a completed run for measures it lacks
(missing, or computed under other params: ``code=False``); and ``python -m gen.measure`` (gen.measure),
which also brings values computed by other code up to date (``code=True``).  The caller holds the run lock.
"""
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from gen import measures, record, tracking
from gen.config.measure import TRACKED_MEASURES
from gen.training.loop import epoch_weights

log = logging.getLogger("gen")
INIT_WEIGHTS, FINAL_WEIGHTS = "init.pt", "model.pt"


class CannotMeasure(Exception):
    """The run cannot be measured again (one line says why): no saved weights, not a completed run."""


def measure_names(measure_cfg) -> list[str]:
    return list(dict.fromkeys((measure_cfg or {}).get("names") or []))


def stale(metrics: dict, measure_cfg, code: bool, epoch: str | None = None) -> list[str]:
    """The measures of ``measure_cfg`` the record lacks, or holds under other params (``code``: or by other
    code).  A measure that watches training is never computed afterwards once it has a value: its tracker
    ran with the training (its absence makes the measure null, with the reason)."""
    params = _params(measure_cfg)
    block = metrics if epoch is None else (metrics.get("at_epochs") or {}).get(epoch) or {}
    out = []
    for name in measure_names(measure_cfg):
        if name in TRACKED_MEASURES and name in (block.get("measures") or {}):
            continue
        current_code = measures.registry.code_identity(name) if code else None
        if not record.is_current(metrics, name, params, current_code, epoch):
            out.append(name)
    return out


def _params(measure_cfg) -> dict:
    import dataclasses

    return dataclasses.asdict(measures.context.resolve_params(measure_cfg))


def work(metrics: dict, measure_cfg, code: bool) -> dict[str | None, list[str]]:
    """What is left to compute: {None (final weights) or an epoch kept: the stale measures}, empty ones left out."""
    targets = [None] + sorted((metrics.get("at_epochs") or {}), key=int)
    todo = {epoch: stale(metrics, measure_cfg, code, epoch) for epoch in targets}
    return {epoch: names for epoch, names in todo.items() if names}


def measure_run(run_dir: Path, metrics: dict, measure_cfg, device: str = "auto", code: bool = True) -> dict:
    """Compute what :func:`work` lists on the run's saved weights; return the record as rewritten
    (unchanged, and not rewritten, when nothing is left).  A measure that fails is null with its reason
    in the record; no other value is lost."""
    run_dir = Path(run_dir)
    if metrics.get("status") != record.COMPLETED:
        raise CannotMeasure(f"{run_dir}: a {metrics.get('status')} run has no trained network to measure")
    todo = work(metrics, measure_cfg, code)
    if not todo:
        return metrics
    if not (run_dir / FINAL_WEIGHTS).exists() or not (run_dir / INIT_WEIGHTS).exists():
        raise CannotMeasure(f"{run_dir}: cannot be measured again: it was trained with trainer.save_weights=false "
                            f"(no {FINAL_WEIGHTS} / {INIT_WEIGHTS})")
    started = time.perf_counter()
    cfg = OmegaConf.create(metrics["config"])
    data, model = rebuild(cfg, device)
    init_state = _load(run_dir / INIT_WEIGHTS, model)
    for epoch, names in todo.items():
        weights = run_dir / (FINAL_WEIGHTS if epoch is None else epoch_weights(int(epoch)))
        if not weights.exists():
            raise CannotMeasure(f"{run_dir}: {weights.name} is missing")
        model.load_state_dict(_load(weights, model))
        results = measures.compute_measures(measure_cfg, model, init_state, data, training_record(metrics, epoch),
                                            only=names)
        record.add_measures(metrics, results, epoch)
    record.write(run_dir, metrics)
    computed = sum(len(names) for names in todo.values())
    log.info("%s: %d measure value(s) computed on its saved weights in %.1fs (no training)", run_dir, computed,
             time.perf_counter() - started)
    _tell_trackers(run_dir, metrics)
    return metrics


def rebuild(cfg: DictConfig, device: str = "auto"):
    """The run's data, as it trained on it (its dataset and corruption config, seeds included), and its model."""
    from gen.data import load_data
    from gen.models import build_model
    from gen.run import pick_device

    where = pick_device(device)
    data = load_data(cfg.dataset, cfg.corruption, where)
    model = build_model(cfg.model, data.input_shape, data.num_outputs, f"dataset {data.name}", len(data.x_train))
    return data, model.to(where)


def _load(path: Path, model: torch.nn.Module) -> dict:
    device = next(model.parameters()).device
    return torch.load(path, map_location=device, weights_only=True)  # nothing in a run folder runs code


def training_record(metrics: dict, epoch: str | None = None):
    """What measures read of training (gen.training.loop.TrainingRecord), from metrics.json: the history
    (up to ``epoch`` for weights kept there), the interpolation, the steps and seconds.  No tracker:
    measures that watch training are null afterwards, with the reason."""
    from gen.training.loop import TrainingRecord

    history = list(metrics["history"])
    if epoch is not None:
        history = [row for row in history if row["epoch"] <= int(epoch)]
    last = history[-1]
    return TrainingRecord(history=history, interpolation=dict(metrics["interpolation"]), status=metrics["status"],
                          epoch=int(last["epoch"]), step=int(last["step"]),
                          seconds=float((metrics.get("timing") or {}).get("train_s") or 0.0),
                          train_size=int(metrics["data"]["train_size"]))


def _tell_trackers(run_dir: Path, metrics: dict) -> None:
    """The trackers the run logged to take its new measures (as the same tracker runs: a migrated run
    logged under its legacy id)."""
    logger = (metrics.get("config") or {}).get("logger")
    if not logger:
        return
    session = tracking.open_session(logger, run_dir, run_dir.resolve().parent.name)
    config = {k: v for k, v in metrics["config"].items() if k != "logger"}
    session.start(metrics.get("legacy_run_id") or metrics["run_id"], config, True, [])
    session.end(metrics)
