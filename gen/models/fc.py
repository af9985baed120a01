"""S1's two-layer fully connected network."""
import math

import torch.nn as nn


class FullyConnected(nn.Sequential):
    """Flatten → Linear(in, H) → ReLU → Linear(H, outputs)."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, hidden_units: int):
        in_features = math.prod(input_shape)
        super().__init__(nn.Flatten(), nn.Linear(in_features, hidden_units), nn.ReLU(),
                         nn.Linear(hidden_units, num_outputs))
