"""Schema of the ``augment`` group: data augmentation of training batches (gen.data.augment)."""
from dataclasses import dataclass

from gen.config.base import register, spec

# Zeros around the image before a random crop: more than this only adds blank border (S2's CIFAR
# augmentation, and the usual pad-4 crop, shift by a few pixels).
MAX_CROP_PADDING = 16


@register("augment", "none")
@dataclass
class NoAugmentConfig:
    name: str


@register("augment", "crop")
@dataclass
class CropConfig:
    name: str
    padding: int = spec(ge=1, le=MAX_CROP_PADDING, help="zero pixels on each side; the crop is the image size")


@register("augment", "flip")
@dataclass
class FlipConfig:
    name: str
    prob: float = spec(gt=0, le=1, help="probability that a training image is mirrored left-right")


@register("augment", "crop_flip")
@dataclass
class CropFlipConfig:
    name: str
    padding: int = spec(ge=1, le=MAX_CROP_PADDING, help="zero pixels on each side; the crop is the image size")
    prob: float = spec(gt=0, le=1, help="probability that a training image is mirrored left-right")
