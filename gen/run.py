"""One run, start to finish: ``train(cfg)`` is what ``launch.py`` calls for every job.

1. validate the config; 2. take the run folder's lock (gen.sweeps.runlock: a run another process holds is
skipped); 3. skip if the folder already holds a result, once gen.record has checked it (a record that
fails the check is moved aside and the run trains again); 4. load data as tensors on the device;
5. build model and optimizer (resuming from a checkpoint if it is this run's; any other is moved aside);
6. train (gen.training.divergence says when it exploded); 7. compute measures; 8. write metrics.json
atomically as the last act.  A completed run whose record lacks measures the config asks for (or holds
them under other params) is measured on its saved weights instead (gen.remeasure): never trained again.
Each returns the run's outcome (gen.outcome).  A run that raises records ``status: failed`` and re-raises, so
the job exits non-zero; with ``keep_going`` (a multirun) it returns the ``failed`` outcome instead, and the
sweep goes on.  If even that record cannot be written, ``record.NotRecorded`` says which file.

``train_group(group)`` is the same for a lockstep group (``trainer.ensemble``, gen.sweeps.ensemble): its
first member leads (steps 1-3 are its own), every member is built with steps 3-5, they train together
(gen.training.lockstep) and each member's metrics.json is written; the launchers call it for the first job of
a group (gen.cli.lockstep_tasks).  ``train(cfg)`` is a group of one.
"""
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from gen import atomic, measures, outcome, record, remeasure, tracking
from gen.sweeps import ensemble, run_folder, runlock
from gen.training import checkpoint, memory
from gen.data import DataBundle, load_data
from gen.training.lockstep import Lockstep
from gen.data.augment import build_augmentation
from gen.models import build_model, expressivity
from gen.training.objective import objective_for
from gen.training.optimizers import build_optimization
from gen.sweeps.run_id import legacy_run_id, run_id as run_id_of
from gen.config import ConfigError, validate
from gen.training.loop import Trainer, epoch_weights, fit

log = logging.getLogger("gen")
INIT_WEIGHTS, FINAL_WEIGHTS = remeasure.INIT_WEIGHTS, remeasure.FINAL_WEIGHTS


def train(cfg: DictConfig, run_dir: Path | None = None, keep_going: bool = False) -> outcome.RunOutcome:
    """Run the job ``cfg`` describes in ``run_dir`` (default: Hydra's output dir) and return its outcome:
    a lockstep group of one (``keep_going``: as for :func:`train_group`)."""
    run_dir = Path(run_dir or HydraConfig.get().runtime.output_dir)
    member = ensemble.Member(cfg, run_dir, tuple(_overrides()), _choice("experiment"))
    return train_group([member], keep_going)[0]


def train_group(group: list[ensemble.Member], keep_going: bool = False) -> list[outcome.RunOutcome | None]:
    """Train the lockstep group ``group`` (gen.sweeps.ensemble.plan), led by its first member, and return
    each member's outcome, in its order.  The leader always has one (``skipped`` where another process holds
    it or its result exists); None for a member this call did not train — another process holds it, it was
    finished meanwhile, its checkpoint stands at another step than the leader's, or the group failed: its own
    job trains it.  A failure the leader's metrics.json records is raised, or with ``keep_going`` returned
    as its ``failed`` outcome.  A leader that is skipped (its result exists) or only measured trains no group."""
    leader = group[0]
    fresh = not (leader.run_dir / record.METRICS_FILE).exists() and \
        not (leader.run_dir / checkpoint.CHECKPOINT_FILE).exists()
    try:
        return _run(group, keep_going)
    except ConfigError:  # bad input leaves nothing behind
        if fresh:
            record.remove_if_fresh(leader.run_dir)
        raise


def _run(group: list[ensemble.Member], keep_going: bool) -> list[outcome.RunOutcome | None]:
    cfg, run_dir = group[0].cfg, group[0].run_dir
    validate(cfg)  # the measure set's names and parameters too
    run_folder.check(run_dir, run_id_of(cfg))  # no link, no other run's record: before anything is moved
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = runlock.acquire(run_dir)
    if lock is None:
        held = f"running in another process ({runlock.describe_holder(run_dir)})"
        log.warning("skipping %s: %s", run_dir, held)
        return [outcome.skipped(run_dir, held), *[None] * (len(group) - 1)]
    try:
        return _run_locked(group, keep_going)
    finally:
        lock.release()


def _run_locked(group: list[ensemble.Member], keep_going: bool) -> list[outcome.RunOutcome | None]:
    leader = group[0]
    cfg, run_dir = leader.cfg, leader.run_dir
    others = [None] * (len(group) - 1)  # not trained by this call: each member's own job sees to it
    previous = _previous_record(cfg, run_dir)
    if previous.is_result and not cfg.rerun:
        if previous.status == record.COMPLETED and remeasure.work(previous.metrics, cfg.measure, code=False):
            metrics = _measure_trained(cfg, run_dir, previous.metrics)
            return [outcome.skipped(run_dir, "already completed; measured on its saved weights", metrics), *others]
        log.info("skipping %s: already %s (rerun=true runs it again)", run_dir, previous.status)
        return [outcome.skipped(run_dir, f"already {previous.status}", previous.metrics), *others]
    if checkpoint.requested():  # a sweep that was told to stop starts no more runs
        raise checkpoint.Interrupted("stop requested (SIGTERM/SIGUSR) before this run started")
    if cfg.rerun:
        checkpoint.remove(run_dir)
    started = time.perf_counter()
    with _claim_group(group) as members:  # the leader, and the members it can train now
        if len(members) == 1 and cfg.trainer.ensemble > 1:
            log.warning("trainer.ensemble=%d: %s trains alone (lockstep groups form in multiruns, of runs that "
                        "need training, stand at one step and differ only in %s)", cfg.trainer.ensemble,
                        run_dir.name, ", ".join(ensemble.VARYING))
        sessions: list[tracking.Session] = []  # each member's trackers, once its config is checked
        try:
            try:
                results = _execute(members, started, sessions)
            except checkpoint.Interrupted as stop:
                log.warning("%s; the checkpoint in %s resumes it", stop, ", ".join(str(m.run_dir) for m in members))
                _close(sessions, "interrupted")
                raise
            except Exception as error:
                if isinstance(error, ConfigError):  # bad input is no run's failure: nothing is recorded
                    raise
                failure = _record_failure(leader, error, started)
                if not keep_going:
                    raise
                return [failure, *others]
            for member, metrics in zip(members, results):
                record.write(member.run_dir, metrics)
                checkpoint.remove(member.run_dir)
            for session, metrics in zip(sessions, results):  # metrics.json first: the trackers are its views
                session.end(metrics)
        finally:
            _close(sessions, "failed")  # nothing for the sessions that ended or closed above
    for metrics in results:
        _log_summary(metrics)
    trained = {member.run_dir: outcome.of_record(member.run_dir, metrics) for member, metrics in zip(members, results)}
    return [trained.get(member.run_dir) for member in group]


def _measure_trained(cfg: DictConfig, run_dir: Path, metrics: dict) -> dict:
    """A completed run asked for measures it lacks (or holds under other params): computed on its saved
    weights (gen.remeasure), never trained again.  One it cannot measure (no weights) keeps its record."""
    try:
        return remeasure.measure_run(run_dir, metrics, cfg.measure, cfg.trainer.device, code=False)
    except remeasure.CannotMeasure as why:
        log.warning("skipping %s: already completed; %s", run_dir, why)
        return metrics


def _previous_record(cfg: DictConfig, run_dir: Path) -> record.Record:
    """The run folder's checked record; one that fails its check is moved aside (kept, never believed)."""
    previous = record.read(run_dir, run_id_of(cfg))
    _refuse_unmigrated(cfg, run_dir, previous)
    if previous.status in (record.INVALID, record.UNREADABLE):
        path = run_dir / record.METRICS_FILE
        aside = path.with_name(record.METRICS_FILE + "." + previous.status)
        os.replace(path, aside)
        log.warning("%s is %s (%s); moved to %s, the run trains again", path, previous.status,
                    previous.reason.removeprefix(record.METRICS_FILE + ": "), aside.name)
    return previous


def _refuse_unmigrated(cfg: DictConfig, run_dir: Path, previous: record.Record) -> None:
    """A run of gen <= 0.5 (its folder, or its record in a folder named by hand) is never trained again because
    of the upgrade: the relaunch stops with the one command that migrates it."""
    legacy = previous.metrics if previous.status == record.INVALID and previous.metrics else None
    if legacy is None and previous.status is None:
        old_home = run_dir.with_name(legacy_run_id(cfg))
        if old_home != run_dir and (old_home / record.METRICS_FILE).exists():
            legacy = record.read(old_home).metrics
            run_dir = old_home
    if legacy is not None and legacy.get("schema") == record.LEGACY_SCHEMA:
        raise ConfigError("run folder", run_dir, record.legacy_reason(run_dir))


def _record_failure(member: ensemble.Member, error: Exception, started: float) -> outcome.RunOutcome:
    """metrics.json says failed, with the error, and the outcome says what it records; if even that cannot be
    written, the write error says why."""
    head = record.header(member.cfg, record.FAILED, member.overrides, member.experiment)
    failed = record.failed(head, error, time.perf_counter() - started)
    try:
        record.write(member.run_dir, failed)
    except OSError as write_error:
        raise record.NotRecorded(f"{write_error} (the run failed: {type(error).__name__}: {error})") from error
    log.error("run failed: %s: %s (recorded in %s)", type(error).__name__, error, member.run_dir / record.METRICS_FILE)
    return outcome.of_record(member.run_dir, failed)


@contextlib.contextmanager
def _claim_group(group: list[ensemble.Member]):
    """The group (its leader's folder locked by the caller), less the members another process holds, has
    finished, or whose checkpoint stands at another step than the leader's (those train alone in their
    own job); the members' folders stay locked by this process until the group's records are written."""
    leader = group[0]
    locks, kept, created = [], [leader], []
    where = checkpoint.position(leader.run_dir, run_id_of(leader.cfg)) if len(group) > 1 else None
    try:
        for member in group[1:]:
            if not member.run_dir.exists():
                created.append(member.run_dir)
                member.run_dir.mkdir(parents=True)
            lock = runlock.acquire(member.run_dir)
            if lock is None:
                log.warning("lockstep: %s leaves the group: running in another process (%s)", member.run_dir,
                            runlock.describe_holder(member.run_dir))
                continue
            member_id = run_id_of(member.cfg)
            if member.cfg.rerun:
                checkpoint.remove(member.run_dir)
            elif record.has_result(member.run_dir, member_id):
                lock.release()  # finished by another launch meanwhile: its own job skips it
                continue
            if checkpoint.position(member.run_dir, member_id) != where:
                lock.release()  # resumes alone from where its checkpoint stands, in its own job
                continue
            locks.append(lock)
            kept.append(member)
        yield kept
    except ConfigError:  # bad input leaves nothing behind, in the members' folders either
        for lock in locks:
            lock.release()
        locks = []
        for folder in created:
            record.remove_if_fresh(folder)
        raise
    finally:
        for lock in locks:
            lock.release()


@dataclass
class RunSetup:
    """A run built and ready to train: what ``Trainer.fit`` needs and what metrics.json records."""
    cfg: DictConfig
    run_dir: Path
    device: torch.device
    data: DataBundle
    data_seconds: float
    model: torch.nn.Module
    init_state: dict
    trainer: Trainer
    peers_before: tuple[str, ...] = ()  # the lockstep group of its earlier attempts (gen.run._lockstep_note)


def _close(sessions: list[tracking.Session], outcome: str) -> None:
    for session in sessions:
        session.close(outcome)


def _execute(members: list[ensemble.Member], started: float, sessions: list[tracking.Session]) -> list[dict]:
    """Build every member as if alone (resumed from its checkpoint if it has one), train them with the
    one loop (alone, or in lockstep: gen.training.lockstep) and return each member's record; each
    member's trackers (gen.tracking) are opened into ``sessions``."""
    for member in members[1:]:  # the first was checked by _run
        validate(member.cfg)
    data = {}  # members with the same dataset and corruption share one copy
    setups = []
    names = [m.run_dir.name for m in members]
    for member in members:
        key = OmegaConf.to_yaml({"d": member.cfg.dataset, "c": member.cfg.corruption})
        setup = _resume(build_run(member.cfg, member.run_dir, data.get(key)))
        peers = list(dict.fromkeys([*setup.peers_before, *names]))  # every attempt's group, for a later resume
        setup.trainer.extra_state = {"init_state": setup.init_state, "peers": peers}
        data.setdefault(key, setup.data)
        setups.append(setup)
    trainers = [setup.trainer for setup in setups]
    lockstep = Lockstep(trainers, members[0].cfg) if len(members) > 1 else None  # refuses what it can't do
    for setup in setups:
        _save_init(setup)
    for setup in setups:  # after every check (a refused lockstep group leaves no tracker folder behind)
        sessions.append(_open_trackers(setup))
    checkpoint.install_signal_handlers()
    fit(trainers, lockstep)
    results = [_finish(setup, started, member) for setup, member in zip(setups, members)]
    for setup, metrics in zip(setups, results):
        note = _lockstep_note(setup.peers_before, names)
        if note:
            metrics["notes"].append(note)
    return results


def _lockstep_note(before: tuple[str, ...], now: list[str]) -> str | None:
    """What a run's notes say of its lockstep group(s): ``now``, this attempt's group, and ``before``, the
    runs it trained with in earlier attempts (a preempted group may resume smaller, or a run alone)."""
    every = list(dict.fromkeys([*before, *now]))
    if len(every) < 2:
        return None
    if len(every) == len(now):
        return (f"trained in lockstep with {len(now) - 1} other run(s) (trainer.ensemble={len(now)}: "
                f"{', '.join(now)}); timing.train_s is shared")
    last = f"the last with {', '.join(now)}" if len(now) > 1 else "the last alone"
    return (f"trained in lockstep with {len(every) - 1} other run(s) across its attempts ({', '.join(every)}); "
            f"the group changed on resuming ({last}); timing.train_s is shared where it trained in a group")


def _open_trackers(setup: RunSetup) -> tracking.Session:
    """The run's trackers, started (a resumed run continues its tracker runs) and fed every evaluation.
    Experiment, project and group default to the sweep's folder name (``runs`` for a single run)."""
    cfg, trainer = setup.cfg, setup.trainer
    session = tracking.open_session(OmegaConf.to_container(cfg.logger, resolve=True), setup.run_dir,
                                    setup.run_dir.resolve().parent.name)
    config = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "logger"}
    resumed = trainer.record.epoch > 0 or trainer.record.step > 0
    session.start(trainer.run_id, config, resumed, list(trainer.record.history))
    trainer.on_evaluation = session.log_row if session.trackers else None
    return session


def _resume(setup: RunSetup) -> RunSetup:
    """The run continued from its checkpoint, if it has one it can use; else as built.  A checkpoint
    that is not this run's (or that its model, optimizer or RNGs refuse) is moved aside and the run is
    built again from scratch, so that nothing of it is half-applied."""
    run_dir, trainer = setup.run_dir, setup.trainer
    try:
        saved = checkpoint.load(run_dir, trainer.run_id)
        if saved is None:
            return setup
        trainer.load_state_dict(saved)
        setup.init_state = _checked_init_state(saved["init_state"], setup.init_state)
    except Exception as error:  # whatever the state does to load_state_dict, the run must not wedge on it
        why = str(error) if isinstance(error, checkpoint.Unusable) else \
            f"does not fit this run ({type(error).__name__}: {checkpoint.first_line(error)})"
        checkpoint.quarantine(run_dir, why)
        return build_run(setup.cfg, run_dir, setup.data)
    setup.peers_before = _saved_peers(saved)
    # "at epoch E": the epoch in progress, counted from 1, as the preemption line says it
    log.info("resuming %s at epoch %d, step %d", run_dir, trainer.record.epoch + 1, trainer.record.step)
    return setup


def _saved_peers(saved: dict) -> tuple[str, ...]:
    """The lockstep peers (run folder names) a checkpoint says its run trained with so far."""
    peers = saved.get("peers")
    return tuple(peers) if isinstance(peers, list) and all(isinstance(p, str) for p in peers) else ()


def _checked_init_state(saved: dict, built: dict) -> dict:
    if not isinstance(saved, dict) or saved.keys() != built.keys() or any(
            not isinstance(saved[k], torch.Tensor) or saved[k].shape != built[k].shape for k in built):
        raise ValueError("its initial weights are not this model's")
    return {k: v.to(built[k].device) for k, v in saved.items()}


def build_run(cfg: DictConfig, run_dir: Path | None = None, data: DataBundle | None = None) -> RunSetup:
    """Data (unless given), model, optimizer and Trainer of the run ``cfg`` describes."""
    device = pick_device(cfg.trainer.device)
    loading = time.perf_counter()
    if data is None:
        memory.check_data_fits(cfg.dataset, device)
        data = load_data(cfg.dataset, cfg.corruption, device)
    data_seconds = time.perf_counter() - loading

    model_shape = (data.input_shape, data.num_outputs, f"dataset {data.name}", len(data.x_train))
    memory.check_model_fits(cfg.model, lambda: build_model(cfg.model, *model_shape), device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, *model_shape).to(device)
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if isinstance(model, expressivity.ZhangExpressivity):  # built in closed form for its training set
        expressivity.check_trainer(cfg.trainer)
        expressivity.fit(model, data.x_train, data.y_train)
    objective = objective_for(data, _num_outputs(model, data), cfg.trainer.loss)
    optimization = build_optimization(cfg.optimizer, model, cfg.trainer.max_epochs)
    generator = torch.Generator().manual_seed(cfg.seed)
    trajectory = measures.trajectory.watch_trajectory(cfg.measure, model, cfg.trainer.loss)
    trainer = Trainer(model, data, objective, optimization, cfg.trainer, generator, trajectory=trajectory,
                      run_dir=run_dir, run_id=run_id_of(cfg), augment=build_augmentation(cfg.augment, data, generator))
    return RunSetup(cfg, run_dir, device, data, data_seconds, model, init_state, trainer)


def _save_init(setup: RunSetup) -> None:
    if setup.cfg.trainer.save_weights:
        atomic.save_torch(setup.run_dir / INIT_WEIGHTS, setup.init_state)


def _finish(setup: RunSetup, started: float, member: ensemble.Member) -> dict:
    """Weights, measures and the record of a trained run."""
    cfg, model, data, result = setup.cfg, setup.model, setup.data, setup.trainer.record
    if cfg.trainer.save_weights:
        atomic.save_torch(setup.run_dir / FINAL_WEIGHTS, model.state_dict())
    if result.status == record.DIVERGED:  # measures of a non-finite network mean nothing
        measured = measures.MeasureResults.skipped(cfg.measure, "training diverged")
    else:
        measured = measures.compute_measures(cfg.measure, model, setup.init_state, data, result)
    timing = {"total_s": time.perf_counter() - started, "data_s": setup.data_seconds, "train_s": result.seconds,
              "measures_s": measured.total_seconds, "measure_s": measured.seconds,
              "train_samples_per_s": result.samples_seen / result.seconds if result.seconds > 0 else None}
    head = record.header(cfg, result.status, member.overrides, member.experiment)
    metrics = record.trained(head, model, data, result, measured, timing, setup.device)
    if result.status == record.COMPLETED:
        _measure_kept_epochs(setup, metrics)
    return metrics


def _measure_kept_epochs(setup: RunSetup, metrics: dict) -> None:
    """The measure set on the weights kept after each of ``trainer.save_epochs`` (metrics.json at_epochs)."""
    import copy

    cfg = setup.cfg
    kept = [e for e in sorted(set(cfg.trainer.save_epochs))  # a file past the last epoch is an earlier attempt's
            if e <= metrics["final"]["epochs"] and (setup.run_dir / epoch_weights(e)).exists()]
    missed = [e for e in sorted(set(cfg.trainer.save_epochs)) if e not in kept]
    if missed and cfg.trainer.save_weights:
        metrics["notes"].append(f"trainer.save_epochs: no weights after epoch(s) {missed}: training ended at epoch "
                                f"{metrics['final']['epochs']}")
    model = copy.deepcopy(setup.model)
    for epoch in kept:
        model.load_state_dict(torch.load(setup.run_dir / epoch_weights(epoch), map_location=setup.device,
                                         weights_only=True))
        results = measures.compute_measures(cfg.measure, model, setup.init_state, setup.data,
                                            remeasure.training_record(metrics, str(epoch)))
        record.add_measures(metrics, results, str(epoch))


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device", name, "CUDA is not available on this machine; use auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _num_outputs(model: torch.nn.Module, data) -> int:
    with torch.no_grad():
        was_training = model.training
        model.eval()
        out = model(data.x_train[:2])
        model.train(was_training)
    return out.shape[-1]


def _overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra (tests calling train() directly)
        return []


def _choice(group: str) -> str | None:
    try:
        return HydraConfig.get().runtime.choices.get(group)
    except ValueError:
        return None


def _log_summary(metrics: dict) -> None:
    f = metrics["final"]
    acc = "" if f["train_acc"] is None else \
        f" train_acc={f['train_acc']:.4f} test_acc={f['test_acc']:.4f} gap={f['gen_gap']:.4f}"
    log.info("%s %s: epochs=%d steps=%d train_loss=%.4g test_loss=%.4g%s (%.1fs, %.0f samples/s)",
             metrics["status"], metrics["run_id"], f["epochs"], f["steps"], f["train_loss"], f["test_loss"], acc,
             metrics["timing"]["total_s"], metrics["timing"]["train_samples_per_s"] or 0)
