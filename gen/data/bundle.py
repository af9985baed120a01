"""The one shape every dataset arrives in: tensors on the training device."""
from dataclasses import dataclass

import torch


@dataclass
class DataBundle:
    """Train and test tensors, already preprocessed and corrupted, on one device.

    Images are ``[N, C, H, W]`` float; flat data ``[N, D]``.  Classification targets are
    ``int64 [N]``; regression targets ``float [N, 1]``.  ``corrupted`` marks the training
    samples a corruption changed (all False without one).
    """
    name: str
    task: str                  # "classification" | "regression"
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int           # 0 for regression
    corrupted: torch.Tensor    # bool [N_train]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        """Width of the model's output layer."""
        return self.num_classes if self.task == "classification" else 1

    @property
    def is_image(self) -> bool:
        return self.x_train.dim() == 4

    def to(self, device: torch.device) -> "DataBundle":
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test", "corrupted")}
        return DataBundle(self.name, self.task, num_classes=self.num_classes, **moved)
