"""The training loop, one for K ≥ 1 runs: :func:`fit` over each run's :class:`Trainer`.

A ``Trainer`` is one run's training state (model, optimization, shuffle, record) and what it does
between epochs: book an epoch, evaluate, stop (gen.training.stopping), diverge
(gen.training.divergence), checkpoint.  :func:`fit` trains each epoch of a run alone with its own
:meth:`Trainer.train_epoch`, and of K runs with gen.training.lockstep's :class:`Lockstep`.

One epoch is one shuffle (a single gather of the whole training set) followed by contiguous
slices, so no per-sample Python and no DataLoader sit in the hot path.  Every ``eval_every``
epochs the whole train and test sets are evaluated in large no-grad batches; those rows form the
history, drive the stopping rule and the interpolation record.

Speed (``python benchmarks/speed.py``): a step of a small net takes a fraction of a millisecond,
so the loop itself must add next to nothing: the config is read once (an OmegaConf lookup costs
microseconds), the per-step losses are kept as tensors and summed once per epoch (no ``.item()``,
no device sync, no extra kernel), and the plain step skips SAM's closure.  On CPU, training uses
:func:`cpu_threads` intra-op threads (one by default for a run alone): a small run's GEMMs barely
profit from a second thread, and studies run many jobs side by side, so one thread per job is the
throughput choice.  A lockstep group takes a thread per member up to the usable cores and trains
one part of its members on each (gen.training.lockstep).
"""
import contextlib
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from omegaconf import DictConfig

from gen import atomic
from gen.training import checkpoint, divergence, stopping
from gen.record import COMPLETED, DIVERGED
from gen.data.bundle import DataBundle
from gen.training.objective import Objective
from gen.training.optimizers import Optimization
from gen.training.progress import Progress

log = logging.getLogger(__name__)

# GEN_CPU_THREADS=N sets the intra-op threads of CPU training (0: leave the process's setting as it is).
CPU_THREADS_ENV = "GEN_CPU_THREADS"


def epoch_weights(epoch: int) -> str:
    """The file of the weights kept after ``epoch`` (trainer.save_epochs)."""
    return f"model_epoch_{epoch}.pt"


@dataclass
class TrainingRecord:
    """What training produced, for measures and metrics.json."""
    history: list[dict] = field(default_factory=list)
    interpolation: dict = field(default_factory=lambda: {"reached": False, "epoch": None, "step": None,
                                                         "seconds": None, "test_error": None})
    status: str = COMPLETED      # or DIVERGED
    divergence: dict | None = None  # which rule of gen.training.divergence fired, where
    epoch: int = 0               # finished epochs
    step: int = 0
    seconds: float = 0.0         # training time, evaluations excluded
    samples_seen: int = 0
    split_acc: dict | None = None
    trajectory: Any = None  # gen.measures.trajectory's per-step watcher, when a measure needs one
    last_trajectory_row: dict = field(default_factory=dict)  # its values for the last epoch
    train_size: int = 0
    objective: str = "cross_entropy"  # the loss trained on (gen.training.objective's kind)

    @property
    def final(self) -> dict:
        return self.history[-1]


class Trainer:
    """One run's training: ``cfg`` is its ``trainer`` config, ``generator`` draws its shuffles (and
    augmentations); ``trajectory`` watches every step for a trajectory measure; checkpoints and kept
    weights go to ``run_dir`` (none without one), checked against ``run_id``."""

    def __init__(self, model: nn.Module, data: DataBundle, objective: Objective, optimization: Optimization,
                 cfg: DictConfig, generator: torch.Generator, *, trajectory=None, run_dir: Path | None = None,
                 run_id: str | None = None, augment=None):
        self.model, self.data, self.objective = model, data, objective
        self.augment = augment  # gen.data.augment: applied to training batches only, drawn from `generator`
        self.optimizer, self.scheduler, self.sam = optimization.optimizer, optimization.scheduler, optimization.sam
        self.cfg, self.generator, self.run_dir, self.run_id = cfg, generator, run_dir, run_id
        self.record = TrainingRecord(trajectory=trajectory, train_size=len(data.x_train), objective=objective.kind)
        self.extra_state: dict = {}                   # saved with every checkpoint as is (e.g. init weights)
        self.epoch_perm: torch.Tensor | None = None   # the current epoch's shuffle, while it runs
        self.batch_index = 0                          # next batch of the current epoch
        self.on_evaluation = None                     # called with each history row (gen.tracking's trackers)
        self.track_split = bool(data.corrupted.any())
        device_type = data.x_train.device.type
        self.autocast = (lambda: torch.autocast(device_type, dtype=torch.bfloat16)) \
            if cfg.precision == "bf16" else contextlib.nullcontext
        # Read once: the loop consults these every step, and DictConfig lookups are slow.
        self.batch_size, self.max_steps = int(cfg.batch_size), cfg.max_steps
        self.save_epochs = set(cfg.get("save_epochs") or []) if cfg.get("save_weights", True) else set()
        self.mixed_precision = cfg.precision == "bf16"
        self.chance_loss = divergence.chance_loss(objective.kind, data.num_classes)
        self.divergence_factor = float(cfg.divergence.loss_factor)
        self.divergence_patience = int(cfg.divergence.patience)
        self._pending_rule = divergence.NON_FINITE_LOSS
        if device_type == "cpu":
            set_cpu_threads()

    def fit(self) -> TrainingRecord:
        """Train this run alone: :func:`fit` with one member."""
        fit([self])
        return self.record

    # ---- one epoch, one evaluation: what fit() asks of each member ---------------------------
    def finished(self) -> bool:
        """Nothing left to train: diverged, out of budget, or its stopping rule fired on a fresh evaluation."""
        record = self.record
        if record.status == DIVERGED or record.epoch >= self.cfg.max_epochs or self.out_of_budget():
            return True
        if record.epoch == 0 or record.history[-1]["step"] != record.step:
            return False  # only decide on a fresh evaluation
        last = record.history[-1]
        return stopping.rule_fires(self.cfg.stop, last, record.interpolation["reached"])

    def end_epoch(self, finite: bool) -> bool:
        """Book an epoch its step ran (``finite``: no NaN/inf loss in it); True if training goes on."""
        record = self.record
        record.epoch += 1
        self.epoch_perm = None
        if self.scheduler is not None:
            with warnings.catch_warnings():  # in lockstep this run's own optimizer never steps, by design
                warnings.filterwarnings("ignore", message="Detected call of")
                self.scheduler.step()
        if record.trajectory is not None:
            record.last_trajectory_row = record.trajectory.end_epoch()
        if finite and record.epoch in self.save_epochs and self.run_dir is not None:  # trainer.save_epochs
            atomic.save_torch(self.run_dir / epoch_weights(record.epoch), self.model.state_dict())
        if not finite:
            self.diverge(divergence.NON_FINITE_LOSS)
            return False
        if record.epoch % self.cfg.eval_every == 0 or self.out_of_budget():
            self.evaluate_row()
            if self.check_divergence():
                return False
        return not self.finished()

    def end_training(self) -> None:
        """Evaluate the last epochs if they were not, and judge the final weights (gen.training.divergence)."""
        record = self.record
        if record.history[-1]["step"] != record.step:
            self.evaluate_row()
        if record.status == DIVERGED:
            if record.divergence is None:  # diverge() was called before the final evaluation
                record.divergence = divergence.verdict(self._pending_rule, record.history[-1])
        else:
            self.check_divergence(last=True)

    def diverge(self, rule: str) -> None:
        """Training stops here: ``rule`` fired (recorded once the final evaluation is in)."""
        self.record.status = DIVERGED
        self._pending_rule = rule

    def check_divergence(self, last: bool = False) -> bool:
        """Apply gen.training.divergence to the latest evaluation; True (and the run diverged) if it fires."""
        found = divergence.check(self.record.history, self.model, self.chance_loss,
                                 self.divergence_factor, self.divergence_patience, last)
        if found is not None:
            self.record.status, self.record.divergence = DIVERGED, found
        return found is not None

    def out_of_budget(self) -> bool:
        return stopping.out_of_budget(self.record.step, self.max_steps)

    def train_epoch(self) -> bool:
        """This run's pass over its training set (what remains of it after a resume); False if a loss
        was NaN/inf.  Stops early at the step budget; raises checkpoint.Interrupted on a stop request."""
        data, record = self.data, self.record
        n = len(data.x_train)
        if self.epoch_perm is None:
            self.epoch_perm = torch.randperm(n, generator=self.generator).to(data.x_train.device)
            self.batch_index = 0
        x, y = data.x_train[self.epoch_perm], data.y_train[self.epoch_perm]
        bs = self.batch_size
        losses = []   # detached per-step losses, checked once at the end of the epoch
        trajectory, augment, max_steps = record.trajectory, self.augment, self.max_steps  # locals: read every step
        step = self._step if self.sam or self.mixed_precision or trajectory is not None else self._plain_step
        self.model.train()
        start = time.perf_counter()
        try:
            for i in range(self.batch_index * bs, n, bs):
                xb, yb = x[i:i + bs], y[i:i + bs]
                if augment is not None:
                    xb = augment(xb)
                loss, outputs = step(xb, yb)
                losses.append(loss)
                record.step += 1
                record.samples_seen += len(xb)
                self.batch_index += 1
                if trajectory is not None:
                    trajectory.after_step(self.model, self.optimizer.param_groups[0]["lr"], outputs, yb)
                if checkpoint.requested():
                    raise checkpoint.Interrupted(f"preempted at epoch {record.epoch + 1}, step {record.step}")
                if max_steps is not None and record.step >= max_steps:  # stopping.out_of_budget, inlined
                    break
        finally:
            record.seconds += time.perf_counter() - start
        # One sync per epoch; a NaN/inf in any step's loss makes the sum non-finite.
        return not losses or bool(torch.isfinite(torch.stack(losses).sum()))

    def _plain_step(self, xb: torch.Tensor, yb: torch.Tensor):
        """One fp32 step without SAM or trajectory: the same arithmetic as :meth:`_step`, fewer calls."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.objective.loss(self.model(xb), yb)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), None

    def _step(self, xb: torch.Tensor, yb: torch.Tensor):
        outputs_seen = []

        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                out = self.model(xb)
                loss = self.objective.loss(out.float(), yb)
            loss.backward()
            outputs_seen.append(out.detach())
            return loss

        loss = closure()
        if self.sam:
            self.optimizer.step(closure)
        else:
            self.optimizer.step()
        return loss.detach(), outputs_seen[0]

    # ---- evaluation ------------------------------------------------------------------------
    def evaluate_row(self) -> dict:
        data, record = self.data, self.record
        train_loss, train_correct = evaluate(self.model, data.x_train, data.y_train, self.objective,
                                             self.cfg.eval_batch_size, self.autocast)
        test_loss, test_correct = evaluate(self.model, data.x_test, data.y_test, self.objective,
                                           self.cfg.eval_batch_size, self.autocast)
        row = {"epoch": record.epoch, "step": record.step, "train_loss": train_loss,
               "train_acc": _mean(train_correct), "test_loss": test_loss, "test_acc": _mean(test_correct),
               "lr": self.optimizer.param_groups[0]["lr"], "seconds": record.seconds}
        if self.track_split and train_correct is not None:
            record.split_acc = {"train_clean": _mean(train_correct[~data.corrupted]),
                                "train_corrupted": _mean(train_correct[data.corrupted])}
            row.update({f"split_acc.{k}": v for k, v in record.split_acc.items()})
        if record.trajectory is not None and record.epoch > 0:
            row.update(record.last_trajectory_row)
        record.history.append(row)
        self._note_interpolation(row)
        if self.on_evaluation is not None:  # once per evaluation, outside the steps: the hot loop is untouched
            self.on_evaluation(row)
        return row

    def _note_interpolation(self, row: dict) -> None:
        interp = self.record.interpolation
        if interp["reached"]:
            return
        if stopping.interpolates(row):
            interp.update(reached=True, epoch=row["epoch"], step=row["step"], seconds=row["seconds"],
                          test_error=1.0 - row["test_acc"])

    # ---- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if self.run_dir is not None:
            checkpoint.save(self.run_dir, self.state_dict(), self.run_id)

    def state_dict(self) -> dict:
        record = self.record
        return {
            **self.extra_state,
            "model": self.model.state_dict(), "optimizer": checkpoint.to_plain(self.optimizer.state_dict()),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": checkpoint.rng_states(self.generator),
            "epoch_perm": self.epoch_perm, "batch_index": self.batch_index,
            # the checkpoint's keys keep the names they had when the trajectory watcher was called a
            # tracker, so that checkpoints written before resume
            "tracker": record.trajectory.state_dict() if record.trajectory is not None else None,
            "record": {**{k: getattr(record, k) for k in ("history", "interpolation", "status", "divergence", "epoch",
                                                           "step", "seconds", "samples_seen", "split_acc")},
                       "last_tracker_row": record.last_trajectory_row},
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(checkpoint.from_plain(state["optimizer"]))
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        checkpoint.restore_rng_states(state["rng"], self.generator)
        perm = state["epoch_perm"]
        self.epoch_perm = perm.to(self.data.x_train.device) if perm is not None else None
        self.batch_index = state["batch_index"]
        if self.record.trajectory is not None:
            self.record.trajectory.load_state_dict(state["tracker"])
        for key, value in state["record"].items():
            setattr(self.record, "last_trajectory_row" if key == "last_tracker_row" else key, value)


def fit(trainers: list[Trainer], lockstep=None) -> None:
    """The training loop of K ≥ 1 runs: each epoch, every member still training runs it (one run by
    its own :meth:`Trainer.train_epoch`, several by ``lockstep``, gen.training.lockstep's
    :class:`Lockstep`, which leaves each member's model and optimizer up to date); each member books
    it, evaluates, stops and diverges by its own rules; every member checkpoints into its own folder
    (on schedule and when preemption asks), and a relaunch resumes each from there."""
    for trainer in trainers:
        if not trainer.record.history:
            trainer.evaluate_row()  # the reference of gen.training.divergence's bound
    running = [t for t in trainers if not t.finished()]
    for trainer in trainers:
        if trainer not in running:
            trainer.end_training()
    lead = trainers[0]
    with Progress(lead.cfg.max_epochs, lead.record.epoch, lockstep=len(trainers) if len(trainers) > 1 else 0,
                  enabled=lead.cfg.progress) as bar:
        while running:
            try:
                finite = lockstep.train_epoch(running) if lockstep is not None else [running[0].train_epoch()]
            except checkpoint.Interrupted:
                _save_checkpoints(trainers)
                raise
            going_on = [t for t, ok in zip(running, finite) if t.end_epoch(ok)]
            for trainer in running:
                if trainer not in going_on:
                    trainer.end_training()
            running = going_on
            _report(bar, running or trainers)
            every = lead.cfg.checkpoint_every
            if running and every and running[0].record.epoch % every == 0:
                _save_checkpoints(trainers)


def _save_checkpoints(trainers: list[Trainer]) -> None:
    for trainer in trainers:
        trainer.save_checkpoint()


def _report(bar: Progress, trainers: list[Trainer]) -> None:
    """The bar moves an epoch; the first running member's evaluation of this epoch, if any, is reported."""
    bar.update(1)
    record = trainers[0].record
    row = record.history[-1]
    if row["epoch"] == record.epoch:
        bar.report(record.epoch, loss=row["train_loss"], acc=row["train_acc"], test=row["test_acc"])


def cpu_threads(members: int = 1) -> int:
    """Intra-op threads for CPU training: ``$GEN_CPU_THREADS`` if set (0: leave as is); else 1 for a
    run alone, and for a lockstep group of ``members`` runs one per member up to the cores this
    process may use (it trains one part of its members per thread, side by side; gen sets OpenMP's waiting
    threads to sleep, gen/__init__.py, so a second thread costs little when another process holds a core)."""
    value = os.environ.get(CPU_THREADS_ENV, "").strip()
    if not value:
        return 1 if members == 1 else min(members, usable_cores())
    if not value.isdigit():
        raise ValueError(f"{CPU_THREADS_ENV}={value!r}: expected a whole number of threads (0: leave as is)")
    return int(value)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_cpu_threads(members: int = 1) -> None:
    threads = cpu_threads(members)
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, objective: Objective, batch_size: int,
             autocast=contextlib.nullcontext):
    """Mean loss and per-sample correctness (None for regression) over (x, y), in eval mode."""
    was_training = model.training
    model.eval()
    losses, correct = [], []
    for i in range(0, len(x), batch_size):
        with autocast():
            out = model(x[i:i + batch_size])
        out = out.float()
        losses.append(objective.loss(out, y[i:i + batch_size], reduction="none"))
        c = objective.correct(out, y[i:i + batch_size])
        if c is not None:
            correct.append(c)
    model.train(was_training)
    loss = torch.cat(losses).mean().item() if losses else float("nan")
    return loss, (torch.cat(correct) if correct else None)


def _mean(correct: torch.Tensor | None) -> float | None:
    if correct is None or correct.numel() == 0:
        return None
    return correct.float().mean().item()
