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
(or that diverges by gen.training.divergence's rule, judged per member at its evaluations) is frozen at that
point: ``p ← p_old`` from then on, and its record ends there, as it would alone.
Epochs, evaluation, stopping, divergence, checkpoints and the record are the one loop's
(gen.training.loop.fit); this module is only its step for K members.

Not supported (a ConfigError says so): models with buffers or dropout (batch-norm statistics and
dropout masks are per-run state vmap does not carry), SAM, bf16, per-step trajectory tracking,
data augmentation (per-run crops and flips) and optimizers outside :data:`ELEMENTWISE`.  Each member
checkpoints into its own folder what it would hold alone (its weights, its slice of the optimizer state,
its shuffle and RNGs), so a preempted group resumes together, or a member alone, from where it stopped.
"""
import copy
import logging
import time

import torch
import torch.nn as nn
from torch.func import functional_call, grad_and_value, vmap

from gen.training import checkpoint
from gen.training.optimizers import build_optimizer, uses_sam
from gen.config import ConfigError
from gen.training.loop import Trainer, set_cpu_threads

log = logging.getLogger(__name__)

# Optimizers whose update is elementwise and linear in the learning rate (see the module docstring).
ELEMENTWISE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad)


class Lockstep:
    """The step of :func:`gen.training.loop.fit` for K members: one vmapped gradient, one optimizer over
    the stacked weights.  Member ``k``'s model and optimizer are brought up to date from the stack
    (:meth:`sync_weights`, :meth:`sync_optimizers`) before it is evaluated or checkpointed, so its
    checkpoint is the one it would write alone, and the stack is built from the members' own states,
    so a group resumes from its members' checkpoints."""

    def __init__(self, trainers: list[Trainer], run_cfg):
        """``run_cfg``: the first member's config (the optimizer is built from it)."""
        check_supported(trainers, run_cfg)
        self.trainers = trainers
        lead = trainers[0]
        self.objective = lead.objective
        self.names = [name for name, _ in lead.model.named_parameters()]
        self.stacked = _StackedParameters([list(t.model.parameters()) for t in trainers])
        self.optimizer = build_optimizer(run_cfg.optimizer, self.stacked)
        _load_stacked_state(self.optimizer, [t.optimizer for t in trainers], [not t.finished() for t in trainers])
        self.device = lead.data.x_train.device
        # which members still train: a host list for the loop (no device sync per step), a device mask
        self.running = [True] * len(trainers)
        self.running_mask = torch.ones(len(trainers), dtype=torch.bool, device=self.device)
        self.lr_scale = torch.ones(len(trainers), device=self.device)
        self.same_rate = True
        # label corruptions change y alone: x and y are each kept once when every member shares them
        self.x_train, self.x_offsets = _concat_members([t.data.x_train for t in trainers])
        self.y_train, self.y_offsets = _concat_members([t.data.y_train for t in trainers])
        shape_model = copy.deepcopy(lead.model).to("meta")  # the architecture; weights come per call

        def loss(params, x, y):
            return self.objective.loss(functional_call(shape_model, params, (x,)), y)

        self.gradients = vmap(grad_and_value(loss))
        if self.device.type == "cpu":
            set_cpu_threads()

    def run_epoch(self, running: list[Trainer]) -> list[bool]:
        """What remains of the current epoch for every running member (they stand at one batch: see
        gen.run); for each, whether its losses stayed finite."""
        self._set_running(running)
        n = len(self.trainers[0].data.x_train)
        for trainer in running:
            if trainer.epoch_perm is None:
                trainer.epoch_perm = torch.randperm(n, generator=trainer.generator).to(self.device)
                trainer.batch_index = 0
        idle = torch.arange(n, device=self.device)  # frozen members' batches: computed, never applied
        perms = torch.stack([t.epoch_perm if self.running[k] else idle for k, t in enumerate(self.trainers)])
        bs, lead = running[0].batch_size, running[0]
        losses = []
        params = self.stacked.as_dict(self.names)
        start = time.perf_counter()
        try:
            for i in range(lead.batch_index * bs, n, bs):
                index = perms[:, i:i + bs]
                xb, yb = _take(self.x_train, index + self.x_offsets), _take(self.y_train, index + self.y_offsets)
                grads, loss = self.gradients(params, xb, yb)
                self._update(grads)
                losses.append(loss)
                for trainer in running:
                    trainer.record.step += 1
                    trainer.record.samples_seen += index.shape[1]
                    trainer.batch_index += 1
                if checkpoint.requested():
                    raise checkpoint.Interrupted(f"preempted at epoch {lead.record.epoch + 1}, step "
                                                 f"{lead.record.step} (lockstep ×{len(running)})")
                if lead.out_of_budget():
                    break
        finally:
            for trainer in running:
                trainer.record.seconds += time.perf_counter() - start
        sums = torch.stack(losses).sum(0) if losses else torch.zeros(len(self.trainers), device=self.device)
        finite = torch.isfinite(sums).tolist()
        return [finite[self.trainers.index(t)] for t in running]

    def _set_running(self, running: list[Trainer]) -> None:
        """Freeze the members that stopped; scale each running member's step by its own learning rate
        against the one the stacked optimizer takes (the first running member's, from its schedule)."""
        self.running = [t in running for t in self.trainers]
        self.running_mask.copy_(torch.tensor(self.running))
        rates = [t.optimizer.param_groups[0]["lr"] for t in self.trainers]
        reference = rates[self.running.index(True)]
        for group in self.optimizer.param_groups:
            group["lr"] = reference
        self.same_rate = all(rate == reference for rate, on in zip(rates, self.running) if on)
        self.lr_scale.copy_(torch.tensor([rate / reference for rate in rates]))

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

    @torch.no_grad()
    def sync_weights(self, trainers: list[Trainer]) -> None:
        for trainer in trainers:
            k = self.trainers.index(trainer)
            for own, stacked in zip(trainer.model.parameters(), self.stacked.parameters_list):
                own.copy_(stacked[k])

    def sync_optimizers(self, trainers: list[Trainer]) -> None:
        """Each member's optimizer state: its slice of the stacked optimizer's."""
        stacked = self.optimizer.state_dict()
        for trainer in trainers:
            k = self.trainers.index(trainer)
            own = trainer.optimizer.state_dict()
            own["state"] = {i: {key: _member_slice(value, k, self.stacked.parameters_list[i])
                                for key, value in state.items()} for i, state in stacked["state"].items()}
            trainer.optimizer.load_state_dict(own)


def _load_stacked_state(optimizer, members: list, running: list[bool]) -> None:
    """The stacked optimizer's state from the members' (resumed) optimizers: per-weight tensors
    stacked, per-tensor scalars (Adam's step) from the first running member.  Fresh members: none."""
    states = [m.state_dict()["state"] for m in members]
    reference = states[running.index(True)] if any(running) else states[0]
    if not reference:
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    stacked = optimizer.state_dict()
    stacked["state"] = {}
    for i, values in reference.items():
        stacked["state"][i] = {
            key: torch.stack([s.get(i, reference[i]).get(key, value) for s in states])
            if torch.is_tensor(value) and value.dim() > 0 and value.shape == params[i].shape[1:] else value
            for key, value in values.items()}
    optimizer.load_state_dict(stacked)


def _member_slice(value, k: int, stacked_param: torch.Tensor):
    if torch.is_tensor(value) and value.shape == stacked_param.shape:
        return value[k].clone()
    return value.clone() if torch.is_tensor(value) else value


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
