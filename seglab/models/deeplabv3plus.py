"""DeepLabV3+: a dilated torchvision ResNet, torchvision's ASPP and the paper's light decoder."""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

from seglab.errors import SeglabError
from seglab.models.common import ConvBNReLU, SegmentationModel, check_choice, load_backbone

RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
BASIC_BLOCK_ARCHS = ("resnet18", "resnet34")  # torchvision's BasicBlock raises on dilation > 1
ASPP_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


def _dilate_basic_layers(net: torchvision.models.ResNet, dilate: list[bool]) -> None:
    """Trade stride for dilation in layer2..layer4 of a BasicBlock ResNet (18/34), whose torchvision blocks refuse
    `replace_stride_with_dilation`; the dilations are the ones torchvision gives Bottleneck ResNets (the first block
    of a dilated layer keeps the previous dilation, the others use the new one)."""
    dilation = 1
    for layer, flag in zip((net.layer2, net.layer3, net.layer4), dilate):
        if not flag:
            continue
        previous, dilation = dilation, dilation * 2
        for index, block in enumerate(layer):
            d = previous if index == 0 else dilation
            for conv in (block.conv1, block.conv2):
                conv.stride, conv.dilation, conv.padding = (1, 1), (d, d), (d, d)
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)


def dilated_resnet(arch: str, output_stride: int) -> torchvision.models.ResNet:
    """torchvision ResNet `arch` whose last stages use dilation instead of stride, so layer4 is at `output_stride`."""
    dilate = [False, output_stride == 8, True]
    builder = getattr(torchvision.models, arch)
    if arch in BASIC_BLOCK_ARCHS:
        net = builder()
        _dilate_basic_layers(net, dilate)
    else:
        net = builder(replace_stride_with_dilation=dilate)
    net.fc = nn.Identity()  # the ImageNet classifier is not part of a segmentation backbone
    return net


class DeepLabV3Plus(SegmentationModel):
    """DeepLabV3+ (Chen, Zhu, Papandreou, Schroff & Adam, "Encoder-Decoder with Atrous Separable Convolution for
    Semantic Image Segmentation", ECCV 2018).

    Encoder: a torchvision ResNet whose last stage(s) trade stride for dilation (output stride 16 or 8), then ASPP
    (torchvision's: 1x1 conv, three 3x3 atrous convs with rates 6/12/18 at OS16 or 12/24/36 at OS8, image pooling).
    Decoder as in the paper: the stride-4 features (ResNet layer1) projected to 48 channels, concatenated with the
    x4-up-sampled ASPP output, two 3x3 conv-BN-ReLU with 256 channels, a 1x1 classifier, bilinear x4.
    Differences from the paper: ResNet backbones instead of the modified Xception, plain (not depthwise-separable)
    convolutions in ASPP and decoder, and a ResNet-18 default so it trains on a CPU (`backbone="resnet101"` for
    the paper-grade setting). In training mode the batch must hold at least 2 images (BatchNorm after image pooling).
    """

    def __init__(self, num_classes: int, *, backbone: str = "resnet18", output_stride: int = 16,
                 pretrained: bool = False, backbone_weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        check_choice("backbone", backbone, RESNET_ARCHS)
        check_choice("output_stride", output_stride, tuple(ASPP_RATES))
        self.stride = output_stride
        self.backbone = dilated_resnet(backbone, output_stride)
        load_backbone(self.backbone, backbone, pretrained, backbone_weights)
        self.aspp = ASPP(self._channels(self.backbone.layer4), ASPP_RATES[output_stride], out_channels=256)
        self.project = ConvBNReLU(self._channels(self.backbone.layer1), 48, kernel_size=1)
        self.decoder = nn.Sequential(ConvBNReLU(256 + 48, 256), ConvBNReLU(256, 256))
        self.classifier = nn.Conv2d(256, num_classes, kernel_size=1)

    @staticmethod
    def _channels(layer: nn.Sequential) -> int:
        """Output channels of a ResNet stage (its last BatchNorm)."""
        return [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(low-level features at stride 4, high-level features at the output stride)."""
        net = self.backbone
        low = net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))
        return low, net.layer4(net.layer3(net.layer2(low)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            raise SeglabError("DeepLabV3+ needs a batch of at least 2 images in training mode (BatchNorm after "
                              "ASPP image pooling); raise the batch size or call model.eval()")
        low, high = self.features(x)
        context = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.classifier(self.decoder(torch.cat([context, self.project(low)], dim=1)))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
