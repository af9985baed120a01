"""Optimizers, the SAM wrapper and learning-rate schedules, built from the ``optimizer`` group.

The training loop calls, per minibatch, ``loss = closure()`` and then ``optimizer.step(closure)``
when :func:`uses_sam` (SAM re-evaluates the loss at the perturbed weights: two passes per step)
or ``optimizer.step()`` otherwise; and ``scheduler.step()`` once per epoch.
"""
from pathlib import Path

import hydra.utils
import pytorch_optimizer
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from gen.config import ConfigError

OPTIMIZER_CONF = Path(__file__).resolve().parent.parent / "conf" / "optimizer"
SCHEDULES = ["none", "exponential", "step", "cosine", "s5_decay"]
NOT_OPTIMIZER_ARGS = ("_target_", "name", "sam", "schedule")


def build_optimizer(opt_cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The ``_target_`` optimizer over ``model``'s parameters, wrapped in SAM if ``sam.enabled``."""
    optimizer_class = hydra.utils.get_class(opt_cfg._target_)
    settings = OmegaConf.to_container(opt_cfg, resolve=True)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items() if k not in NOT_OPTIMIZER_ARGS}
    try:
        if uses_sam(opt_cfg):
            return pytorch_optimizer.SAM(model.parameters(), optimizer_class, rho=opt_cfg.sam.rho,
                                         adaptive=opt_cfg.sam.adaptive, **kwargs)
        return optimizer_class(model.parameters(), **kwargs)
    except ValueError as err:  # the optimizer's own argument checks (e.g. nesterov without momentum)
        raise ConfigError("optimizer", opt_cfg.name, str(err).splitlines()[0]) from None


def uses_sam(opt_cfg: DictConfig) -> bool:
    return bool(opt_cfg.sam.enabled)


def build_scheduler(opt_cfg: DictConfig, optimizer: torch.optim.Optimizer, max_epochs: int):
    """The learning-rate schedule, stepped once per epoch; None for a constant rate."""
    schedule = opt_cfg.schedule
    if schedule.name == "none":
        return None
    if schedule.name in ("exponential", "s5_decay"):
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=schedule.gamma)
    if schedule.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=schedule.step_size, gamma=schedule.gamma)
    if schedule.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)
    raise ConfigError("optimizer.schedule.name", schedule.name, f"one of {SCHEDULES}")


def optimizer_options(conf_dir: Path = OPTIMIZER_CONF) -> list[str]:
    return sorted(p.stem for p in conf_dir.glob("*.yaml"))


def unknown_optimizer_hint(name: str, conf_dir: Path = OPTIMIZER_CONF) -> str:
    """One line for ``optimizer=<name>`` where conf/optimizer/<name>.yaml does not exist."""
    return (f"invalid config: optimizer={name}: no such optimizer; choose one of {optimizer_options(conf_dir)}. "
            f"SAM is not an optimizer: add optimizer.sam.enabled=true to any of them "
            f"(and optimizer.sam.adaptive=true for ASAM)")


class AdaShift(pytorch_optimizer.AdaShift):
    """pytorch_optimizer's AdaShift plus decoupled weight decay, which it lacks (it would silently
    ignore a ``weight_decay``): before each update, p ← p · (1 − lr · weight_decay), as AdamW and
    pytorch_optimizer's AdaBound do by default."""

    def __init__(self, params, weight_decay: float = 0.0, **kwargs):
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be ≥ 0, got {weight_decay}")
        super().__init__(params, weight_decay=weight_decay, **kwargs)  # kept in each param group

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["weight_decay"]:
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(1 - group["lr"] * group["weight_decay"])
        super().step()
        return loss
