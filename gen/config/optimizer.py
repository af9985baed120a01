"""Schemas of the ``optimizer`` group, its ``sam`` wrapper and its ``schedule``."""
from dataclasses import dataclass

from gen.config.base import register, spec


@dataclass
class SAMConfig:
    enabled: bool
    rho: float = spec(gt=0)
    adaptive: bool  # ASAM


SCHEDULES = ["none", "exponential", "step", "cosine", "s5_decay"]  # gen.training.optimizers builds each


@dataclass
class ScheduleConfig:
    # s5_decay: exponential with S5's factor 10^(-1/50) per epoch (its yaml sets gamma).
    name: str = spec(choices=SCHEDULES)
    gamma: float = spec(gt=0, le=1)  # per-epoch factor (exponential) or per-step_size factor (step)
    step_size: int = spec(ge=1)


@dataclass
class OptimizerCommon:
    _target_: str
    name: str
    lr: float = spec(gt=0)
    weight_decay: float = spec(ge=0)
    sam: SAMConfig
    schedule: ScheduleConfig


@register("optimizer", "sgd")
@register("optimizer", "momentum")   # heavy ball (S4's PHB)
@register("optimizer", "nesterov")
@register("optimizer", "s4_sgd")
@dataclass
class SGDConfig(OptimizerCommon):
    momentum: float = spec(ge=0, lt=1)
    nesterov: bool


@register("optimizer", "adam")
@register("optimizer", "adamw")
@dataclass
class AdamConfig(OptimizerCommon):
    betas: list[float] = spec(length=2, items={"ge": 0, "lt": 1})
    eps: float = spec(gt=0)
    amsgrad: bool


@register("optimizer", "adagrad")
@dataclass
class AdagradConfig(OptimizerCommon):
    lr_decay: float = spec(ge=0)
    initial_accumulator_value: float = spec(ge=0)
    eps: float = spec(gt=0)


@register("optimizer", "adabound")
@dataclass
class AdaBoundConfig(OptimizerCommon):
    final_lr: float = spec(gt=0)   # the SGD rate the bounds converge to
    betas: list[float] = spec(length=2, items={"ge": 0, "lt": 1})
    gamma: float = spec(gt=0)     # how fast the bounds converge
    eps: float = spec(gt=0)
    ams_bound: bool
    weight_decouple: bool


@register("optimizer", "adashift")
@dataclass
class AdaShiftConfig(OptimizerCommon):
    betas: list[float] = spec(length=2, items={"ge": 0, "lt": 1})
    keep_num: int = spec(ge=1)      # gradients kept to decorrelate the moments
    eps: float = spec(gt=0)
