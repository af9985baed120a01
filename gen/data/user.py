"""A researcher's own dataset: the ``_target_`` of a ``dataset`` option in the user's config folder.

The contract (README, "Your own measure, model and data"): ``target(**keys)`` — the option's keys less
gen's own (gen.config.user_options; ``data_seed`` is passed too when the target takes it) — returns the
data as tensors, either a :class:`~gen.data.bundle.DataBundle` or a mapping with

- ``x_train``, ``x_test``: float inputs, ``[N, C, H, W]`` for images or ``[N, D]`` for flat data
  (torch tensors or numpy arrays; the same shape after the first dimension in both splits);
- ``y_train``, ``y_test``: integer class indices ``[N]`` (classification: 0..K−1) or float targets
  ``[N]``/``[N, 1]`` (regression);
- ``num_classes`` (optional): K; default the largest label + 1 (0 for float targets: regression).

gen then applies, as to its own sets, ``classes``, ``normalize`` (``mean``/``std``), ``train_size``
(seeded by ``data_seed``) and the corruption, and moves the tensors to the device.  The input shape
the model gets is ``x_train.shape[1:]``; its class count is ``num_classes``.
"""
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from gen.config import ConfigError
from gen.config.user_options import arguments, locate
from gen.data.bundle import DataBundle

SPLITS = ("x_train", "y_train", "x_test", "y_test")


def load(cfg: DictConfig) -> DataBundle:
    """The clean data of the user's dataset option ``cfg``, on the CPU, checked against the contract."""
    target = locate("dataset", cfg.name, cfg._target_)
    keys = arguments("dataset", cfg, target)
    given = OmegaConf.to_container(cfg, resolve=True)
    try:
        returned = target(**{k: given[k] for k in keys})
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:  # the user's own checks of their arguments
        raise ConfigError("dataset", cfg.name, f"{cfg._target_} refused its arguments: {_first_line(error)}") from None
    return as_bundle(returned, cfg.name, cfg._target_)


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def as_bundle(returned: Any, name: str, target: str) -> DataBundle:
    """What a user's dataset returned, as a DataBundle; a ConfigError naming what breaks the contract."""
    if isinstance(returned, DataBundle):
        return returned
    def refuse(what: str) -> ConfigError:
        return ConfigError("dataset", name, f"{target} returned {what}; a dataset returns a mapping with "
                                            f"{', '.join(SPLITS)} tensors (and optionally num_classes), "
                                            f"or a DataBundle")
    if not isinstance(returned, Mapping):
        raise refuse(f"a {type(returned).__name__}")
    missing = [k for k in SPLITS if k not in returned]
    if missing:
        raise refuse(f"no {', '.join(missing)}")
    tensors = {}
    for key in SPLITS:
        value = returned[key]
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            raise refuse(f"{key} as a {type(value).__name__}, not a tensor")
        tensors[key] = value
    x_train, y_train, x_test, y_test = (tensors[k] for k in SPLITS)
    if x_train.dim() < 2 or x_train.shape[1:] != x_test.shape[1:]:
        raise refuse(f"x_train {tuple(x_train.shape)} and x_test {tuple(x_test.shape)}: inputs [N, ...] of one shape")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise refuse(f"{len(x_train)}/{len(y_train)} train and {len(x_test)}/{len(y_test)} test inputs/targets")
    classification = not y_train.is_floating_point()
    if classification:
        y_train, y_test = y_train.long().reshape(-1), y_test.long().reshape(-1)
        num_classes = int(returned.get("num_classes") or int(torch.cat([y_train, y_test]).max()) + 1)
        if int(torch.cat([y_train, y_test]).min()) < 0 or int(torch.cat([y_train, y_test]).max()) >= num_classes:
            raise refuse(f"labels outside 0..{num_classes - 1}")
    else:
        y_train, y_test, num_classes = y_train.float().reshape(-1, 1), y_test.float().reshape(-1, 1), 0
    x_train = x_train if x_train.dtype == torch.uint8 else x_train.float()
    x_test = x_test if x_test.dtype == torch.uint8 else x_test.float()
    return DataBundle(name, "classification" if classification else "regression", x_train, y_train, x_test, y_test,
                      num_classes=num_classes, corrupted=torch.zeros(len(y_train), dtype=torch.bool))


def corrupt(data: DataBundle, cfg: DictConfig) -> DataBundle:
    """A researcher's own corruption: ``target(data, **keys)`` returns a new DataBundle (``data`` itself
    must not be modified: it may be shared with other runs), same shapes, ``corrupted`` marking the training
    samples it changed.  Seed any randomness from its own keys (gen's corruptions take a ``seed``)."""
    target = locate("corruption", cfg.name, cfg._target_)
    keys = arguments("corruption", cfg, target)
    given = OmegaConf.to_container(cfg, resolve=True)
    try:
        returned = target(data, **{k: given[k] for k in keys})
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError("corruption", cfg.name,
                          f"{cfg._target_} refused its arguments: {_first_line(error)}") from None
    if not isinstance(returned, DataBundle):
        raise ConfigError("corruption", cfg.name, f"{cfg._target_} returned a {type(returned).__name__}; a corruption "
                                                  f"returns a DataBundle (dataclasses.replace(data, ...))")
    shapes = [(getattr(data, k).shape, getattr(returned, k).shape) for k in ("x_train", "y_train", "x_test", "y_test")]
    if any(before != after for before, after in shapes) or returned.corrupted.shape != data.y_train.shape[:1]:
        raise ConfigError("corruption", cfg.name, f"{cfg._target_} changed the data's shapes; a corruption changes "
                                                  f"values, and marks the changed training samples in corrupted")
    return returned
