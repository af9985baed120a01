"""Whether a model can be held at all, checked before its weights are allocated.

The model is first built on PyTorch's ``meta`` device (shapes, no storage), which costs nothing
whatever its size; if its weights, their gradients and the copy of the initial weights a run keeps
would not fit in the memory of the training device, the run stops with a ConfigError naming the
model's size key, instead of failing (or being killed) mid-allocation.
"""
import os

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from gen.schema import ConfigError

COPIES = 3  # weights, gradients, initial weights: the least a training run holds


def check_model_fits(model_cfg: DictConfig, build, device: torch.device) -> None:
    """``build()`` builds the model of ``model_cfg`` (in whatever device context is current)."""
    try:
        with torch.device("meta"):
            shape_only = build()
    except ConfigError:
        raise
    except Exception:  # a model meta tensors cannot build: its real build will say what is wrong
        return
    params = list(shape_only.parameters()) + list(shape_only.buffers())
    need = COPIES * sum(p.numel() * p.element_size() for p in params)
    have = device_memory(device)
    if have is not None and need > have:
        key, value = size_key(model_cfg)
        count = sum(p.numel() for p in params)
        raise ConfigError(key, value, f"the model would have {count:.3g} weights, {need / 2**30:.3g} GiB with "
                                      f"their gradients and initial copy: more than the {have / 2**30:.3g} GiB of "
                                      f"memory of {device}; choose a smaller size")


def device_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def size_key(model_cfg: DictConfig) -> tuple[str, object]:
    """The model's size key with the largest value (a list counts by its largest entry)."""
    def largest(value) -> float:
        if isinstance(value, ListConfig):
            return max((largest(v) for v in value), default=0)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    sizes = {k: model_cfg[k] for k in model_cfg if k not in ("name", "_target_")}
    if not sizes or max(largest(v) for v in sizes.values()) == 0:
        return "model", model_cfg.name
    key = max(sizes, key=lambda k: largest(sizes[k]))
    value = sizes[key]
    return f"model.{key}", OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
