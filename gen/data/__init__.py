"""Datasets as tensors on the training device: ``load_data(dataset_cfg, corruption_cfg, device)``.

The pipeline, in order (each step in its own module):

1. ``sources``: the clean dataset, decoded once into tensors (cached in-process and, for
   torchvision sets, on disk);
2. ``subset.select_classes``: keep ``dataset.classes``, relabelled 0..k−1;
3. ``subset.take_train_subset``: a seeded, class-stratified ``dataset.train_size`` subset;
4. ``gen.corruption.corrupt``: the randomization test, seeded by ``corruption.seed``;
5. move to the device.
"""
import torch
from omegaconf import DictConfig

from gen.corruption import corrupt
from gen.data import digits, synthetic
from gen.data.bundle import DataBundle
from gen.data.subset import select_classes, take_train_subset
from gen.schema import ConfigError

LOADERS = {"digits": digits.load, "synthetic": synthetic.load}


def load_data(dataset_cfg: DictConfig, corruption_cfg: DictConfig, device: torch.device | str) -> DataBundle:
    """The dataset ``dataset_cfg`` with corruption ``corruption_cfg`` applied, on ``device``."""
    loader = LOADERS.get(dataset_cfg.name)
    if loader is None:
        raise ConfigError("dataset.name", dataset_cfg.name, f"one of {sorted(LOADERS)}")
    data = loader(dataset_cfg)
    data = select_classes(data, dataset_cfg.get("classes"))
    data = take_train_subset(data, dataset_cfg.get("train_size"), dataset_cfg.data_seed)
    data = corrupt(data, corruption_cfg)
    return data.to(torch.device(device))


__all__ = ["DataBundle", "load_data"]
