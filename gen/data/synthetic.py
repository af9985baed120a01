"""A seeded Gaussian mixture: one isotropic unit-variance cluster per class."""
import math

import torch
from omegaconf import DictConfig

from gen.data.bundle import DataBundle


def load(cfg: DictConfig) -> DataBundle:
    """``[N, dim]`` points; classes balanced (sizes differ by at most one) and in random order.

    Centres are Gaussian with scale ``separation / sqrt(2·dim)``, so two centres lie
    ``separation`` apart on average (E|c_i − c_j|² = 2·dim·scale²).
    """
    generator = torch.Generator().manual_seed(cfg.data_seed)
    scale = cfg.separation / math.sqrt(2 * cfg.dim)
    centres = torch.randn(cfg.num_classes, cfg.dim, generator=generator) * scale

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = (torch.arange(n) % cfg.num_classes)[torch.randperm(n, generator=generator)]
        points = centres[labels] + torch.randn(n, cfg.dim, generator=generator)
        return points, labels

    x_train, y_train = draw(cfg.num_train)
    x_test, y_test = draw(cfg.num_test)
    return DataBundle("synthetic", "classification", x_train, y_train, x_test, y_test,
                      num_classes=cfg.num_classes, corrupted=torch.zeros(cfg.num_train, dtype=torch.bool))
