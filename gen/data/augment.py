"""Data augmentation of training batches, on the training device: random crops and horizontal flips.

Batched because a step of a small net takes a fraction of a millisecond: per-sample Python or PIL
would cost more than the step.  A batch costs one or two small draws, one pad, one gather and one
``where`` — whatever the batch size.

Drawn from the run's own generator, batch by batch: a checkpoint holds that generator's state after
the last finished step (gen.training.checkpoint.rng_states), so a resumed run draws the crops and flips an
uninterrupted one would have drawn for the rest of its epoch.  The draws (a few numbers per image)
are made on that CPU generator and moved to the images' device.

Only training batches are augmented (gen.training.loop calls this on each minibatch): evaluation, the
interpolation record and the measures see the data as it is.  The padding is zeros in the model's
input space, i.e. after ``dataset.normalize`` (there: the per-channel mean, not black).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from gen.data.bundle import DataBundle
from gen.config import ConfigError


@dataclass(frozen=True)
class Augmentation:
    """Random crop after zero padding (``padding`` > 0), then horizontal flip (``flip_prob`` > 0)."""
    padding: int
    flip_prob: float
    generator: torch.Generator

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.padding:
            offsets = torch.randint(0, 2 * self.padding + 1, (len(images), 2), generator=self.generator)
            images = crop(images, self.padding, offsets.to(images.device))
        if self.flip_prob:
            mirrored = torch.rand(len(images), generator=self.generator) < self.flip_prob
            images = flip(images, mirrored.to(images.device))
        return images


def build_augmentation(augment_cfg: DictConfig, data: DataBundle, generator: torch.Generator) -> Augmentation | None:
    """The augmentation ``augment_cfg`` names for ``data``'s training batches; None for ``augment=none``."""
    name = augment_cfg.name
    if name == "none":
        return None
    if not data.is_image:
        raise ConfigError("augment.name", name, f"crops and flips need image inputs [N, C, H, W]; dataset "
                                                f"{data.name} gives inputs of shape {data.input_shape}: use augment=none")
    return Augmentation(padding=int(augment_cfg.get("padding", 0)), flip_prob=float(augment_cfg.get("prob", 0.0)),
                        generator=generator)


def crop(images: torch.Tensor, padding: int, offsets: torch.Tensor) -> torch.Tensor:
    """Each image zero-padded by ``padding`` on every side, then cut back to its own size with its
    window's top-left corner at ``offsets[i] = (row, column)`` of the padded image (0 … 2·padding)."""
    batch, channels, height, width = images.shape
    padded_width = width + 2 * padding
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[:, :1] + torch.arange(height, device=images.device)            # [B, H]
    columns = offsets[:, 1:] + torch.arange(width, device=images.device)          # [B, W]
    # one gather over the flattened padded image: the window's positions, the same for every channel
    flat = (rows[:, :, None] * padded_width + columns[:, None, :]).view(batch, 1, height * width)
    window = padded.view(batch, channels, -1).gather(2, flat.expand(batch, channels, height * width))
    return window.view(batch, channels, height, width)


def flip(images: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
    """The images where ``mirrored`` is true, mirrored left-right; the others as they are."""
    return torch.where(mirrored.view(-1, 1, 1, 1), images.flip(-1), images)
