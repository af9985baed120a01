"""What a run minimises and how it scores: the loss follows the task.

- classification with several outputs: cross-entropy on logits;
- classification with one output (S5's 2-class CNN): BCE/2 on the sigmoid of that output;
- regression: MSE/2.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gen.data.bundle import DataBundle


@dataclass(frozen=True)
class Objective:
    kind: str  # "cross_entropy" | "binary" | "mse"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.kind == "cross_entropy":
            return F.cross_entropy(outputs, targets, reduction=reduction)
        if self.kind == "binary":
            probs = torch.sigmoid(outputs.squeeze(-1))
            return 0.5 * F.binary_cross_entropy(probs, targets.to(probs.dtype), reduction=reduction)
        per_sample = 0.5 * (outputs - targets).pow(2).sum(-1)
        return per_sample.mean() if reduction == "mean" else per_sample.sum() if reduction == "sum" else per_sample

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        """Per-sample correctness (bool), or None where accuracy is undefined (regression)."""
        if self.kind == "cross_entropy":
            return outputs.argmax(-1) == targets
        if self.kind == "binary":
            return (outputs.squeeze(-1) > 0).long() == targets
        return None

    @property
    def has_accuracy(self) -> bool:
        return self.kind != "mse"


def objective_for(data: DataBundle, num_model_outputs: int) -> Objective:
    if data.task == "regression":
        return Objective("mse")
    return Objective("binary" if num_model_outputs == 1 else "cross_entropy")
