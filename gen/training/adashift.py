"""AdaShift (S4's optimizer), ``optimizer=adashift``: pytorch_optimizer's, with decoupled weight decay."""
import pytorch_optimizer
import torch


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
