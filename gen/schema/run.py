"""Top-level keys of conf/config.yaml (the groups have their own schemas)."""
from dataclasses import dataclass, field

from gen.schema.base import register, spec


@dataclass
class AnalysisConfig:
    auto: bool = True  # write the sweep's report when a multirun ends


@register("", "root")
@dataclass
class RunConfig:
    seed: int = spec(0, ge=0)
    name: str = "default"      # the sweep's folder under outputs/sweeps/
    rerun: bool = False        # run again even where a completed metrics.json exists
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
