"""Schemas of the ``model`` group, one per architecture."""
from dataclasses import dataclass

from gen.schema.base import register, spec


@register("model", "fc")
@dataclass
class FCConfig:
    _target_: str
    name: str = "fc"
    hidden_units: int = spec(512, ge=1)
