"""S2's multilayer perceptrons (mlp1, mlp3) and the general ``mlp`` of any depth and width."""
import math

import torch.nn as nn


class MLP(nn.Sequential):
    """Flatten → depth × [Linear(width) → ReLU] → Linear(outputs)."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, depth: int, width: int):
        layers: list[nn.Module] = [nn.Flatten()]
        in_features = math.prod(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        layers.append(nn.Linear(in_features, num_outputs))
        super().__init__(*layers)
