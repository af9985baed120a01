"""Binary label mappings (``dataset.binary``): a multi-class dataset made a two-class one.

- ``none``: the labels as they are.
- ``ge5``: label ≥ 5 → 1, else 0.  Dziugaite & Roy 2017's binary MNIST (digits 5–9 against 0–4), the task of
  their certified PAC-Bayes bounds.

The mapping acts on the dataset's own class indices, train and test alike, before the train subset is drawn (so
it is stratified by the binary label) and before any corruption (so ``random_labels`` draws random *binary*
labels).  It cannot be combined with ``dataset.classes`` (which would relabel first and make "≥ 5" mean
something else).
"""
import dataclasses

import torch

from gen.config import ConfigError
from gen.config.dataset import BINARY_MAPPINGS
from gen.data.bundle import DataBundle

GE5_THRESHOLD = 5


def check_binary(binary: str | None, classes, num_classes: int, dataset: str) -> None:
    """Raise ConfigError unless ``binary`` can be applied to ``dataset`` (before any decoding)."""
    if binary in (None, "none"):
        return
    if binary not in BINARY_MAPPINGS:
        raise ConfigError("dataset.binary", binary, f"one of {BINARY_MAPPINGS}")
    if num_classes == 0:
        raise ConfigError("dataset.binary", binary, f"only for classification; {dataset} is regression")
    if classes is not None:
        raise ConfigError("dataset.binary", binary, "dataset.classes=null (a binary mapping acts on the "
                                                    "dataset's own class indices; choose one of the two)")
    if num_classes <= GE5_THRESHOLD:
        raise ConfigError("dataset.binary", binary, f"a dataset with more than {GE5_THRESHOLD} classes "
                                                    f"({dataset} has {num_classes}: every label would be 0)")


def binary_labels(labels: torch.Tensor, binary: str) -> torch.Tensor:
    """``labels`` under the mapping ``binary`` (int64)."""
    if binary == "ge5":
        return (labels >= GE5_THRESHOLD).long()
    raise ValueError(binary)


def apply_binary(data: DataBundle, binary: str | None) -> DataBundle:
    """``data`` with its labels mapped (a new bundle), or ``data`` itself for ``none``."""
    if binary in (None, "none"):
        return data
    return dataclasses.replace(data, y_train=binary_labels(data.y_train, binary),
                               y_test=binary_labels(data.y_test, binary), num_classes=2)
