"""Top-level keys of conf/config.yaml (the groups have their own schemas)."""
from dataclasses import dataclass

from gen.config.base import SEED_MAX, register, spec


@dataclass
class AnalysisConfig:
    auto: bool  # write the sweep's report when a multirun ends


@register("", "root")
@dataclass
class RunConfig:
    seed: int = spec(ge=0, le=SEED_MAX)
    name: str | None = spec(folder_name=True)  # the sweep's folder under outputs/sweeps/ (None: gen.sweeps.sweep_name)
    rerun: bool        # run again even where a completed metrics.json exists
    measure_run: str | None  # python -m gen.measure's jobs: the run folder to measure (gen.measure)
    analysis: AnalysisConfig
