"""My model: gen's model contract is ``Model(input_shape, num_outputs, **my_keys)`` → an nn.Module mapping
a batch ``[N, *input_shape]`` to raw scores ``[N, num_outputs]`` (logits, no softmax)."""
import math

import torch.nn as nn


class TwoLayer(nn.Module):
    """Flatten → Linear(D, hidden) → activation → Linear(hidden, classes)."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, hidden: int = 64, activation: str = "relu"):
        super().__init__()
        activations = {"relu": nn.ReLU, "tanh": nn.Tanh}
        if activation not in activations:
            raise ValueError(f"activation must be one of {sorted(activations)}")
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), activations[activation](),
                                 nn.Linear(hidden, num_outputs))

    def forward(self, x):
        return self.net(x)
