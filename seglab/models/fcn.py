"""FCN-8s: a VGG classifier turned fully convolutional, with skip predictions from pool3 and pool4."""
from __future__ import annotations

import os

import torch
from torch import nn

from seglab.models.common import VGG_ARCHS, SegmentationModel, check_choice, check_int, load_backbone, vgg_features


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights that make a per-channel ConvTranspose2d(kernel_size, stride=kernel_size // 2,
    padding=kernel_size // 4) an exact bilinear up-sampling (align_corners=False) away from the border."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(kernel_size, dtype=torch.float32) - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = taps[:, None] * taps[None, :]
    return weight


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Learnable x`factor` up-sampling initialised to bilinear interpolation (output = factor * input size)."""
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


def zero_conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1x1 score layer starting at zero, so a new skip adds nothing until it has learned something."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class FCN8s(SegmentationModel):
    """FCN-8s (Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015).

    A torchvision VGG feature stack; fc6 (7x7) and fc7 (1x1) as convolutions; class scores at stride 32 are
    up-sampled x2 and added to scores from pool4, x2 again plus scores from pool3, then x8 to the input. The
    transposed convolutions start as bilinear up-sampling, the pool3/pool4 score layers start at zero.
    Differences from the paper: `fc_channels` defaults to 1024 instead of 4096 (about 16x fewer fc weights, so it
    trains on a CPU) and fc6/fc7 start from random weights instead of the converted ImageNet classifier; the
    default backbone is VGG11-BN (VGG16 in the paper, `backbone="vgg16"`); the input is padded to a multiple of 32
    instead of the paper's 100-pixel padding and crop offsets.
    """

    stride = 32

    def __init__(self, num_classes: int, *, backbone: str = "vgg11_bn", fc_channels: int = 1024,
                 pretrained: bool = False, backbone_weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        check_choice("backbone", backbone, VGG_ARCHS)
        check_int("fc_channels", fc_channels)
        self.backbone = nn.ModuleDict({"features": vgg_features(backbone)})  # keys as in torchvision's VGG
        load_backbone(self.backbone, backbone, pretrained, backbone_weights)
        self.fc = nn.Sequential(
            nn.Conv2d(512, fc_channels, kernel_size=7, padding=3), nn.ReLU(inplace=True), nn.Dropout(0.5),  # fc6
            nn.Conv2d(fc_channels, fc_channels, kernel_size=1), nn.ReLU(inplace=True), nn.Dropout(0.5),  # fc7
        )
        self.score_fr = nn.Conv2d(fc_channels, num_classes, kernel_size=1)
        self.score_pool4 = zero_conv1x1(512, num_classes)
        self.score_pool3 = zero_conv1x1(256, num_classes)
        self.upscore2 = bilinear_upsampler(num_classes, 2)
        self.upscore_pool4 = bilinear_upsampler(num_classes, 2)
        self.upscore8 = bilinear_upsampler(num_classes, 8)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        pools = []
        for layer in self.backbone["features"]:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                pools.append(x)
        pool3, pool4, pool5 = pools[2:]
        score = self.upscore2(self.score_fr(self.fc(pool5)))  # stride 16
        score = self.upscore_pool4(score + self.score_pool4(pool4))  # stride 8
        return self.upscore8(score + self.score_pool3(pool3))
