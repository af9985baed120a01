"""Schema of the ``measure`` group: a named set of measures and their parameters.

Which names and parameters exist is the measure registry's business (gen/measures); it checks
them when the set is resolved.
"""
from dataclasses import dataclass, field

from gen.schema.base import register


@register("measure", "*")
@dataclass
class MeasureSetConfig:
    name: str
    names: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)

