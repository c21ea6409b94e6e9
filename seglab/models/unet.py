"""U-Net and U-Net with a VGG13 encoder; also the U-shaped skeleton that R2U-Net and DDU-Net reuse."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torch import nn

from seglab.models.common import (ConvBNReLU, DoubleConv, SegmentationModel, check_choice, check_int, load_backbone,
                                  vgg_features)

UPSAMPLE_MODES = ("transpose", "bilinear")
Block = Callable[[int, int], nn.Module]


def make_upsample(mode: str, in_channels: int, out_channels: int) -> nn.Module:
    """x2 up-sampling that also maps channels: a learned 2x2 transposed conv (the paper's "up-convolution") or
    fixed bilinear interpolation followed by a 1x1 conv-BN-ReLU (no checkerboard artefacts)."""
    check_choice("upsample", mode, UPSAMPLE_MODES)
    if mode == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         ConvBNReLU(in_channels, out_channels, 1))


class UNetDecoder(nn.Module):
    """Expanding path: at each level up-sample x2, concatenate the encoder skip of that level, apply `block`."""

    def __init__(self, in_channels: int, skip_channels: Sequence[int], out_channels: Sequence[int], block: Block,
                 upsample: str) -> None:
        super().__init__()
        ins = [in_channels, *out_channels[:-1]]
        self.ups = nn.ModuleList(make_upsample(upsample, i, o) for i, o in zip(ins, out_channels))
        self.blocks = nn.ModuleList(block(o + s, o) for s, o in zip(skip_channels, out_channels))

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        """`skips` run from the deepest level to the full-resolution one."""
        for up, block, skip in zip(self.ups, self.blocks, skips):
            x = block(torch.cat([skip, up(x)], dim=1))
        return x


class UNetBase(SegmentationModel):
    """U-shaped encoder-decoder: `depth` down-samplings by 2x2 max-pooling, widths base_width * 2**level, one
    `encoder_block` per level (`bottleneck` at the bottom), the mirrored `decoder_block`s and a 1x1 classifier."""

    def __init__(self, num_classes: int, base_width: int, depth: int, upsample: str, encoder_block: Block,
                 decoder_block: Block, bottleneck: Block | None = None) -> None:
        super().__init__()
        check_int("base_width", base_width)
        check_int("depth", depth)
        check_choice("upsample", upsample, UPSAMPLE_MODES)
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.stride = 2**depth
        stages: list[nn.Module] = [encoder_block(3, widths[0])]
        for level in range(1, depth + 1):
            block = bottleneck if level == depth and bottleneck is not None else encoder_block
            stages.append(nn.Sequential(nn.MaxPool2d(2), block(widths[level - 1], widths[level])))
        self.encoder = nn.ModuleList(stages)
        skips = widths[-2::-1]
        self.decoder = UNetDecoder(widths[-1], skips, skips, decoder_block, upsample)
        self.classifier = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        features = []
        for stage in self.encoder:
            x = stage(x)
            features.append(x)
        return self.classifier(self.decoder(features[-1], features[-2::-1]))


class UNet(UNetBase):
    """U-Net (Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    MICCAI 2015).

    Differences from the paper: 3x3 convolutions are zero-padded so the output has the input size (no cropping of
    the skip connections, no overlap-tile), BatchNorm follows every convolution, and the default widths are
    16..256 (`base_width=16`) so it trains on a CPU; `base_width=64, depth=4` gives the paper's 64..1024.
    """

    def __init__(self, num_classes: int, *, base_width: int = 16, depth: int = 4, upsample: str = "transpose") -> None:
        super().__init__(num_classes, base_width, depth, upsample, DoubleConv, DoubleConv)


class UNetVGG13(SegmentationModel):
    """U-Net whose contracting path is torchvision's VGG13 feature stack (Simonyan & Zisserman, ICLR 2015), as in
    TernausNet (Iglovikov & Shvets, 2018, which used VGG11): the five conv blocks give the skips at strides 1..16,
    VGG's fifth max-pool leads to a 512-channel centre block at stride 32, and a U-Net decoder with
    256, 256, 128, 64, 32 channels climbs back. The encoder can start from ImageNet weights.
    """

    stride = 32
    SKIP_CHANNELS = (512, 512, 256, 128, 64)  # VGG13 block outputs, deepest first
    DECODER_CHANNELS = (256, 256, 128, 64, 32)

    def __init__(self, num_classes: int, *, upsample: str = "transpose", pretrained: bool = False,
                 backbone_weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.backbone = nn.ModuleDict({"features": vgg_features("vgg13")})  # keys as in torchvision's vgg13
        load_backbone(self.backbone, "vgg13", pretrained, backbone_weights)
        self.center = DoubleConv(512, 512)
        self.decoder = UNetDecoder(512, self.SKIP_CHANNELS, self.DECODER_CHANNELS, DoubleConv, upsample)
        self.classifier = nn.Conv2d(self.DECODER_CHANNELS[-1], num_classes, kernel_size=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for layer in self.backbone["features"]:
            if isinstance(layer, nn.MaxPool2d):  # the feature map just before each pooling is a skip
                skips.append(x)
            x = layer(x)
        return self.classifier(self.decoder(self.center(x), skips[::-1]))
