"""Schemas of the ``optimizer`` group, its ``sam`` wrapper and its ``schedule``."""
from dataclasses import dataclass, field

from gen.schema.base import register, spec


@dataclass
class SAMConfig:
    enabled: bool = False
    rho: float = spec(0.05, gt=0)
    adaptive: bool = False  # ASAM


@dataclass
class ScheduleConfig:
    name: str = spec("none", choices=["none", "exponential", "step", "cosine"])
    gamma: float = spec(1.0, gt=0, le=1)  # per-epoch factor (exponential) or per-step_size factor (step)
    step_size: int = spec(1, ge=1)


@dataclass
class OptimizerCommon:
    _target_: str
    name: str
    lr: float = spec(0.01, gt=0)
    weight_decay: float = spec(0.0, ge=0)
    sam: SAMConfig = field(default_factory=SAMConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@register("optimizer", "sgd")
@dataclass
class SGDConfig(OptimizerCommon):
    momentum: float = spec(0.0, ge=0, lt=1)
    nesterov: bool = False


register("optimizer", "momentum")(SGDConfig)


@register("optimizer", "adam")
@dataclass
class AdamConfig(OptimizerCommon):
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = spec(1e-8, gt=0)
