"""S5's trajectory measures (Loukas et al. 2021), all on the first-layer bias b.

The first-layer bias is the ``bias`` of the first module (in registration order) that owns a
trainable one: S5's input bias (``model.input_bias.bias``), else the first Linear/Conv bias.

Tracked per optimizer step inside the training loop, only when a trajectory measure is configured
(``watch_trajectory`` returns None otherwise, so training pays nothing):
- trajectory length of an epoch: Σ_t ‖b_t − b_{t−1}‖ / (η_{t−1}·ε_{t−1}), with η the learning rate
  of the step and ε the batch's mean prediction error ‖ŷ − y‖ before it (ŷ the model's output
  after its link: identity for regression, sigmoid for one logit, softmax with y one-hot); steps
  with ε = 0 move nothing and add nothing.  ``bias_trajectory`` is the sum over all epochs.
- variance of an epoch: mean_t ‖b_t − b̄‖² / η_t², b̄ the epoch's mean bias; ``bias_variance`` is
  the mean over epochs.
Both per-epoch values go into that epoch's history row (``bias_trajectory_epoch``,
``bias_variance_epoch``).  Computed at the end:
- ``bias_distance_init`` ‖b_T − b_0‖;
- ``lipschitz``: the local Lipschitz constant at the training points, ‖∂f/∂x‖_2 (for a ReLU net
  exactly ‖W_L S_{L−1} … S_1 W_1‖ with S the activation pattern at x), averaged over the
  subsample; ``lipschitz_max`` its maximum.
"""
import torch
import torch.func as tf
import torch.nn as nn
from omegaconf import DictConfig

from gen.measures.registry import MEASURES, NotApplicable, measure

EPOCH_KEYS = ("bias_trajectory_epoch", "bias_variance_epoch")


def first_layer_bias(model: nn.Module) -> str | None:
    """Name of the first trainable ``bias`` parameter, by module registration order."""
    for module_name, module in model.named_modules():
        bias = module._parameters.get("bias")
        if bias is not None and bias.requires_grad:
            return f"{module_name}.bias" if module_name else "bias"
    return None


def watch_trajectory(measure_cfg: DictConfig | dict | None, model: nn.Module,
                     loss: str = "cross_entropy") -> "BiasWatch | None":
    """A watch on the bias when the set lists a measure that needs one; None (zero cost) otherwise.
    ``loss``: ``trainer.loss`` (a squared-loss classifier's link is the identity, not the softmax)."""
    names = list((measure_cfg or {}).get("names") or [])
    if not any(MEASURES[n].needs_trajectory for n in names if n in MEASURES):
        return None
    return BiasWatch(model, identity_link=loss == "squared")


def prediction_error(outputs: torch.Tensor, targets: torch.Tensor, identity_link: bool = False) -> torch.Tensor:
    """Mean over the batch of ‖ŷ − y‖, ŷ the output after the objective's link (``identity_link``: the
    squared loss on one-hot targets, whose ŷ is the output itself)."""
    outputs = outputs.detach().float()
    if targets.is_floating_point():  # regression
        residual = outputs - targets.reshape(outputs.shape)
    elif identity_link:
        residual = outputs - nn.functional.one_hot(targets, outputs.shape[-1]).float()
    elif outputs.shape[-1] == 1:     # one logit: BCE on its sigmoid
        residual = torch.sigmoid(outputs[:, 0]) - targets.float()
        return residual.abs().mean()
    else:
        residual = torch.softmax(outputs, dim=-1) - nn.functional.one_hot(targets, outputs.shape[-1]).float()
    return residual.flatten(1).norm(dim=1).mean()


class BiasWatch:
    """Per-step bookkeeping of the first-layer bias; every sum stays on the device (no sync per step)."""

    _STATE = ("name", "epoch_lengths", "epoch_variances", "steps", "previous", "anchor", "length", "sum_b",
              "sum_w", "sum_wb", "sum_wbb")

    def __init__(self, model: nn.Module, identity_link: bool = False):
        self.name = first_layer_bias(model)  # None: nothing to track (the measures say so)
        self.identity_link = identity_link
        self.epoch_lengths: list[float] = []
        self.epoch_variances: list[float] = []
        self.steps = 0
        if self.name is not None:
            self.previous = self._bias(model)
            self.device = self.previous.device
            self._start_epoch()

    def _bias(self, model: nn.Module) -> torch.Tensor:
        return model.get_parameter(self.name).detach().double().clone()

    def _start_epoch(self) -> None:
        self.anchor = self.previous                       # b at the epoch's start centres the sums
        self.steps = 0
        self.length = self.previous.new_zeros(())         # Σ ‖Δb‖ / (η ε)
        self.sum_b = torch.zeros_like(self.previous)      # Σ d_t, with d = b − anchor
        self.sum_w = 0.0                                  # Σ 1/η²
        self.sum_wb = torch.zeros_like(self.previous)     # Σ d_t / η²
        self.sum_wbb = self.previous.new_zeros(())        # Σ ‖d_t‖² / η²

    @torch.no_grad()
    def after_step(self, model: nn.Module, lr: float, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if self.name is None:
            return
        bias = self._bias(model)
        error = prediction_error(outputs, targets, self.identity_link).double()
        moved = (bias - self.previous).norm()
        self.length += torch.where(error > 0, moved / (lr * error.clamp_min(1e-300)), torch.zeros_like(moved))
        d = bias - self.anchor
        weight = 1.0 / lr ** 2
        self.steps += 1
        self.sum_b += d
        self.sum_w += weight
        self.sum_wb += weight * d
        self.sum_wbb += weight * d.pow(2).sum()
        self.previous = bias

    def end_epoch(self) -> dict[str, float]:
        if self.name is None or self.steps == 0:
            return {}
        mean = self.sum_b / self.steps
        variance = (self.sum_wbb - 2 * (mean * self.sum_wb).sum() + mean.pow(2).sum() * self.sum_w) / self.steps
        row = {"bias_trajectory_epoch": self.length.item(), "bias_variance_epoch": max(variance.item(), 0.0)}
        self.epoch_lengths.append(row["bias_trajectory_epoch"])
        self.epoch_variances.append(row["bias_variance_epoch"])
        self._start_epoch()
        return row

    def state_dict(self) -> dict:
        state = {key: getattr(self, key) for key in self._STATE if hasattr(self, key)}
        return {k: (v.cpu().clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}

    def load_state_dict(self, state: dict) -> None:
        device = getattr(self, "device", torch.device("cpu"))
        for key, value in state.items():
            setattr(self, key, value.to(device) if isinstance(value, torch.Tensor) else value)


# ---- the measures ------------------------------------------------------------------------------
def _watch(ctx) -> BiasWatch:
    watch = getattr(ctx.record, "trajectory", None)
    if watch is None:
        raise NotApplicable("needs per-step tracking during training (list it in measure.names before training)")
    if watch.name is None:
        raise NotApplicable("the network has no trainable first-layer bias")
    if not watch.epoch_lengths:
        raise NotApplicable("no finished epoch was tracked")
    return watch


@measure("bias_trajectory", needs_trajectory=True)
def bias_trajectory(ctx) -> float:
    return sum(_watch(ctx).epoch_lengths)


@measure("bias_variance", needs_trajectory=True)
def bias_variance(ctx) -> float:
    variances = _watch(ctx).epoch_variances
    return sum(variances) / len(variances)


@measure("bias_distance_init")
def bias_distance_init(ctx) -> float:
    name = first_layer_bias(ctx.model)
    if name is None:
        raise NotApplicable("the network has no trainable first-layer bias")
    if ctx.init_state is None or name not in ctx.init_state:
        raise NotApplicable("no first-layer bias at initialisation was given")
    now = ctx.model.get_parameter(name).detach().double()
    return (now - ctx.init_state[name].to(now.device).double()).norm().item()


def input_jacobian_norms(ctx) -> torch.Tensor:
    """‖∂f/∂x‖_2 at every point of the subsample."""
    def compute():
        twin, (x, _) = ctx.twin, ctx.sample

        def one(sample):
            return twin(sample[None])[0].float()

        jacobian = tf.vmap(tf.jacrev(one))
        with torch.no_grad():
            width = one(x[0]).numel()
        chunk = max(1, min(ctx.params.batch_size, 2 ** 26 // (width * x[0].numel())))
        norms = []
        for i in range(0, len(x), chunk):
            batch = x[i:i + chunk]
            jac = jacobian(batch).reshape(len(batch), width, -1).double()
            norms.append(_spectral_norms(jac))
        return torch.cat(norms)
    return ctx.shared("input_jacobian_norms", compute)


def _spectral_norms(matrices: torch.Tensor) -> torch.Tensor:
    """‖J‖_2 of each matrix in a batch: the root of the top eigenvalue of its Gram matrix on the
    shorter side (outputs × outputs for a classifier), far cheaper than an SVD of J itself."""
    gram = matrices @ matrices.mT if matrices.shape[1] <= matrices.shape[2] else matrices.mT @ matrices
    return torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0).sqrt()


@measure("lipschitz")
def lipschitz(ctx) -> float:
    return input_jacobian_norms(ctx).mean().item()


@measure("lipschitz_max")
def lipschitz_max(ctx) -> float:
    return input_jacobian_norms(ctx).max().item()
