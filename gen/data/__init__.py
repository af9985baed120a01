"""Datasets as tensors on the training device: ``load_data(dataset_cfg, corruption_cfg, device)``.

The pipeline, in order (each step in its own module):

1. ``sources.load_clean``: the clean dataset decoded into tensors, resized and cropped (cached in
   process, and on disk for the torchvision sets);
2. ``subset.select_classes``: keep ``dataset.classes``, relabelled 0..k−1 in the order given, or
   ``binary.apply_binary``: ``dataset.binary`` (``ge5``: label ≥ 5 → 1, else 0; the two exclude each other);
3. ``transforms.to_model_inputs``: float32 images in [0, 1] (uint8 / 255; digits come as 0..16 / 16)
   and, with ``dataset.normalize``, per-channel (x − mean) / std, given or computed on the training split;
4. ``subset.take_train_subset``: a seeded, class-stratified ``dataset.train_size`` subset;
5. ``gen.data.corruption.corrupt``: the randomization test, seeded by ``corruption.seed``;
6. move to the device.

A researcher's own dataset (an option with a ``_target_`` gen does not ship; gen.data.user writes out
its contract) replaces step 1: its function returns the tensors; steps 2-6 are the same.
"""
import torch
from omegaconf import DictConfig

from gen.data import corruption
from gen.data import sources, user
from gen.data.binary import apply_binary, check_binary
from gen.data.bundle import DataBundle
from gen.data.subset import check_classes, select_classes, take_train_subset
from gen.data.transforms import to_model_inputs
from gen.config import ConfigError
from gen.config.user_options import is_user_option


def load_data(dataset_cfg: DictConfig, corruption_cfg: DictConfig, device: torch.device | str) -> DataBundle:
    """The dataset ``dataset_cfg`` with corruption ``corruption_cfg`` applied, on ``device``."""
    source = sources.SOURCES.get(dataset_cfg.name)
    classes = dataset_cfg.get("classes")
    binary = dataset_cfg.get("binary")
    if source is None and is_user_option("dataset", dataset_cfg):
        data = user.load(dataset_cfg)
        check_classes(classes, data.num_classes, dataset_cfg.name)
        check_binary(binary, classes, data.num_classes, dataset_cfg.name)
    elif source is None:
        raise ConfigError("dataset.name", dataset_cfg.name, f"one of {sorted(sources.SOURCES)}")
    else:
        check_classes(classes, source.num_classes(dataset_cfg), dataset_cfg.name)   # fail before decoding
        check_binary(binary, classes, source.num_classes(dataset_cfg), dataset_cfg.name)
        data = sources.load_clean(dataset_cfg)
    data = select_classes(data, classes)
    data = apply_binary(data, binary)
    data = to_model_inputs(data, dataset_cfg.get("normalize", False), dataset_cfg.get("mean"), dataset_cfg.get("std"))
    data = take_train_subset(data, dataset_cfg.get("train_size"), dataset_cfg.get("data_seed", 0))
    data = corruption.corrupt(data, corruption_cfg)
    return data.to(torch.device(device))


__all__ = ["DataBundle", "load_data"]
