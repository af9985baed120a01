"""What a run minimises and how it scores: the loss follows the task and ``trainer.loss``.

- classification with several outputs: cross-entropy on logits (``trainer.loss=cross_entropy``, the
  default) or the squared loss on one-hot targets, ½‖f(x) − e_y‖² (``trainer.loss=squared``, as Belkin
  et al. 2019 train for double descent); either way a sample is correct when its largest output is its class;
- classification with one output (S5's 2-class CNN): BCE/2 on the sigmoid of that output;
- regression: MSE/2.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gen.config.base import ConfigError
from gen.data.bundle import DataBundle

LOSSES = ("cross_entropy", "squared")  # trainer.loss: the classification losses a config chooses from


@dataclass(frozen=True)
class Objective:
    kind: str  # "cross_entropy" | "squared" | "binary" | "mse"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.kind == "cross_entropy":
            return F.cross_entropy(outputs, targets, reduction=reduction)
        if self.kind == "binary":
            probs = torch.sigmoid(outputs.squeeze(-1))
            return 0.5 * F.binary_cross_entropy(probs, targets.to(probs.dtype), reduction=reduction)
        if self.kind == "squared":  # one-hot by comparison: F.one_hot checks its input's range (no vmap)
            classes = torch.arange(outputs.shape[-1], device=outputs.device)
            targets = (targets.unsqueeze(-1) == classes).to(outputs.dtype)
        per_sample = 0.5 * (outputs - targets).pow(2).sum(-1)
        return per_sample.mean() if reduction == "mean" else per_sample.sum() if reduction == "sum" else per_sample

    def member_losses_and_grad(self, outputs: torch.Tensor,
                               targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For K members' outputs ``[K, B, ...]`` and targets ``[K, B, ...]`` (gen.training.lockstep):
        each member's mean loss over its batch ``[K]``, and the gradient of their sum with respect to
        the outputs (each member's own).  Cross-entropy by hand with the kernels autograd runs for a
        run's own mean loss (the negative log-likelihood's gradient, -1/B at each target, through the
        log-softmax's backward): the same gradient bit for bit, in about 2/3 of the time autograd's
        graph of the loss takes on a small batch (8 × 64 × 10 outputs); the other kinds by autograd."""
        members, batch = targets.shape[:2]
        if self.kind != "cross_entropy":
            outputs = outputs.detach().requires_grad_()
            with torch.enable_grad():
                per_sample = self.loss(outputs.flatten(0, 1), targets.flatten(0, 1), reduction="none")
                losses = per_sample.view(members, -1).mean(1)
                grad, = torch.autograd.grad(losses.sum(), outputs)
            return losses.detach(), grad
        with torch.no_grad():
            log_probs = torch.log_softmax(outputs, -1)
            per_sample = F.nll_loss(log_probs.flatten(0, 1), targets.flatten(), reduction="none")
            seed = torch.zeros_like(log_probs).scatter_(-1, targets.unsqueeze(-1), -1.0).div_(batch)
            return per_sample.view(members, -1).mean(1), torch._log_softmax_backward_data(seed, log_probs, -1,
                                                                                           log_probs.dtype)

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        """Per-sample correctness (bool), or None where accuracy is undefined (regression)."""
        if self.kind in ("cross_entropy", "squared"):
            return outputs.argmax(-1) == targets
        if self.kind == "binary":
            return (outputs.squeeze(-1) > 0).long() == targets
        return None

    @property
    def has_accuracy(self) -> bool:
        return self.kind != "mse"


def objective_for(data: DataBundle, num_model_outputs: int, loss: str = "cross_entropy") -> Objective:
    """The objective of a model with ``num_model_outputs`` outputs on ``data``; ``loss`` is ``trainer.loss``."""
    if data.task == "regression":
        if loss != "cross_entropy":
            raise ConfigError("trainer.loss", loss, f"a regression task ({data.name}) trains on MSE/2; "
                              "leave trainer.loss at cross_entropy")
        return Objective("mse")
    if num_model_outputs == 1:
        if loss != "cross_entropy":
            raise ConfigError("trainer.loss", loss, "a one-output classifier trains on BCE/2; the squared loss "
                              "needs one output per class")
        return Objective("binary")
    return Objective(loss)
