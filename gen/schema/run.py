"""Top-level keys of conf/config.yaml (the groups have their own schemas)."""
from dataclasses import dataclass, field

from gen.schema.base import SEED_MAX, register, spec


@dataclass
class AnalysisConfig:
    auto: bool = True  # write the sweep's report when a multirun ends


@register("", "root")
@dataclass
class RunConfig:
    seed: int = spec(0, ge=0, le=SEED_MAX)
    name: str | None = spec(None, folder_name=True)  # the sweep's folder under outputs/sweeps/ (None: gen.sweep_name)
    rerun: bool = False        # run again even where a completed metrics.json exists
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
