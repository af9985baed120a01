"""The model zoo: one module per architecture family, built from the ``model`` config group.

Every model's constructor takes ``input_shape`` ((C, H, W) or (D,)) and ``num_outputs`` from the
dataset, plus its sizes as keyword arguments from the yaml, and outputs raw scores (no softmax).
Models that need images say so with a class attribute ``needs_image = True``; models with one hidden
unit per training sample (``sized_by_train_set = True``) get ``hidden_units`` = the training set's size.
"""
import hydra.utils
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from gen.data.bundle import DataBundle
from gen.schema import ConfigError


def build_model(model_cfg: DictConfig, data: DataBundle) -> nn.Module:
    """Instantiate ``model_cfg`` for ``data``'s input shape and output width."""
    name = model_cfg.name
    model_class = hydra.utils.get_class(model_cfg._target_)
    if getattr(model_class, "needs_image", False) and not data.is_image:
        raise ConfigError("model", name, f"needs image data (C,H,W); dataset {data.name} gives shape {data.input_shape}")
    sizes = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items() if k not in ("name", "_target_")}
    if getattr(model_class, "sized_by_train_set", False):  # gen.models.expressivity: a unit per training sample
        sizes["hidden_units"] = len(data.x_train)
    try:
        # Called directly rather than through hydra.utils.instantiate, which would wrap our
        # one-line ConfigError in an InstantiationException.
        return model_class(input_shape=data.input_shape, num_outputs=data.num_outputs, **sizes)
    except ConfigError as err:
        if err.key == "model":  # a model knows its class; the user chose it by its config name
            raise ConfigError("model", name, err.allowed) from None
        raise

