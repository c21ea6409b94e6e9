"""DDU-Net: the dilated U-Net (dilated convolutions in the encoder and a dilated bottleneck, sizes kept)."""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.models.common import ConvBNReLU, DoubleConv, check_int
from seglab.models.unet import UNetBase


class DilatedBottleneck(nn.Module):
    """A conv-BN-ReLU followed by a cascade of 3x3 convs with growing dilation; the outputs of every step are
    summed, so the bottleneck sees receptive fields of several sizes at once (padding = dilation keeps the size)."""

    def __init__(self, in_channels: int, out_channels: int, dilations: Sequence[int] = (1, 2, 4, 8)) -> None:
        super().__init__()
        self.entry = ConvBNReLU(in_channels, out_channels)
        self.cascade = nn.ModuleList(ConvBNReLU(out_channels, out_channels, dilation=d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = total = self.entry(x)
        for conv in self.cascade:
            x = conv(x)
            total = total + x
        return total


class DDUNet(UNetBase):
    """DDU-Net, seglab's dilated U-Net (assembled here, not one paper's model): U-Net (Ronneberger et al., MICCAI
    2015) with dilated convolutions (Yu & Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions", ICLR
    2016) where context is gathered.

    Each encoder level is conv 3x3 -> dilated conv 3x3 (`encoder_dilation`); the bottleneck sums the outputs of a
    cascade of dilated convs (`dilations`), as D-LinkNet's centre block (Zhou, Zhang & Wu, CVPR Workshops 2018),
    for a receptive field far beyond U-Net's at the same depth. Padding equals dilation, so sizes are kept; the
    decoder and the default widths (16..256) are U-Net's.
    """

    def __init__(self, num_classes: int, *, base_width: int = 16, depth: int = 4, encoder_dilation: int = 2,
                 dilations: Sequence[int] = (1, 2, 4, 8), upsample: str = "transpose") -> None:
        check_int("encoder_dilation", encoder_dilation)
        if isinstance(dilations, (str, bytes)) or not isinstance(dilations, Sequence) or not dilations:
            raise SeglabError(f"option dilations={dilations!r} must be a non-empty list of integers >= 1")
        for d in dilations:
            check_int("dilations", d)
        super().__init__(num_classes, base_width, depth, upsample,
                         encoder_block=partial(DoubleConv, dilation=encoder_dilation), decoder_block=DoubleConv,
                         bottleneck=partial(DilatedBottleneck, dilations=tuple(dilations)))
