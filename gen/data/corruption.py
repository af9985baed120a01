"""Zhang et al.'s randomization tests: corrupt labels or images of a DataBundle.

Every corruption is a pure function of the clean data and ``corruption.seed`` (never the training
seed): the same seed gives bit-identical data.  The random draws are made on the CPU for every
sample, whatever ``prob`` is, and only then is the chosen fraction kept; so with one seed a
sample corrupted at ``prob=0.2`` is also corrupted, identically, at ``prob=0.5`` (nested sweeps).

- ``labels``: each training label, independently with probability ``prob``, is replaced by a
  uniformly random class: from all classes (``exclude_true: false``, as Zhang did, so a chosen
  label keeps its value with chance 1/K) or from the K−1 other classes (``exclude_true: true``).
- ``random_labels``: ``labels`` with ``prob = 1``.
- ``shuffled_pixels``: one random permutation of pixel positions, the same for every image.
- ``random_pixels``: an independent permutation per image.
- ``gaussian``: each image replaced by Gaussian noise with the clean training set's per-channel
  mean and std.

Pixel corruptions pick each image independently with probability ``prob`` (default 1).  The
permutations reorder the H·W pixel positions of ``[N, C, H, W]`` images, the same way in every
channel of an image; for flat ``[N, D]`` data they reorder the D features.  The gaussian noise
takes the mean and std of each channel (dimension 1): per colour channel for images, per feature
for flat data.  They act on the tensors the
model sees, i.e. after resizing, cropping and normalisation, so the gaussian noise matches the
mean and std of exactly those tensors.  (Normalisation is per-channel affine, so this is the same
noise as drawing in raw pixel space with raw statistics and normalising afterwards.)

``apply_to: train`` corrupts the training set only; ``both`` also the test set, with its own
random stream (the shuffled-pixels permutation is the one shared exception: train and test use
the same one, which is the point of that test).  ``DataBundle.corrupted`` marks the training
samples whose label actually changed (label corruptions) or whose image was replaced (pixel
corruptions).
"""
import dataclasses

import numpy as np
import torch
from omegaconf import DictConfig

from gen.data.bundle import DataBundle
from gen.data.transforms import channel_stats
from gen.config import ConfigError
from gen.config.user_options import is_user_option

LABEL_KINDS = ("labels", "random_labels")
PIXEL_KINDS = ("shuffled_pixels", "random_pixels", "gaussian")

# Per-image permutations are drawn this many images at a time, to bound memory on big sets.
PERMUTATION_CHUNK = 4096


def corrupt(data: DataBundle, cfg: DictConfig) -> DataBundle:
    """``data`` with the corruption ``cfg`` applied (a new bundle; ``data`` is not modified)."""
    kind = cfg.name
    if kind == "none":
        return data
    if kind in LABEL_KINDS:
        return _corrupt_labels(data, cfg)
    if kind in PIXEL_KINDS:
        return _corrupt_images(data, cfg)
    if is_user_option("corruption", cfg):  # the researcher's own (gen.data.user)
        from gen.data import user
        return user.corrupt(data, cfg)
    raise ConfigError("corruption.name", kind, f"one of {['none', *LABEL_KINDS, *PIXEL_KINDS]}")


def stream(seed: int, split: str) -> torch.Generator:
    """The corruption's random stream for one split: independent streams from one seed."""
    split_id = {"train": 0, "test": 1}[split]
    derived = int(np.random.SeedSequence([seed, split_id]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(derived)


# ---- labels ---------------------------------------------------------------------------------
def _corrupt_labels(data: DataBundle, cfg: DictConfig) -> DataBundle:
    if data.task != "classification":
        raise ConfigError("corruption.name", cfg.name, f"label corruptions need a classification dataset; "
                                                       f"{data.name} is {data.task}")
    y_train, changed = random_labels(data.y_train.cpu(), data.num_classes, cfg.prob, cfg.exclude_true,
                                     stream(cfg.seed, "train"))
    y_test = data.y_test
    if cfg.apply_to == "both":
        y_test, _ = random_labels(data.y_test.cpu(), data.num_classes, cfg.prob, cfg.exclude_true,
                                  stream(cfg.seed, "test"))
    return dataclasses.replace(data, y_train=y_train, y_test=y_test, corrupted=changed)


def random_labels(labels: torch.Tensor, num_classes: int, prob: float, exclude_true: bool,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each label with probability ``prob`` by a uniform class; return (labels, changed)."""
    n = len(labels)
    chosen = torch.rand(n, generator=generator) < prob
    if exclude_true:
        # Adding 1..K−1 modulo K reaches each other class exactly once: uniform over them.
        replacement = (labels + torch.randint(1, num_classes, (n,), generator=generator)) % num_classes
    else:
        replacement = torch.randint(0, num_classes, (n,), generator=generator)
    new_labels = torch.where(chosen, replacement, labels)
    return new_labels, new_labels != labels


# ---- images ---------------------------------------------------------------------------------
def _corrupt_images(data: DataBundle, cfg: DictConfig) -> DataBundle:
    train_generator = stream(cfg.seed, "train")
    shared_permutation = None
    if cfg.name == "shuffled_pixels":
        shared_permutation = torch.randperm(_positions(data.x_train), generator=train_generator)
    mean, std = channel_stats(data.x_train.cpu())

    def apply(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = torch.rand(len(x), generator=generator) < cfg.prob
        if cfg.name == "shuffled_pixels":
            replaced = permute_positions(x, shared_permutation)
        elif cfg.name == "random_pixels":
            replaced = permute_each(x, generator)
        else:
            replaced = gaussian_like(x.shape, mean, std, generator)
        mask = chosen.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(mask, replaced, x), chosen

    x_train, chosen = apply(data.x_train.cpu(), train_generator)
    x_test = data.x_test
    if cfg.apply_to == "both":
        x_test, _ = apply(data.x_test.cpu(), stream(cfg.seed, "test"))
    return dataclasses.replace(data, x_train=x_train, x_test=x_test, corrupted=chosen)


def _positions(x: torch.Tensor) -> int:
    """Positions a permutation reorders: H·W pixels for images, the D features of flat data."""
    return _as_positions(x).shape[2]


def _as_positions(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, positions]`` view: images keep channels apart; flat ``[N, D]`` data has one channel
    whose positions are the D features."""
    return x.reshape(len(x), x.shape[1], -1) if x.dim() > 2 else x.reshape(len(x), 1, -1)


def permute_positions(x: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Every image's positions reordered by the same permutation, in every channel."""
    return _as_positions(x)[:, :, permutation].reshape(x.shape)


def permute_each(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Every image's positions reordered by its own uniform random permutation."""
    flat = _as_positions(x)
    out = torch.empty_like(flat)
    for start in range(0, len(flat), PERMUTATION_CHUNK):
        block = flat[start:start + PERMUTATION_CHUNK]
        # argsort of i.i.d. uniforms is a uniform random permutation; float64 makes ties (which
        # float32's 24 bits would give ~3% of 1024-pixel images) practically impossible.
        keys = torch.rand(len(block), block.shape[2], generator=generator, dtype=torch.float64)
        permutations = keys.argsort(dim=1)
        index = permutations.unsqueeze(1).expand(-1, block.shape[1], -1)
        out[start:start + PERMUTATION_CHUNK] = block.gather(2, index)
    return out.reshape(x.shape)


def gaussian_like(shape: torch.Size, mean: torch.Tensor, std: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """Noise of ``shape`` whose channel c is N(mean[c], std[c]²), float32."""
    broadcast = (1, -1) + (1,) * (len(shape) - 2)
    noise = torch.randn(shape, generator=generator, dtype=torch.float64)
    return (noise * std.view(broadcast) + mean.view(broadcast)).float()
