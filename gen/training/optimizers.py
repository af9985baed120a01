"""Optimizers, the SAM wrapper and learning-rate schedules, built from the ``optimizer`` group.

The training loop calls, per minibatch, ``loss = closure()`` and then ``optimizer.step(closure)``
when :func:`uses_sam` (SAM re-evaluates the loss at the perturbed weights: two passes per step)
or ``optimizer.step()`` otherwise; and ``scheduler.step()`` once per epoch.

A researcher's own optimizer (an option with a ``_target_`` gen does not ship, gen.config.user_options) is
built the same way: ``target(params, **keys)`` less gen's keys (``name``, ``sam``, ``schedule``: optional).
"""
from dataclasses import dataclass
from typing import Any

import hydra.utils
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from gen.config import ConfigError
from gen.config.instantiate import instantiate
from gen.config.optimizer import SCHEDULES

GEN_KEYS = ("name", "sam", "schedule")  # gen's own keys of an optimizer option, not the constructor's


@dataclass(frozen=True)
class Optimization:
    """How a run's weights move: its optimizer, the learning-rate schedule stepped once per epoch
    (None: a constant rate), and whether the optimizer is SAM (its step re-evaluates the loss)."""
    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    sam: bool = False


def build_optimization(opt_cfg: DictConfig, model: nn.Module, max_epochs: int) -> Optimization:
    """The ``optimizer`` group's optimizer over ``model``, its schedule over ``max_epochs``, and SAM or not."""
    optimizer = build_optimizer(opt_cfg, model)
    return Optimization(optimizer, build_scheduler(opt_cfg, optimizer, max_epochs), uses_sam(opt_cfg))


def build_optimizer(opt_cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The ``_target_`` optimizer over ``model``'s parameters, wrapped in SAM if ``sam.enabled``."""
    if uses_sam(opt_cfg):  # SAM wraps the optimizer class and builds it itself
        import pytorch_optimizer  # here: it costs every run that does not use it about a second

        optimizer_class = hydra.utils.get_class(opt_cfg._target_)
        settings = OmegaConf.to_container(opt_cfg, resolve=True)
        kwargs = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in settings.items() if k not in (*GEN_KEYS, "_target_")}
        try:
            return pytorch_optimizer.SAM(model.parameters(), optimizer_class, rho=opt_cfg.sam.rho,
                                         adaptive=opt_cfg.sam.adaptive, **kwargs)
        except ValueError as err:  # the optimizer's own argument checks (e.g. nesterov without momentum)
            raise ConfigError("optimizer", opt_cfg.name, str(err).splitlines()[0]) from None
    betas = {"betas": tuple(opt_cfg.betas)} if "betas" in opt_cfg else {}  # torch wants a tuple
    build = instantiate(opt_cfg, "optimizer", skip=GEN_KEYS, _partial_=True, **betas)
    try:
        return build(model.parameters())
    except ValueError as err:  # the optimizer's own argument checks (e.g. nesterov without momentum)
        raise ConfigError("optimizer", opt_cfg.name, str(err).splitlines()[0]) from None


def uses_sam(opt_cfg: DictConfig) -> bool:
    return bool(opt_cfg.sam.enabled) if "sam" in opt_cfg else False  # a user's optimizer may leave sam out


def build_scheduler(opt_cfg: DictConfig, optimizer: torch.optim.Optimizer, max_epochs: int):
    """The learning-rate schedule, stepped once per epoch; None for a constant rate."""
    schedule = opt_cfg.get("schedule")  # a user's optimizer may leave it out: a constant rate
    if schedule is None or schedule.name == "none":
        return None
    if schedule.name in ("exponential", "s5_decay"):
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=schedule.gamma)
    if schedule.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=schedule.step_size, gamma=schedule.gamma)
    if schedule.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)
    raise ConfigError("optimizer.schedule.name", schedule.name, f"one of {SCHEDULES}")
