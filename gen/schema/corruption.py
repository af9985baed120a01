"""Schemas of the ``corruption`` group."""
from dataclasses import dataclass

from gen.schema.base import register, spec


@dataclass
class CorruptionCommon:
    name: str
    apply_to: str = spec("train", choices=["train", "both"])
    seed: int = spec(0, ge=0)  # the corruption's own seed, independent of the training seed


@register("corruption", "none")
@dataclass
class NoCorruption(CorruptionCommon):
    pass


@register("corruption", "random_labels")
@dataclass
class RandomLabels(CorruptionCommon):
    prob: float = spec(1.0, ge=0, le=1)
    exclude_true: bool = False
