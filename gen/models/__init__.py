"""The model zoo: one module per architecture family, built from the ``model`` config group.

Every model's constructor takes ``input_shape`` ((C, H, W) or (D,)) and ``num_outputs``, plus its sizes as keyword arguments from the yaml, and outputs raw scores (no softmax).
Models that need images say so with a class attribute ``needs_image = True``; models with one hidden
unit per training sample (``sized_by_train_set = True``) get ``hidden_units`` = the training set's size.
"""
import hydra.utils
import torch.nn as nn
from omegaconf import DictConfig

from gen.config import ConfigError
from gen.config.instantiate import instantiate


def build_model(model_cfg: DictConfig, input_shape: tuple[int, ...], num_outputs: int,
                source: str = "the dataset", train_size: int | None = None) -> nn.Module:
    """``model_cfg``'s model for inputs of ``input_shape`` and ``num_outputs`` scores (``source``: what
    gives those inputs, for the error line of a model that needs images; ``train_size``: the width of
    a model with one hidden unit per training sample)."""
    model_class = hydra.utils.get_class(model_cfg._target_)
    if getattr(model_class, "needs_image", False) and len(input_shape) != 3:
        raise ConfigError("model", model_cfg.name, f"needs image data (C,H,W); {source} gives shape "
                                                   f"{tuple(input_shape)}")
    sized = {"hidden_units": train_size} if getattr(model_class, "sized_by_train_set", False) else {}
    return instantiate(model_cfg, "model", input_shape=tuple(input_shape), num_outputs=num_outputs, **sized)
