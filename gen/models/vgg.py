"""VGG nets: S1's CIFAR variant, and plain VGG-11/16, with optional batch norm.

Features are 3×3 convs (pad 1) → [BN] → ReLU, with "M" a 2×2 max-pool; a global average pool
then feeds the head Linear(channels → head_width) → [BN1d] → ReLU → Dropout → Linear(→ outputs).
S1's plan [64,64,M,128,128,M,256,256,M,512,512,M] therefore meets the head as Linear(512 → 512)
on any image size.  Pools round up (ceil mode), so 28×28 and 8×8 images never shrink to nothing;
on even sizes (32×32) that is the ordinary pool.
"""
import torch.nn as nn

from gen.models.shapes import layer_plan, require_image


class VGG(nn.Module):
    needs_image = True

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, layers: list, batch_norm: bool = False,
                 head_width: int = 512, head_batch_norm: bool = True, dropout: float = 0.0):
        super().__init__()
        require_image("vgg", input_shape)
        features: list[nn.Module] = []
        channels = input_shape[0]
        for item in layer_plan("vgg", layers):
            if item == "M":
                features.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                continue
            features.append(nn.Conv2d(channels, item, 3, padding=1))
            if batch_norm:
                features.append(nn.BatchNorm2d(item))
            features.append(nn.ReLU())
            channels = item
        self.features = nn.Sequential(*features)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        head: list[nn.Module] = [nn.Linear(channels, head_width)]
        if head_batch_norm:
            head.append(nn.BatchNorm1d(head_width))
        head += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(head_width, num_outputs)]
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))
