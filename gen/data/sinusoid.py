"""S5's regression task: a 2-D sinusoid hidden in a rotated, scaled 10-D input space."""
import math

import torch
from omegaconf import DictConfig

from gen.data.bundle import DataBundle


def target(points: torch.Tensor, f: float) -> torch.Tensor:
    """cos(2πf·x)·cos(2πf·y) for points ``[N, 2]``, as ``[N, 1]``."""
    return (torch.cos(2 * math.pi * f * points[:, :1]) * torch.cos(2 * math.pi * f * points[:, 1:2]))


def random_orthogonal(dim: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-random orthogonal matrix: QR of a Gaussian matrix, with R's diagonal signs folded in."""
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def load(cfg: DictConfig) -> DataBundle:
    """(x, y) ~ U[−1, 1]², zero-padded to ``dim`` and mapped by ``scale``·Q (Q orthogonal, seeded).

    Inputs are ``[N, dim]`` float: row i is ``scale · Q @ [x_i, y_i, 0, …, 0]``; targets ``[N, 1]``.
    """
    generator = torch.Generator().manual_seed(cfg.data_seed)
    mixing = cfg.scale * random_orthogonal(cfg.dim, generator)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        points = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 2 - 1
        padded = torch.nn.functional.pad(points, (0, cfg.dim - 2))
        return (padded @ mixing.T).float(), target(points, cfg.f).float()

    x_train, y_train = draw(cfg.num_train)
    x_test, y_test = draw(cfg.num_test)
    return DataBundle("sinusoid", "regression", x_train, y_train, x_test, y_test, num_classes=0,
                      corrupted=torch.zeros(cfg.num_train, dtype=torch.bool))
