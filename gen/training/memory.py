"""Whether a model (or a generated dataset) can be held at all, checked before it is allocated.

The model is first built on PyTorch's ``meta`` device (shapes, no storage), which costs nothing
whatever its size; if its weights, their gradients and the copy of the initial weights a run keeps
would not fit in the memory of the training device, the run stops with a ConfigError naming the
model's size key, instead of failing (or being killed) mid-allocation.
"""
import os

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from gen.config import ConfigError

COPIES = 3  # weights, gradients, initial weights: the least a training run holds
DATA_COPIES = 2  # the samples and one working copy (a shuffle, a transform)
# (images in the train and test splits, channels) of the image sets gen.data loads
IMAGES = {"digits": (1797, 1), "mnist": (70000, 1), "fashion_mnist": (70000, 1), "cifar10": (60000, 3),
          "cifar100": (60000, 3), "svhn": (99289, 3)}


def check_model_fits(model_cfg: DictConfig, build, device: torch.device) -> None:
    """``build()`` builds the model of ``model_cfg`` (in whatever device context is current)."""
    try:
        with torch.device("meta"):
            shape_only = build()
    except ConfigError:
        raise
    except RuntimeError as error:
        if "overflow" in str(error):  # a weight with more bytes than a 64-bit size can count
            key, value = size_key(model_cfg)
            raise ConfigError(key, value, "a weight of this model would be larger than any memory; "
                                          "choose a smaller size") from None
        return  # a model meta tensors cannot build: its real build will say what is wrong
    except Exception:
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


def check_data_fits(dataset_cfg: DictConfig, device: torch.device) -> None:
    """Refuse data whose tensors (the samples and one working copy) could not fit, before making them:
    generated sets (``num_train`` + ``num_test`` samples of ``dim`` floats) and resized images (every
    image of the set at ``resize``², as the loader resizes them all at once)."""
    if all(k in dataset_cfg for k in ("num_train", "num_test", "dim")):
        need = DATA_COPIES * 4 * (dataset_cfg.num_train + dataset_cfg.num_test) * dataset_cfg.dim
        key = max(("num_train", "num_test", "dim"), key=lambda k: dataset_cfg[k])
    elif dataset_cfg.get("resize") and dataset_cfg.name in IMAGES:
        samples, channels = IMAGES[dataset_cfg.name]
        need, key = DATA_COPIES * 4 * samples * channels * dataset_cfg.resize ** 2, "resize"
    else:
        return
    have = device_memory(device)
    if have is not None and need > have:
        raise ConfigError(f"dataset.{key}", dataset_cfg[key], f"the dataset would need {need / 2**30:.3g} GiB, "
                                                              f"more than the {have / 2**30:.3g} GiB of memory of "
                                                              f"{device}; choose a smaller size")


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
