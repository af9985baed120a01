"""The model zoo: one module per architecture family, built from the ``model`` config group."""
import hydra.utils
import torch.nn as nn
from omegaconf import DictConfig

from gen.data.bundle import DataBundle


def build_model(model_cfg: DictConfig, data: DataBundle) -> nn.Module:
    """Instantiate ``model_cfg`` for ``data``'s input shape and output width."""
    kwargs = {k: v for k, v in model_cfg.items() if k != "name"}
    return hydra.utils.instantiate(kwargs, input_shape=data.input_shape, num_outputs=data.num_outputs,
                                   _convert_="all")
