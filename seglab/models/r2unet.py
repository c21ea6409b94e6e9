"""R2U-Net: U-Net built from recurrent residual convolutional units."""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from seglab.models.common import ConvBNReLU, check_int
from seglab.models.unet import UNetBase


class RecurrentConv(nn.Module):
    """Recurrent convolutional layer: one conv-BN-ReLU unrolled t steps, h(k) = f(x + h(k-1)), h(0) = f(x)."""

    def __init__(self, channels: int, t: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(channels, channels)
        self.t = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        for _ in range(self.t):
            h = self.conv(x + h)
        return h


class RRCNNBlock(nn.Module):
    """Recurrent residual unit: 1x1 conv to the block width, two recurrent conv layers, identity shortcut."""

    def __init__(self, in_channels: int, out_channels: int, t: int = 2) -> None:
        super().__init__()
        self.entry = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.body = nn.Sequential(RecurrentConv(out_channels, t), RecurrentConv(out_channels, t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(x)
        return x + self.body(x)


class R2UNet(UNetBase):
    """R2U-Net (Alom, Hasan, Yakopcic, Taha & Asari, "Recurrent Residual Convolutional Neural Network based on
    U-Net (R2U-Net) for Medical Image Segmentation", arXiv:1802.06955, 2018).

    The U-Net skeleton with every double convolution, in encoder and decoder, replaced by a recurrent residual unit
    (two recurrent conv layers with t=2 unrolled steps that share weights, plus a residual shortcut); the skips are
    concatenated as in U-Net. Differences from the paper: BatchNorm in every recurrent step's conv, and default
    widths 16..256 (`base_width=64` gives the paper's 64..1024).
    """

    def __init__(self, num_classes: int, *, base_width: int = 16, depth: int = 4, t: int = 2,
                 upsample: str = "transpose") -> None:
        check_int("t", t)
        block = partial(RRCNNBlock, t=t)
        super().__init__(num_classes, base_width, depth, upsample, block, block)
