"""S5's steady-learner models: a first layer whose weight is the identity and whose bias trains.

S5 tracks the trajectory of that first-layer bias; it is ``model.input_bias.bias``.  The fixed
identity weight is not stored as a parameter (it never trains), so norms, sharpness and parameter
counts see only what the optimizer moves.
"""
import math

import torch
import torch.nn as nn

from gen.models.shapes import output_shape, require_image
from gen.config import ConfigError


class InputBias(nn.Module):
    """x ↦ x + b: a Linear layer with its weight fixed to the identity."""

    def __init__(self, num_features: int):
        super().__init__()
        bound = 1 / math.sqrt(num_features)  # nn.Linear's default bias initialisation
        self.bias = nn.Parameter(torch.empty(num_features).uniform_(-bound, bound))

    def forward(self, x):
        return x + self.bias


def one_output(model_name: str, num_outputs: int) -> int:
    """S5's nets end in one unit: a regression target, or the logit of a 2-class problem."""
    if num_outputs not in (1, 2):
        raise ConfigError("model", model_name, f"has one output unit, for regression or a 2-class task; "
                                               f"the dataset needs {num_outputs} outputs")
    return 1


class SteadyMLP(nn.Module):
    """InputBias → Linear(→32) → ReLU → Linear(→32) → ReLU → Linear(→32) → ReLU → Linear(→1)."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, hidden: list[int] = (32, 32, 32)):
        super().__init__()
        in_features = math.prod(input_shape)
        out_features = one_output("steady_mlp", num_outputs)
        self.flatten = nn.Flatten()
        self.input_bias = InputBias(in_features)
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        layers.append(nn.Linear(in_features, out_features))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(self.input_bias(self.flatten(x)))


class SteadyCNN(nn.Module):
    """InputBias over the flattened image → conv5×5 96 → ReLU → max-pool 3 → conv5×5 384 → ReLU →
    max-pool 3 → Linear(→384) → ReLU → Linear(→1): one logit, for S5's airplane-vs-dog task."""
    needs_image = True

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, channels: list[int] = (96, 384),
                 hidden: int = 384):
        super().__init__()
        require_image("steady_cnn", input_shape)
        if num_outputs != 2:
            raise ConfigError("model", "steady_cnn", f"is a binary classifier (one logit): it needs a 2-class "
                                                     f"dataset; this one needs {num_outputs} outputs")
        self.flatten = nn.Flatten()
        self.input_bias = InputBias(math.prod(input_shape))
        self.unflatten = nn.Unflatten(1, tuple(input_shape))
        layers: list[nn.Module] = []
        in_channels = input_shape[0]
        for out_channels in channels:
            layers += [nn.Conv2d(in_channels, out_channels, 5), nn.ReLU(), nn.MaxPool2d(3)]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        in_features = math.prod(output_shape(self.features, input_shape, "steady_cnn"))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x):
        x = self.unflatten(self.input_bias(self.flatten(x)))
        return self.classifier(self.features(x))
