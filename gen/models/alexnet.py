"""Zhang et al.'s small AlexNet (S2).

Two [conv5×5 → ReLU → max-pool 3 stride 2 → local response norm] modules, then fully connected
layers of 384 and 192 units.  Convolutions and poolings pad like TensorFlow's "SAME" (the original
is the TensorFlow CIFAR-10 tutorial net), which on 3×28×28 gives Zhang's Table 1 count exactly:
1,387,786 parameters with the default channels (64, 64).
"""
import math

import torch.nn as nn

from gen.models.shapes import output_shape, require_image


class AlexNetSmall(nn.Module):
    needs_image = True

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, channels: list[int] = (64, 64),
                 hidden: list[int] = (384, 192)):
        super().__init__()
        require_image("alexnet_small", input_shape)
        layers: list[nn.Module] = []
        in_channels = input_shape[0]
        for out_channels in channels:
            layers += [nn.Conv2d(in_channels, out_channels, 5, padding=2), nn.ReLU(),
                       nn.MaxPool2d(3, stride=2, padding=1), nn.LocalResponseNorm(5, k=2.0)]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        in_features = math.prod(output_shape(self.features, input_shape, "alexnet_small"))
        head: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            head += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        head.append(nn.Linear(in_features, num_outputs))
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(self.features(x))
