"""S4's simple_batch, middle_batch and complex_batch nets.

Blocks conv3×3 → ReLU → BN (that order, as in the original), "M" a 2×2 max-pool, then
Flatten → Linear(→ hidden) → ReLU → Linear(→ outputs).  simple_batch does not pad its convs;
middle and complex pad by 1, without which 28×28 Fashion-MNIST would shrink to nothing.  The
original applied log_softmax over the batch dimension (a bug); we output raw scores and the
objective applies ordinary cross-entropy.
"""
import math

import torch.nn as nn

from gen.models.shapes import layer_plan, output_shape, require_image


class BatchNet(nn.Module):
    needs_image = True

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, layers: list, padding: int, hidden: int):
        super().__init__()
        require_image("batch net", input_shape)
        features: list[nn.Module] = []
        channels = input_shape[0]
        for item in layer_plan("batch net", layers):
            if item == "M":
                features.append(nn.MaxPool2d(2))
                continue
            features += [nn.Conv2d(channels, item, 3, padding=padding), nn.ReLU(), nn.BatchNorm2d(item)]
            channels = item
        self.features = nn.Sequential(*features)
        in_features = math.prod(output_shape(self.features, input_shape, "batch net"))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                                        nn.Linear(hidden, num_outputs))

    def forward(self, x):
        return self.classifier(self.features(x))
