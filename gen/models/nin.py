"""Network-in-Network, as Jiang et al. 2020 and Dziugaite et al. 2020 sweep it.

``depth`` blocks of [conv3×3 stride 2 → conv1×1 → conv1×1], each conv → [BN] → ReLU, with
``25 × width`` channels (width is D's multiplier) and optional dropout after each block; the head
is conv1×1 → outputs channels → [BN] → ReLU → global average pool.
"""
import torch.nn as nn

from gen.models.shapes import require_image

BASE_CHANNELS = 25


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU())
    return layers


class NiN(nn.Sequential):
    needs_image = True

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, depth: int = 2, width: int = 4,
                 batch_norm: bool = True, dropout: float = 0.0):
        require_image("nin", input_shape)
        channels = BASE_CHANNELS * width
        layers: list[nn.Module] = []
        in_channels = input_shape[0]
        for _ in range(depth):
            layers += conv_bn_relu(in_channels, channels, 3, 2, batch_norm)
            layers += conv_bn_relu(channels, channels, 1, 1, batch_norm)
            layers += conv_bn_relu(channels, channels, 1, 1, batch_norm)
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_channels = channels
        layers += conv_bn_relu(in_channels, num_outputs, 1, 1, batch_norm)
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(*layers)
