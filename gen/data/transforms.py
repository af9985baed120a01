"""Whole-tensor image preprocessing: resize, centre crop, scaling to [0, 1], normalisation.

Everything acts on a batch ``[N, C, H, W]`` at once; nothing runs per sample.
"""
import dataclasses

import torch
import torchvision.transforms.v2.functional as TF

from gen.data.bundle import DataBundle
from gen.schema import ConfigError


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images resized to ``size × size``, bilinear with antialiasing (as PIL's resize); dtype kept."""
    return TF.resize(x, [size, size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size × size`` window (offset rounded as torchvision's CenterCrop does)."""
    height, width = x.shape[-2:]
    if size > min(height, width):
        raise ConfigError("dataset.crop", size, f"at most the image size {height}×{width} (after any resize)")
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return x[..., top:top + size, left:left + size]


def resize_and_crop(data: DataBundle, size: int | None, crop: int | None) -> DataBundle:
    """Apply ``dataset.resize`` then ``dataset.crop`` to both splits (images only)."""
    if size is None and crop is None:
        return data
    if not data.is_image:
        raise ConfigError("dataset.resize" if size is not None else "dataset.crop", size or crop,
                          f"only for image datasets; {data.name} is not one")

    def apply(x: torch.Tensor) -> torch.Tensor:
        if size is not None:
            x = resize(x, size)
        if crop is not None:
            x = center_crop(x, crop)
        return x.contiguous()

    return dataclasses.replace(data, x_train=apply(data.x_train), x_test=apply(data.x_test))


def to_float(data: DataBundle) -> DataBundle:
    """Fresh float32 copies of the inputs, uint8 images scaled to [0, 1] (as ToTensor), and of the
    targets: the result never shares memory with the cached clean data."""
    def convert(x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255) if x.dtype == torch.uint8 else x.float().clone()

    return dataclasses.replace(data, x_train=convert(data.x_train), x_test=convert(data.x_test),
                               y_train=data.y_train.clone(), y_test=data.y_test.clone(),
                               corrupted=data.corrupted.clone())


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (dimension 1) mean and population std of ``[N, C, ...]`` data over samples and
    positions, in float64."""
    per_channel = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    return per_channel.mean(dim=1), per_channel.std(dim=1, correction=0)


def normalize(data: DataBundle, enabled: bool, mean: list[float] | None, std: list[float] | None) -> DataBundle:
    """(x − mean) / std per channel, on both splits.

    ``mean``/``std`` given: used as they are (on the [0, 1] scale, like torchvision's Normalize);
    null: computed from the training split (after class selection, before any train_size subset,
    so every subset size sees the same scaling).
    """
    if mean is not None or std is not None:
        if not enabled:
            raise ConfigError("dataset.mean" if mean is not None else "dataset.std", mean if mean is not None else std,
                              "only used with dataset.normalize=true")
        if mean is None or std is None:
            raise ConfigError("dataset.mean" if mean is None else "dataset.std", None,
                              "give both dataset.mean and dataset.std, or neither (computed from the data)")
    if not enabled:
        return data
    mean, std = (list(v) if v is not None else None for v in (mean, std))
    channels = data.x_train.shape[1]
    if mean is None:
        mean, std = (t.tolist() for t in channel_stats(data.x_train))
        std = [s if s > 0 else 1.0 for s in std]   # a constant channel stays constant
    for key, values in (("dataset.mean", mean), ("dataset.std", std)):
        if len(values) != channels:
            raise ConfigError(key, list(values), f"one value per channel ({channels} for {data.name})")
    if min(std) <= 0:
        raise ConfigError("dataset.std", list(std), "every std must be > 0")
    shape = (1, channels) + (1,) * (data.x_train.dim() - 2)
    mean_t, std_t = torch.tensor(mean).view(shape), torch.tensor(std).view(shape)
    return dataclasses.replace(data, x_train=(data.x_train - mean_t) / std_t, x_test=(data.x_test - mean_t) / std_t)
