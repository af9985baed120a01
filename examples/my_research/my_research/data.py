"""My dataset: gen's dataset contract is a function of the YAML's keys returning tensors — a mapping with
``x_train``, ``y_train``, ``x_test``, ``y_test`` (and optionally ``num_classes``).  Inputs ``[N, D]`` or
``[N, C, H, W]``; integer labels for classification, float targets for regression."""
import torch


def rings(num_train: int, num_test: int, num_classes: int = 3, noise: float = 0.1, data_seed: int = 0) -> dict:
    """Points on ``num_classes`` concentric circles (class k at radius k + 1), with Gaussian noise."""
    generator = torch.Generator().manual_seed(data_seed)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % num_classes
        angles = torch.rand(n, generator=generator) * 2 * torch.pi
        radii = (labels + 1).float()
        points = torch.stack([radii * angles.cos(), radii * angles.sin()], dim=1)
        return points + noise * torch.randn(n, 2, generator=generator), labels

    x_train, y_train = draw(num_train)
    x_test, y_test = draw(num_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "num_classes": num_classes}
