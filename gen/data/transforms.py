"""Whole-tensor image preprocessing: resize, centre crop, scaling to [0, 1], normalisation.

Everything acts on a batch ``[N, C, H, W]`` at once; nothing runs per sample.
"""
import dataclasses

import torch

from gen.data.bundle import DataBundle
from gen.config import ConfigError


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images resized to ``size × size``, bilinear with antialiasing (as PIL's resize); dtype kept."""
    import torchvision.transforms.v2.functional as TF  # here: importing torchvision costs every run ~2 s

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


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (dimension 1) mean and population std of ``[N, C, ...]`` data over samples and
    positions, in float64 and on ``x``'s own scale.  uint8 data is counted in a 256-bin histogram
    per channel: exact, and without a float copy of the whole set."""
    if x.dtype == torch.uint8:
        levels = torch.arange(256, dtype=torch.float64)
        counts = torch.stack([torch.bincount(x[:, c].reshape(-1), minlength=256) for c in range(x.shape[1])]).double()
        mean = counts @ levels / counts.sum(1)
        var = counts @ levels.pow(2) / counts.sum(1) - mean.pow(2)
        return mean, var.clamp_min(0).sqrt()
    per_channel = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    return per_channel.mean(dim=1), per_channel.std(dim=1, correction=0)


def to_model_inputs(data: DataBundle, normalize: bool, mean: list[float] | None,
                    std: list[float] | None) -> DataBundle:
    """Fresh float32 inputs for the model: uint8 images scaled to [0, 1] (as ToTensor does), then,
    with ``normalize``, (x − mean) / std per channel.  Targets are copied too, so the result never
    shares memory with the cached clean data.

    ``mean``/``std`` given: used as they are (on the [0, 1] scale, like torchvision's Normalize);
    null: computed from the training split (after class selection, before any train_size subset,
    so every subset size sees the same scaling).
    """
    is_uint8 = data.x_train.dtype == torch.uint8
    mean, std = _normalization(data, normalize, mean, std, scale=1 / 255 if is_uint8 else 1.0)
    shape = (1, -1) + (1,) * (data.x_train.dim() - 2)
    mean, std = mean.float().view(shape), std.float().view(shape)

    def convert(x: torch.Tensor) -> torch.Tensor:
        fresh = x.float().div_(255) if is_uint8 else x.float().clone()   # the one copy; then in place
        return fresh.sub_(mean).div_(std) if normalize else fresh

    return dataclasses.replace(data, x_train=convert(data.x_train), x_test=convert(data.x_test),
                               y_train=data.y_train.clone(), y_test=data.y_test.clone(),
                               corrupted=data.corrupted.clone())


def _normalization(data: DataBundle, enabled: bool, mean, std, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel (mean, std) on the [0, 1] scale: (0, 1) without normalisation."""
    channels = data.x_train.shape[1]
    if mean is not None or std is not None:
        if not enabled:
            raise ConfigError("dataset.mean" if mean is not None else "dataset.std", mean if mean is not None else std,
                              "only used with dataset.normalize=true")
        if mean is None or std is None:
            raise ConfigError("dataset.mean" if mean is None else "dataset.std", None,
                              "give both dataset.mean and dataset.std, or neither (computed from the data)")
    if not enabled:
        return torch.zeros(channels, dtype=torch.float64), torch.ones(channels, dtype=torch.float64)
    if mean is None:
        mean, std = (t * scale for t in channel_stats(data.x_train))
        return mean, torch.where(std > 0, std, 1.0)        # a constant channel stays constant
    for key, values in (("dataset.mean", mean), ("dataset.std", std)):
        if len(values) != channels:
            raise ConfigError(key, list(values), f"one value per channel ({channels} for {data.name})")
    if min(std) <= 0:
        raise ConfigError("dataset.std", list(std), "every std must be > 0")
    return torch.tensor(list(mean), dtype=torch.float64), torch.tensor(list(std), dtype=torch.float64)
