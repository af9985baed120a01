"""Schemas of the ``dataset`` group."""
from dataclasses import dataclass

from gen.schema.base import register, spec


@dataclass
class DatasetCommon:
    name: str
    train_size: int | None = spec(None, ge=1)  # seeded, class-stratified subset of the training set
    data_seed: int = spec(0, ge=0)


@register("dataset", "digits")
@dataclass
class DigitsConfig(DatasetCommon):
    test_fraction: float = spec(0.25, gt=0, lt=1)


@register("dataset", "synthetic")
@dataclass
class SyntheticConfig(DatasetCommon):
    num_train: int = spec(1000, ge=1)
    num_test: int = spec(1000, ge=1)
    dim: int = spec(20, ge=1)
    num_classes: int = spec(2, ge=2)
    separation: float = spec(2.0, ge=0)


@register("dataset", "mnist")
@dataclass
class MNISTConfig(DatasetCommon):
    root: str = "data"
    download: bool = False
