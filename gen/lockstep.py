"""``trainer.ensemble=K``: K runs of one shape trained in lockstep with ``torch.func.vmap``.

Each member is first built exactly as it would be alone (its seed's initial weights, its own data
and corruption, its own shuffle generator and ``Trainer``); then one step computes every member's
gradient in a single vmapped call and one optimizer updates the stacked weights.  A small net on
one CPU thread spends most of a step in per-operation overhead, which the stack shares K ways.

Why the results equal training each run alone (to float tolerance; bit-identical in the tests'
configs): every supported optimizer (:data:`ELEMENTWISE`) updates each weight from that weight's
own gradient and state, so stacking members never mixes them, and its update is linear in the
learning rate, so a member whose rate differs from the first member's scales the step the shared
optimizer took: ``p ← p_old + (lr_k / lr_0)(p_new − p_old)``.  A member whose stopping rule fires
(or that diverges by gen.divergence's rule, judged per member at its evaluations) is frozen at that
point: ``p ← p_old`` from then on, and its record ends there, as it would alone.
Evaluation, stopping, divergence and history are each member's own ``Trainer``'s.

Not supported (a ConfigError says so): models with buffers or dropout (batch-norm statistics and
dropout masks are per-run state vmap does not carry), SAM, bf16, per-step trajectory tracking,
data augmentation (per-run crops and flips) and optimizers outside :data:`ELEMENTWISE`.  Preempted
lockstep runs keep no checkpoint: they start again when relaunched.
"""
import copy
import logging
import time
import warnings

import torch
import torch.nn as nn
from torch.func import functional_call, grad_and_value, vmap
from tqdm import tqdm

from gen import checkpoint, divergence
from gen.record import DIVERGED
from gen.optim import build_optimizer, build_scheduler, uses_sam
from gen.schema import ConfigError
from gen.train import Trainer, set_cpu_threads

log = logging.getLogger(__name__)

# Optimizers whose update is elementwise and linear in the learning rate (see the module docstring).
ELEMENTWISE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad)


class Lockstep:
    """Trains the members' ``Trainer``s together; :meth:`fit` leaves each member's model and record
    as its own ``Trainer.fit`` would."""

    def __init__(self, trainers: list[Trainer], run_cfg):
        """``run_cfg``: the first member's config (the optimizer is built from it)."""
        optimizer_cfg = run_cfg.optimizer
        check_supported(trainers, run_cfg)
        self.trainers = trainers
        lead = trainers[0]
        self.cfg, self.objective = lead.cfg, lead.objective
        self.names = [name for name, _ in lead.model.named_parameters()]
        self.stacked = _StackedParameters([list(t.model.parameters()) for t in trainers])
        self.optimizer = build_optimizer(optimizer_cfg, self.stacked)
        self.scheduler = build_scheduler(optimizer_cfg, self.optimizer, self.cfg.max_epochs)
        device = lead.data.x_train.device
        rates = [t.optimizer.param_groups[0]["lr"] for t in trainers]
        self.lr_scale = torch.tensor([rate / rates[0] for rate in rates], device=device)
        self.same_rate = all(rate == rates[0] for rate in rates)
        # which members still train: a host list for the loop (no device sync per step), a device mask
        self.running = [True] * len(trainers)
        self.running_mask = torch.ones(len(trainers), dtype=torch.bool, device=device)
        # label corruptions change y alone: x and y are each kept once when every member shares them
        self.x_train, self.x_offsets = _concat_members([t.data.x_train for t in trainers])
        self.y_train, self.y_offsets = _concat_members([t.data.y_train for t in trainers])
        shape_model = copy.deepcopy(lead.model).to("meta")  # the architecture; weights come per call

        def loss(params, x, y):
            return self.objective.loss(functional_call(shape_model, params, (x,)), y)

        self.gradients = vmap(grad_and_value(loss))
        if device.type == "cpu":
            set_cpu_threads()

    # ---- the loop -------------------------------------------------------------------------
    def fit(self) -> None:
        members = range(len(self.trainers))
        for k in members:
            trainer = self.trainers[k]
            if not trainer.record.history:
                trainer._evaluate_row()
            if trainer._should_stop():
                self._finish(k)
        bar = tqdm(total=self.cfg.max_epochs, desc=f"epochs (lockstep ×{len(self.trainers)})", unit="ep",
                   disable=not self.cfg.progress, leave=False, dynamic_ncols=True)
        with bar:
            while any(self.running):
                epoch_losses = self._run_epoch()
                for k in self._active_members():
                    self._end_epoch(k, epoch_losses[k])
                bar.update(1)

    def _run_epoch(self) -> torch.Tensor:
        """One pass for every active member; the sum of each member's step losses."""
        members = self._active_members()
        n = len(self.trainers[0].data.x_train)
        perms = torch.stack([torch.randperm(n, generator=t.generator) for t in self.trainers])
        perms = perms.to(self.x_train.device)
        bs = int(self.cfg.batch_size)
        losses = []
        params = self.stacked.as_dict(self.names)
        start = time.perf_counter()
        for i in range(0, n, bs):
            index = perms[:, i:i + bs]
            xb, yb = _take(self.x_train, index + self.x_offsets), _take(self.y_train, index + self.y_offsets)
            grads, loss = self.gradients(params, xb, yb)
            self._update(grads)
            losses.append(loss)
            for k in members:
                self.trainers[k].record.step += 1
                self.trainers[k].record.samples_seen += index.shape[1]
            if checkpoint.requested():
                raise checkpoint.Interrupted("preempted during lockstep training (trainer.ensemble): "
                                             "these runs start again when relaunched")
            if self.trainers[members[0]]._out_of_budget():
                break
        seconds = time.perf_counter() - start
        for k in members:
            self.trainers[k].record.seconds += seconds
        if self.scheduler is not None:
            self.scheduler.step()
        return torch.stack(losses).sum(0)

    def _update(self, grads: dict) -> None:
        params = self.stacked.parameters_list
        for p, name in zip(params, self.names):
            p.grad = grads[name]
        mixing = not self.same_rate or not all(self.running)
        before = [p.detach().clone() for p in params] if mixing else None
        self.optimizer.step()
        if mixing:
            with torch.no_grad():
                for p, old in zip(params, before):
                    scale = self.lr_scale.view(-1, *[1] * (p.dim() - 1))
                    scaled = torch.where(scale == 1, p, old + scale * (p - old))
                    p.copy_(torch.where(self.running_mask.view_as(scale), scaled, old))

    def _end_epoch(self, k: int, epoch_loss: torch.Tensor) -> None:
        """What ``Trainer.fit`` does after an epoch, for member ``k``."""
        trainer, record = self.trainers[k], self.trainers[k].record
        record.epoch += 1
        if trainer.scheduler is not None:  # the member's own schedule: its history's learning rate
            with warnings.catch_warnings():  # its optimizer never steps (the stacked one does), by design
                warnings.filterwarnings("ignore", message="Detected call of")
                trainer.scheduler.step()
        self._load_member(k)
        if not bool(torch.isfinite(epoch_loss)):
            trainer.diverge(divergence.NON_FINITE_LOSS)
            self._finish(k)
            return
        if record.epoch % self.cfg.eval_every == 0 or trainer._out_of_budget():
            trainer._evaluate_row()
            if trainer._check_divergence():
                self._finish(k)
                return
        if trainer._should_stop():
            self._finish(k)

    def _finish(self, k: int) -> None:
        """End member ``k``'s training; its model holds its current weights (see _end_epoch)."""
        self.trainers[k].end_training()  # the last evaluation and gen.divergence's verdict, as alone
        self.running[k] = False
        self.running_mask[k] = False

    def _active_members(self) -> list[int]:
        return [k for k, running in enumerate(self.running) if running]

    @torch.no_grad()
    def _load_member(self, k: int) -> None:
        for own, stacked in zip(self.trainers[k].model.parameters(), self.stacked.parameters_list):
            own.copy_(stacked[k])


class _StackedParameters(nn.Module):
    """Every member's parameters stacked along a new first dimension: what the optimizer updates."""

    def __init__(self, per_member: list[list[nn.Parameter]]):
        super().__init__()
        self.parameters_list = nn.ParameterList(
            nn.Parameter(torch.stack([p.detach() for p in same]).clone()) for same in zip(*per_member))

    def as_dict(self, names: list[str]) -> dict[str, torch.Tensor]:
        """Detached views for ``functional_call``: the optimizer's in-place updates show through."""
        return {name: p.detach() for name, p in zip(names, self.parameters_list)}


def _concat_members(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The members' samples as one tensor, and each member's offset into it (``[K, 1]``): one copy
    when every member holds the same data, else all of them one after another."""
    first, size = tensors[0], len(tensors)
    if all(t is first or torch.equal(t, first) for t in tensors[1:]):
        return first, torch.zeros(size, 1, dtype=torch.long, device=first.device)
    return torch.cat(tensors), torch.arange(size, device=first.device)[:, None] * len(first)


def _take(samples: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``samples[index]`` as ``[K, B, ...]``; index_select is an order of magnitude faster on CPU
    than advanced indexing with two index tensors."""
    return samples.index_select(0, index.flatten()).view(*index.shape, *samples.shape[1:])


def check_supported(trainers: list[Trainer], run_cfg) -> None:
    """A ConfigError for what lockstep training cannot reproduce exactly."""
    size, lead, optimizer_cfg = len(trainers), trainers[0], run_cfg.optimizer
    model = lead.model
    if any(True for _ in model.buffers()) or any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules()):
        raise ConfigError("trainer.ensemble", size, f"lockstep training needs a model without batch norm or "
                          f"dropout; model={run_cfg.model.name} has them: use trainer.ensemble=1")
    if uses_sam(optimizer_cfg):
        raise ConfigError("trainer.ensemble", size, "SAM is not supported in lockstep: use trainer.ensemble=1")
    if not isinstance(lead.optimizer, ELEMENTWISE):
        allowed = ", ".join(c.__name__ for c in ELEMENTWISE)
        raise ConfigError("trainer.ensemble", size, f"optimizer={optimizer_cfg.name} is not supported in lockstep "
                          f"(supported: {allowed}): use trainer.ensemble=1")
    if lead.cfg.precision != "32":
        raise ConfigError("trainer.ensemble", size, "lockstep training runs in fp32: use trainer.precision=32 "
                          "or trainer.ensemble=1")
    if any(t.augment is not None for t in trainers):
        raise ConfigError("trainer.ensemble", size, f"data augmentation (augment={run_cfg.augment.name}) is not "
                          f"supported in lockstep: use augment=none or trainer.ensemble=1")
    if any(t.record.tracker is not None for t in trainers):
        raise ConfigError("trainer.ensemble", size, "trajectory measures track every step of one run: "
                          "use trainer.ensemble=1 with this measure set")
