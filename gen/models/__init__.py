"""The model zoo: one module per architecture family, built from the ``model`` config group.

Every model's constructor takes ``input_shape`` ((C, H, W) or (D,)) and ``num_outputs``, plus its sizes
as keyword arguments from the yaml, and outputs raw scores (no softmax).
Models that need images say so with a class attribute ``needs_image = True``; models with one hidden
unit per training sample (``sized_by_train_set = True``) get ``hidden_units`` = the training set's size.

The same contract holds for a researcher's own model (an option with a ``_target_`` gen does not ship, in
the user's config folder; gen.config.user_options checks its signature): ``Model(input_shape=...,
num_outputs=K, **keys)`` is an ``nn.Module`` whose ``forward`` maps a batch ``[N, *input_shape]`` to
raw scores ``[N, K]`` (logits).  gen checks that on a batch of two zeros once built.
"""
import torch
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
    model_class = hydra.utils.get_object(model_cfg._target_)  # a class, or a function building the model
    if getattr(model_class, "needs_image", False) and len(input_shape) != 3:
        raise ConfigError("model", model_cfg.name, f"needs image data (C,H,W); {source} gives shape "
                                                   f"{tuple(input_shape)}")
    sized = {"hidden_units": train_size} if getattr(model_class, "sized_by_train_set", False) else {}
    model = instantiate(model_cfg, "model", input_shape=tuple(input_shape), num_outputs=num_outputs, **sized)
    if not model_cfg._target_.startswith("gen."):
        check_contract(model, model_cfg, tuple(input_shape), num_outputs)
    return model


def check_contract(model, model_cfg: DictConfig, input_shape: tuple[int, ...], num_outputs: int) -> None:
    """A model not gen's own: an nn.Module mapping ``[2, *input_shape]`` to ``[2, num_outputs]`` (skipped on
    the meta device, where gen.training.memory sizes it)."""
    where = f"{model_cfg._target_}"
    if not isinstance(model, nn.Module):
        raise ConfigError("model", model_cfg.name, f"{where} built a {type(model).__name__}, not a torch.nn.Module")
    first = next(iter(model.parameters()), None)
    if first is not None and first.is_meta:
        return
    was_training = model.training
    model.eval()  # no BatchNorm statistics updated, no dropout drawn: the check leaves no trace
    try:
        with torch.no_grad():
            outputs = model(torch.zeros(2, *input_shape, device=first.device if first is not None else "cpu"))
    except Exception as error:  # noqa: BLE001 — the user's forward: whatever it raises, one line
        detail = str(error).splitlines()[0] if str(error) else ""
        raise ConfigError("model", model_cfg.name, f"{where} failed on a batch of shape {(2, *input_shape)} "
                                                   f"({type(error).__name__}: {detail})") from None
    finally:
        model.train(was_training)
    if not isinstance(outputs, torch.Tensor) or tuple(outputs.shape) != (2, num_outputs):
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        raise ConfigError("model", model_cfg.name, f"{where} maps a batch {(2, *input_shape)} to {shape}; gen's "
                                                   f"model contract: raw scores of shape (N, {num_outputs})")
