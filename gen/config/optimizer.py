"""Schemas of the ``optimizer`` group, its ``sam`` wrapper and its ``schedule``."""
from dataclasses import dataclass, field

from gen.config.base import register, spec


@dataclass
class SAMConfig:
    enabled: bool = False
    rho: float = spec(0.05, gt=0)
    adaptive: bool = False  # ASAM


@dataclass
class ScheduleConfig:
    # s5_decay: exponential with S5's factor 10^(-1/50) per epoch (its yaml sets gamma).
    name: str = spec("none", choices=["none", "exponential", "step", "cosine", "s5_decay"])
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
@register("optimizer", "momentum")   # heavy ball (S4's PHB)
@register("optimizer", "nesterov")
@register("optimizer", "s4_sgd")
@dataclass
class SGDConfig(OptimizerCommon):
    momentum: float = spec(0.0, ge=0, lt=1)
    nesterov: bool = False


@register("optimizer", "adam")
@register("optimizer", "adamw")
@dataclass
class AdamConfig(OptimizerCommon):
    betas: list[float] = spec(default_factory=lambda: [0.9, 0.999], length=2, items={"ge": 0, "lt": 1})
    eps: float = spec(1e-8, gt=0)
    amsgrad: bool = False


@register("optimizer", "adagrad")
@dataclass
class AdagradConfig(OptimizerCommon):
    lr_decay: float = spec(0.0, ge=0)
    initial_accumulator_value: float = spec(0.0, ge=0)
    eps: float = spec(1e-10, gt=0)


@register("optimizer", "adabound")
@dataclass
class AdaBoundConfig(OptimizerCommon):
    final_lr: float = spec(0.1, gt=0)   # the SGD rate the bounds converge to
    betas: list[float] = spec(default_factory=lambda: [0.9, 0.999], length=2, items={"ge": 0, "lt": 1})
    gamma: float = spec(1e-3, gt=0)     # how fast the bounds converge
    eps: float = spec(1e-8, gt=0)
    ams_bound: bool = False
    weight_decouple: bool = True


@register("optimizer", "adashift")
@dataclass
class AdaShiftConfig(OptimizerCommon):
    betas: list[float] = spec(default_factory=lambda: [0.9, 0.999], length=2, items={"ge": 0, "lt": 1})
    keep_num: int = spec(10, ge=1)      # gradients kept to decorrelate the moments
    eps: float = spec(1e-10, gt=0)
