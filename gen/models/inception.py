"""Zhang et al.'s small Inception (S2, their Fig. 3), with or without batch norm.

conv3×3 96 → Inc(32,32) → Inc(32,48) → Down(80) → Inc(112,48) → Inc(96,64) → Inc(80,80)
→ Inc(48,96) → Down(96) → Inc(176,160) → Inc(176,160) → global average pool → Linear(336 → outputs).
Inc(a, b) concatenates a 1×1 conv of a channels and a 3×3 conv of b channels; Down(c) concatenates
a stride-2 3×3 conv of c channels and a stride-2 3×3 max-pool.  Every conv is conv → BN → ReLU,
bias-free (BN's shift replaces it); without BN (Zhang's ablation) the convs get their bias back.
For 10 classes: 1,651,114 parameters with BN; Zhang's Table 1 says 1,649,402 because TF-slim's
batch norm has no scale (γ) by default.  We keep PyTorch's ordinary affine BN, which the measures
know how to fold.  Without BN: 1,649,402.
"""
import torch
import torch.nn as nn

from gen.models.shapes import output_shape, require_image

# (kind, sizes) in order; "inc" takes (1×1 channels, 3×3 channels), "down" the conv's channels.
PLAN = [("inc", (32, 32)), ("inc", (32, 48)), ("down", (80,)),
        ("inc", (112, 48)), ("inc", (96, 64)), ("inc", (80, 80)), ("inc", (48, 96)), ("down", (96,)),
        ("inc", (176, 160)), ("inc", (176, 160))]


class ConvBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int,
                 batch_norm: bool):
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels, eps=1e-3))
        layers.append(nn.ReLU())
        super().__init__(*layers)


class Inception(nn.Module):
    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int, batch_norm: bool):
        super().__init__()
        self.branch1x1 = ConvBlock(in_channels, ch1x1, 1, 1, 0, batch_norm)
        self.branch3x3 = ConvBlock(in_channels, ch3x3, 3, 1, 1, batch_norm)
        self.out_channels = ch1x1 + ch3x3

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch3x3(x)], dim=1)


class Downsample(nn.Module):
    def __init__(self, in_channels: int, conv_channels: int, batch_norm: bool):
        super().__init__()
        self.conv = ConvBlock(in_channels, conv_channels, 3, 2, 0, batch_norm)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = conv_channels + in_channels

    def forward(self, x):
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


class InceptionSmall(nn.Module):
    needs_image = True

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, batch_norm: bool = True):
        super().__init__()
        name = "inception_small" if batch_norm else "inception_small_nobn"
        require_image(name, input_shape)
        layers: list[nn.Module] = [ConvBlock(input_shape[0], 96, 3, 1, 1, batch_norm)]
        channels = 96
        for kind, sizes in PLAN:
            block = (Inception if kind == "inc" else Downsample)(channels, *sizes, batch_norm)
            layers.append(block)
            channels = block.out_channels
        self.features = nn.Sequential(*layers)
        output_shape(self.features, input_shape, name)  # a clear error for images too small
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_outputs)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))
