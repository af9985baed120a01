"""``trainer.ensemble=K``: K runs of one shape trained in lockstep, one step for all of them.

Each member is first built exactly as it would be alone (its seed's initial weights, its own data
and corruption, its own shuffle generator and ``Trainer``); then one step computes every member's
gradient at once and one optimizer updates the stacked weights (``[K, ...]``, one tensor per
weight of the model).  The gradient is computed by gen.training.stacked's batched products and
hand-written backward for a chain of Linear layers (``fc``, ``mlp``) and by ``torch.func.vmap``
for any other model.  A small net on one CPU thread spends most of a step in per-operation
overhead, which the stack shares K ways.  On CPU a group uses its threads (gen.training.loop.cpu_threads:
up to one per member) by splitting its members into one part per thread, each part a stack of its
own trained in its own thread on one intra-op thread, the parts kept at one step.  A step's products
at small widths (8 × 64×784×64 at H = 64) gain little from a second intra-op thread: with two, an
epoch's main thread still ran 0.28 s of the 0.32 s it ran alone, its helper another 0.2 s, so wall
time hardly moved; two parts of 4 ran an epoch in 0.22 s against 0.32 s for one part of 8 on one
thread, each part's thread busy 0.20 s (fc H = 64, 10,000 images, load average 1.8).  The speed
benchmark (``--only ensemble``; 8 runs one after another on one thread each, against the group on
two threads and on one): 3.18×, 2.01×, 1.93× at H = 64, 256, 1024 on 2 quiet cores (the README's
table, benchmarks/results/vm-20261203-lockstep-parts.json); with the other core busy the second part's
thread waits, and the gain falls to the one-thread figures (vm-20261203-lockstep-loaded-*.json).
Results do not depend on the split but for a member whose learning rate differs from its part's first
member's (below): its update is rescaled from that member's, to float rounding.

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
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import torch
import torch.nn as nn
from torch.func import functional_call, grad_and_value, vmap

from gen.training import checkpoint, stacked, stopping
from gen.training.optimizers import build_optimizer, uses_sam
from gen.config import ConfigError
from gen.training.loop import Trainer, set_cpu_threads

log = logging.getLogger(__name__)

# Optimizers whose update is elementwise and linear in the learning rate (see the module docstring).
ELEMENTWISE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad)


class Lockstep:
    """K members' epochs for :func:`gen.training.loop.fit`.  The members are split into parts, one per
    CPU thread the group is given (``torch.get_num_threads()``; one part on a GPU), and each part
    (:class:`_Part`) takes one gradient computation (stacked or vmapped) and one optimizer step over
    its stacked weights per step.  Parts run side by side, each in its own thread on one intra-op
    thread, and keep pace (:class:`_Pace`): they stop after the same step.  When an epoch ends (or is
    interrupted), each member's own model and optimizer are brought up to date from its part, so it
    is evaluated and checkpointed as it would be alone; a part is built from its members' own states,
    so a group resumes from its members' checkpoints, and is rebuilt when the thread count changes."""

    def __init__(self, trainers: list[Trainer], run_cfg):
        """``run_cfg``: the first member's config (the optimizer is built from it)."""
        check_supported(trainers, run_cfg)
        self.trainers, self.run_cfg = trainers, run_cfg
        self.device = trainers[0].data.x_train.device
        if self.device.type == "cpu":
            set_cpu_threads(len(trainers))
        self.count = self._part_count()
        self.parts = self._split(self.count)

    def _part_count(self) -> int:
        """Parts the group trains in: one per intra-op thread torch has now (up to one per member) on
        CPU, where the small products of a step split over threads cost more than they save; one on a GPU."""
        return max(1, min(torch.get_num_threads(), len(self.trainers))) if self.device.type == "cpu" else 1

    def _split(self, count: int) -> list["_Part"]:
        size = -(-len(self.trainers) // count)
        return [_Part(self.trainers[i:i + size], self.run_cfg) for i in range(0, len(self.trainers), size)]

    def train_epoch(self, running: list[Trainer]) -> list[bool]:
        """What remains of the current epoch for every running member (they stand at one batch: see
        gen.run); for each, whether its losses stayed finite.  Each member's model and optimizer hold
        its part of the stack afterwards, also when a stop request interrupts the epoch."""
        count = self._part_count()
        if count != self.count:  # the members hold their state: the parts are built anew from it
            self.count, self.parts = count, self._split(count)
        n = len(self.trainers[0].data.x_train)
        for trainer in running:
            if trainer.epoch_perm is None:
                trainer.epoch_perm = torch.randperm(n, generator=trainer.generator).to(self.device)
                trainer.batch_index = 0
        active = [(part, [t for t in part.trainers if t in running]) for part in self.parts]
        active = [(part, members) for part, members in active if members]
        lead = running[0]
        bs = lead.batch_size
        first, pace = lead.batch_index * bs, _Pace(lead.record.step, lead.max_steps)
        finite: dict[int, bool] = {}
        start = time.perf_counter()
        try:
            self._run(active, first, n, bs, pace, finite)
        finally:  # every member's record at once (the same steps and samples for all), and its own state
            seconds, samples = time.perf_counter() - start, min(first + pace.taken * bs, n) - first
            for trainer in running:
                trainer.record.step += pace.taken
                trainer.record.samples_seen += samples
                trainer.record.seconds += seconds
                trainer.batch_index += pace.taken
            for part, members in active:
                part.write_back(members)
        if pace.interrupted:
            raise checkpoint.Interrupted(f"preempted at epoch {lead.record.epoch + 1}, step {lead.record.step} "
                                         f"(lockstep ×{len(running)})")
        return [finite[id(t)] for t in running]

    def _run(self, active: list, first: int, n: int, bs: int, pace: "_Pace", finite: dict) -> None:
        """The parts' epochs: the first on this thread (it asks for stop requests), the others each in a
        thread of its own; every part on one intra-op thread while they run side by side."""
        (lead_part, lead_members), others = active[0], active[1:]
        if not others:
            finite.update(lead_part.run(lead_members, first, n, bs, pace, lead=True))
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:  # threads for one epoch: none outlives the group's training
            with ThreadPoolExecutor(len(others), thread_name_prefix="lockstep") as pool:
                followers = [pool.submit(_on_one_thread, part.run, members, first, n, bs, pace, False)
                             for part, members in others]
                try:
                    finite.update(lead_part.run(lead_members, first, n, bs, pace, lead=True))
                finally:  # the others stop where the lead did, also when it failed
                    pace.end()
                    wait(followers)
                for follower in followers:
                    finite.update(follower.result())  # a part's error, raised here
        finally:
            torch.set_num_threads(threads)


def _on_one_thread(function, *args):
    torch.set_num_threads(1)  # this thread's own intra-op setting (OpenMP's and MKL's are per thread)
    return function(*args)


class _Pace:
    """Keeps a group's parts at one step: the lead part (on the calling thread) asks for stop requests
    after each step, as a run alone does, and no other part takes a step the lead has not taken, so
    that every part stops after the same step."""

    def __init__(self, step: int, max_steps: int | None):
        self.step, self.max_steps = step, max_steps  # the lead member's steps before this epoch; its budget
        self.taken = 0                 # steps the lead part has taken this epoch
        self.stop: int | None = None   # the step after which every part stops
        self.interrupted = False       # a stop request was seen
        self.condition = threading.Condition()

    def lead_took(self) -> bool:
        """The lead part took a step; True if every part stops after it (a stop request, the budget)."""
        self.interrupted = checkpoint.requested()
        with self.condition:
            self.taken += 1
            if self.interrupted or stopping.out_of_budget(self.step + self.taken, self.max_steps):
                self.stop = self.taken
            self.condition.notify_all()
        return self.stop is not None

    def end(self) -> None:
        """The lead part's epoch ended (or failed): the others stop where it did (at the latest)."""
        with self.condition:
            if self.stop is None:
                self.stop = self.taken
            self.condition.notify_all()

    def may_take(self, step: int) -> bool:
        """Whether a following part takes its step number ``step`` (from 0), once the lead has taken it."""
        with self.condition:
            self.condition.wait_for(lambda: self.taken > step or self.stop is not None)
            return self.stop is None or step < self.stop


class _Part:
    """Some members of a group trained as one stack: their weights stacked (``[k, ...]``), one gradient
    computation and one optimizer step over the stack per step."""

    def __init__(self, trainers: list[Trainer], run_cfg):
        self.trainers = trainers
        lead = trainers[0]
        self.objective = lead.objective
        self.names = [name for name, _ in lead.model.named_parameters()]
        self.stacked = _StackedParameters([list(t.model.parameters()) for t in trainers])
        self.optimizer = build_optimizer(run_cfg.optimizer, self.stacked)
        _load_stacked_state(self.optimizer, [t.optimizer for t in trainers], [not t.finished() for t in trainers])
        self.device = lead.data.x_train.device
        self.running = [True] * len(trainers)  # which members still train (a host list: no device sync per step)
        self.scaled: torch.Tensor | None = None  # members whose step is rescaled after the shared one...
        self.scale = torch.ones(0)               # ...by these factors (their learning rate over the shared one)
        self.frozen: torch.Tensor | None = None  # members that no longer train (their weights stay)
        # label corruptions change y alone: x and y are each kept once when every member shares them
        self.x_train, self.x_offsets = _concat_members([t.data.x_train for t in trainers])
        self.y_train, self.y_offsets = _concat_members([t.data.y_train for t in trainers])
        self.batch_buffers: tuple[torch.Tensor, torch.Tensor] | None = None
        chain = stacked.chain_of(lead.model)
        self.gradients = self._stacked_gradients(stacked.StackedChain(lead.model, chain)) if chain is not None \
            else self._vmapped_gradients(lead.model)

    def _stacked_gradients(self, chain: stacked.StackedChain):
        """A chain of Linear layers (gen.training.stacked): batched products, one backward for all members
        (the gradient of the sum of the members' losses is each member's own gradient)."""
        params = list(self.stacked.parameters_list)
        losses_and_grad = self.objective.member_losses_and_grad

        def gradients(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            outputs, tape = chain.forward(params, xb)
            losses, grad = losses_and_grad(outputs, yb)
            for p, g in zip(params, chain.backward(params, tape, grad, out=[p.grad for p in params])):
                p.grad = g
            return losses
        return gradients

    def _vmapped_gradients(self, model: nn.Module):
        """Any other model: ``torch.func.vmap`` of the member's gradient over the stacked weights."""
        shape_model = copy.deepcopy(model).to("meta")  # the architecture; weights come per call
        params, names = list(self.stacked.parameters_list), self.names
        as_dict = self.stacked.as_dict(names)

        def loss(weights, x, y):
            return self.objective.loss(functional_call(shape_model, weights, (x,)), y)

        vmapped = vmap(grad_and_value(loss))

        def gradients(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            grads, losses = vmapped(as_dict, xb, yb)
            for p, name in zip(params, names):
                p.grad = grads[name]
            return losses
        return gradients

    def run(self, running: list[Trainer], first: int, n: int, bs: int, pace: _Pace,
            lead: bool) -> dict[int, bool]:
        """The running members' steps over samples ``first:n`` of their epoch's shuffle (drawn), at
        ``pace``: the lead part asks it after each step whether to stop, the others follow it.  For each
        member (by ``id``), whether its losses stayed finite; :meth:`write_back` hands the state back."""
        self._set_running(running)
        idle = torch.arange(n, device=self.device)  # frozen members' batches: computed, never applied
        perms = torch.stack([t.epoch_perm if self.running[k] else idle for k, t in enumerate(self.trainers)])
        x_order, y_order = perms + self.x_offsets, perms + self.y_offsets  # rows of x_train and y_train
        x_batch, y_batch = self._batch_buffers(bs)
        losses = []
        for step, i in enumerate(range(first, n, bs)):
            if not lead and not pace.may_take(step):
                break
            xb = _take(self.x_train, x_order[:, i:i + bs], x_batch)
            yb = _take(self.y_train, y_order[:, i:i + bs], y_batch)
            losses.append(self.gradients(xb, yb))
            self._update()
            if lead and pace.lead_took():
                break
        sums = torch.stack(losses).sum(0) if losses else torch.zeros(len(self.trainers), device=self.device)
        finite = torch.isfinite(sums).tolist()
        return {id(t): finite[k] for k, t in enumerate(self.trainers) if self.running[k]}

    def _batch_buffers(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory for one step's inputs and targets of every member (gathered into by :func:`_take`)."""
        rows = len(self.trainers) * batch_size
        if self.batch_buffers is None or len(self.batch_buffers[0]) != rows:
            self.batch_buffers = tuple(torch.empty(rows, *t.shape[1:], dtype=t.dtype, device=t.device)
                                       for t in (self.x_train, self.y_train))
        return self.batch_buffers

    def _set_running(self, running: list[Trainer]) -> None:
        """Freeze the members that stopped; scale each running member's step by its own learning rate
        against the one the stacked optimizer takes (the first running member's, from its schedule)."""
        self.running = [t in running for t in self.trainers]
        rates = [t.optimizer.param_groups[0]["lr"] for t in self.trainers]
        reference = rates[self.running.index(True)]
        for group in self.optimizer.param_groups:
            group["lr"] = reference
        scaled = [k for k, on in enumerate(self.running) if on and rates[k] != reference]
        frozen = [k for k, on in enumerate(self.running) if not on]
        self.scaled = torch.tensor(scaled, device=self.device) if scaled else None
        self.frozen = torch.tensor(frozen, device=self.device) if frozen else None
        self.scale = torch.tensor([rates[k] / reference for k in scaled], device=self.device)

    def _update(self) -> None:
        """One step of the stacked optimizer; then the members it should not have moved as it did get
        their own: a frozen member its old weights, a member with another learning rate
        ``p_old + (lr_k / lr_0)(p_new − p_old)``.  Only those members' slices are copied, and the others
        are left exactly as the optimizer wrote them."""
        params = self.stacked.parameters_list
        if self.scaled is None and self.frozen is None:
            self.optimizer.step()
            return
        with torch.no_grad():
            frozen = [p.index_select(0, self.frozen) for p in params] if self.frozen is not None else None
            scaled = [p.index_select(0, self.scaled) for p in params] if self.scaled is not None else None
            self.optimizer.step()
            for i, p in enumerate(params):
                if scaled is not None:
                    old = scaled[i]
                    new = p.index_select(0, self.scaled)
                    p.index_copy_(0, self.scaled, old.add_(new.sub_(old).mul_(_per_member(self.scale, p))))
                if frozen is not None:
                    p.index_copy_(0, self.frozen, frozen[i])

    @torch.no_grad()
    def write_back(self, trainers: list[Trainer]) -> None:
        """Each member's weights and optimizer state: its slice of the stacked ones."""
        for trainer in trainers:
            k = self.trainers.index(trainer)
            for own, weight in zip(trainer.model.parameters(), self.stacked.parameters_list):
                own.copy_(weight[k])
        state = self.optimizer.state_dict()["state"]
        for trainer in trainers:
            k = self.trainers.index(trainer)
            own = trainer.optimizer.state_dict()
            own["state"] = {i: {key: _member_slice(value, k, self.stacked.parameters_list[i])
                                for key, value in values.items()} for i, values in state.items()}
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


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` [M] shaped to scale M slices of ``like`` ([M, ...])."""
    return values.view(-1, *[1] * (like.dim() - 1))


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


def _take(samples: torch.Tensor, index: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
    """``samples[index]`` as ``[K, B, ...]``, written into ``buffer`` (memory for K batches of
    ``samples``, kept from step to step: no fresh pages per step); index_select is an order of
    magnitude faster on CPU than advanced indexing with two index tensors."""
    out = torch.index_select(samples, 0, index.flatten(), out=buffer[:index.numel()])
    return out.view(*index.shape, *samples.shape[1:])


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
    if any(t.record.trajectory is not None for t in trainers):
        raise ConfigError("trainer.ensemble", size, "trajectory measures track every step of one run: "
                          "use trainer.ensemble=1 with this measure set")
