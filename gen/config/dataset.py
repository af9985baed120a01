"""Schemas of the ``dataset`` group.

Keys shared by families of datasets sit in base classes: every dataset takes ``train_size`` and
``data_seed``; classification sets ``classes``; image sets ``resize``, ``crop``, ``normalize``
(with optional ``mean``/``std``); the torchvision sets ``root`` and ``download``.  A key a dataset
does not take is an unknown key (``dataset.classes`` on sinusoid says so).  Checks that need the
data (``train_size`` larger than the set, a class index out of range) happen in ``gen.data``.
"""
import math
from dataclasses import dataclass

from gen.config.base import SEED_MAX, ConfigError, register, spec

# dataset.binary: none, or ge5 (label ≥ 5 → 1, else 0); applied in gen.data.binary.
BINARY_MAPPINGS = ["none", "ge5"]


@dataclass
class DatasetCommon:
    name: str
    train_size: int | None = spec(ge=1, help="a seeded, class-stratified subset of the training split")
    data_seed: int = spec(ge=0, le=SEED_MAX,
                          help="seeds the subset (and the split or generation of digits/synthetic/sinusoid)")


@dataclass
class ClassificationCommon(DatasetCommon):
    classes: list[int] | None = spec(help="keep these classes, relabelled 0..k-1 in this order")
    binary: str = spec(choices=BINARY_MAPPINGS, help="a two-class task from the labels: ge5 maps label ≥ 5 to 1, "
                                                     "the rest to 0 (Dziugaite & Roy 2017's binary MNIST), "
                                                     "before the train subset and any corruption")


@dataclass
class ImageCommon(ClassificationCommon):
    resize: int | None = spec(ge=1, help="resize to N×N (bilinear, antialiased) before cropping")
    crop: int | None = spec(ge=1, help="central N×N crop")
    normalize: bool = spec(help="per-channel (x - mean) / std on the [0, 1] scale")
    mean: list[float] | None = spec(help="given per-channel means; null: computed from the training split")
    std: list[float] | None = spec(help="given per-channel stds; null: computed from the training split")


@dataclass
class TorchvisionCommon(ImageCommon):
    root: str = spec(help="the folder torchvision reads (and downloads into)")
    download: bool = spec(help="download missing files (needs internet)")


DIGITS_IMAGES, DIGITS_CLASSES = 1797, 10  # scikit-learn's load_digits


@register("dataset", "digits")
@dataclass
class DigitsConfig(ImageCommon):
    test_fraction: float = spec(gt=0, lt=1)

    @staticmethod
    def check_values(node, prefix: str) -> None:
        """The split is stratified (gen.data.digits): each side needs an image of every class, counted as
        scikit-learn counts them (test: ceil(f·N), train: floor((1 - f)·N)); refused here, not by scikit-learn."""
        fraction = node.test_fraction
        test = math.ceil(fraction * DIGITS_IMAGES)
        train = math.floor((1 - fraction) * DIGITS_IMAGES)
        if min(test, train) < DIGITS_CLASSES:
            low = math.ceil(DIGITS_CLASSES / DIGITS_IMAGES * 1e4) / 1e4
            raise ConfigError(f"{prefix}.test_fraction", fraction,
                              f"the stratified split needs at least {DIGITS_CLASSES} test and {DIGITS_CLASSES} "
                              f"training images (one per class) of the {DIGITS_IMAGES}: from {low} to {1 - low:.4f}")


@register("dataset", "synthetic")
@dataclass
class SyntheticConfig(ClassificationCommon):
    num_train: int = spec(ge=1)
    num_test: int = spec(ge=1)
    dim: int = spec(ge=1)
    num_classes: int = spec(ge=2)
    separation: float = spec(ge=0, help="average distance between class centres (unit-variance clusters)")


@register("dataset", "sinusoid")
@dataclass
class SinusoidConfig(DatasetCommon):
    f: float = spec(gt=0, help="frequency: target cos(2πf·x)·cos(2πf·y)")
    num_train: int = spec(ge=1)
    num_test: int = spec(ge=1)
    dim: int = spec(ge=2, help="inputs zero-padded to this dimension, then rotated")
    scale: float = spec(gt=0, help="inputs multiplied by scale·Q, Q a random orthogonal matrix")


for _name in ("mnist", "fashion_mnist", "cifar10", "cifar100", "svhn"):
    register("dataset", _name)(TorchvisionCommon)
