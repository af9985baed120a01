"""torchvision's ResNet-18 for any channel count and image size, batch norm optional.

``small_input_stem`` swaps ImageNet's stem (conv7×7 stride 2 + max-pool) for the conv3×3 stride 1
usual on 32×32 images; the adaptive average pool lets any image size through.
"""
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, ResNet

from gen.models.shapes import require_image


def _no_norm(num_features: int) -> nn.Module:
    return nn.Identity()


class ResNet18(ResNet):
    needs_image = True

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, batch_norm: bool = True,
                 small_input_stem: bool = True):
        require_image("resnet18", input_shape)
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_outputs,
                         norm_layer=nn.BatchNorm2d if batch_norm else _no_norm)
        if small_input_stem:
            self.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(input_shape[0], 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision does
