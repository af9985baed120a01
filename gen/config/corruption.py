"""Schemas of the ``corruption`` group (Zhang et al.'s randomization tests; see gen/data/corruption.py)."""
from dataclasses import dataclass

from gen.config.base import SEED_MAX, register, spec


@dataclass
class CorruptionCommon:
    name: str
    apply_to: str = spec(choices=["train", "both"], help="corrupt the training split, or both splits")
    seed: int = spec(ge=0, le=SEED_MAX, help="the corruption's own seed, independent of the training seed")


@register("corruption", "none")
@dataclass
class NoCorruption(CorruptionCommon):
    pass


@register("corruption", "labels")
@dataclass
class LabelNoise(CorruptionCommon):
    prob: float = spec(ge=0, le=1, help="each training label is replaced with this probability")
    exclude_true: bool = spec(help="false: draw from all classes (Zhang); true: from the other classes")


@register("corruption", "random_labels")
@dataclass
class RandomLabels(LabelNoise):
    prob: float = spec(choices=[1.0], help="always 1; use corruption=labels for other values")


@dataclass
class PixelCorruption(CorruptionCommon):
    prob: float = spec(ge=0, le=1, help="each image is corrupted with this probability")


@register("corruption", "shuffled_pixels")
@dataclass
class ShuffledPixels(PixelCorruption):
    pass


@register("corruption", "random_pixels")
@dataclass
class RandomPixels(PixelCorruption):
    pass


@register("corruption", "gaussian")
@dataclass
class GaussianPixels(PixelCorruption):
    pass
