"""Pieces every seglab model shares: pad-to-stride/crop-back, conv-BN-ReLU blocks, option checks and the loading of
torchvision backbone weights (ImageNet download or a local state-dict file)."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models import vgg as tv_vgg

from seglab.errors import SeglabError

# torchvision's VGG configurations by model name (the letters are the columns of Simonyan & Zisserman's Table 1).
VGG_CONFIGS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}
VGG_ARCHS = tuple(f"{name}{bn}" for name in VGG_CONFIGS for bn in ("", "_bn"))


# ------------------------------------------------------------------------------------------------ option checks
def check_choice(option: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise a one-line SeglabError unless `value` is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise SeglabError(f"option {option}={value!r} is not supported; choose one of {', '.join(map(repr, choices))}")


def check_int(option: str, value: Any, minimum: int = 1) -> None:
    """Raise a one-line SeglabError unless `value` is an int >= `minimum` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SeglabError(f"option {option}={value!r} must be an integer >= {minimum}")


# ------------------------------------------------------------------------------------------- any-size wrapper
class SegmentationModel(nn.Module):
    """Base class: zero-pads the bottom and right of the input to a multiple of `self.stride`, runs `logits` and crops
    the result back to H x W, so every model takes any input size and returns (N, num_classes, H, W) logits.
    Subclasses set `stride` (their total down-sampling) and implement `logits` for inputs divisible by it."""

    stride: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, (-w) % self.stride, 0, (-h) % self.stride))  # zeros at the bottom and right
        return self.logits(padded)[..., :h, :w]

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------------ blocks
class ConvBNReLU(nn.Sequential):
    """k x k convolution (size-keeping padding, optional dilation) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1) -> None:
        padding = dilation * (kernel_size // 2)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """The U-Net unit: two 3x3 conv-BN-ReLU; the second may be dilated (DDU-Net's encoder)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__(ConvBNReLU(in_channels, out_channels),
                         ConvBNReLU(out_channels, out_channels, dilation=dilation))


# --------------------------------------------------------------------------------------------- backbone weights
def vgg_features(arch: str) -> nn.Sequential:
    """torchvision's VGG feature stack (`torchvision.models.<arch>().features`, same layers, keys and init), built
    with torchvision's `make_layers` so that the 120M-parameter classifier, unused here, is never allocated."""
    check_choice("backbone", arch, VGG_ARCHS)
    features = tv_vgg.make_layers(tv_vgg.cfgs[VGG_CONFIGS[arch.removesuffix("_bn")]], batch_norm=arch.endswith("_bn"))
    for m in features.modules():  # the initialisation torchvision.models.vgg.VGG applies to its features
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return features


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:120]


def read_state_dict(path: str | os.PathLike, option: str, builder: str) -> dict:
    """A state dict of tensors read safely from ``path`` (given as ``option``); ``builder`` names the torchvision
    call whose ``state_dict()`` the file should hold, for the error message."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SeglabError(f"{option} file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # any unreadable file is the user's to fix
        raise SeglabError(f"cannot read {option} {path} as a torch state dict: {_one_line(exc)}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SeglabError(f"{option} {path} is not a state dict; save one with "
                          f"torch.save({builder}.state_dict(), PATH)")
    return dict(state)


def download_state_dict(arch: str, offline_fix: str) -> dict:
    """torchvision's DEFAULT weights for ``arch`` (downloaded once into torch's cache); offline, a one-line error."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    try:
        return weights.get_state_dict(progress=False)
    except (OSError, RuntimeError) as exc:  # URLError/HTTPError/timeouts are OSErrors; bad hash: RuntimeError
        raise SeglabError(f"cannot download torchvision's {arch} weights ({weights.url}): {_one_line(exc)}; "
                          f"{offline_fix}") from None


def load_backbone(module: nn.Module, arch: str, pretrained: bool, backbone_weights: str | os.PathLike | None) -> None:
    """Start `module` (keys as torchvision's `arch`) from ImageNet weights (`pretrained=True`) or a local state-dict
    file (`backbone_weights=PATH`); else it stays random. The ImageNet classifier is ignored; a missing or mis-shaped
    tensor is a SeglabError, so a file for the wrong architecture never loads silently."""
    if pretrained and backbone_weights is not None:
        raise SeglabError("give either pretrained=True or backbone_weights=PATH, not both")
    if backbone_weights is not None:
        state = read_state_dict(backbone_weights, "backbone_weights", f"torchvision.models.{arch}()")
    elif pretrained:
        state = download_state_dict(arch, f"offline, pass backbone_weights=PATH (a saved torchvision {arch} state "
                                          "dict) or pretrained=False")
    else:
        return
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        what = f"{len(missing)} tensors missing (first: {missing[0]})" if missing else (
            f"{len(wrong)} tensors of the wrong shape (first: {wrong[0]} {tuple(state[wrong[0]].shape)}, "
            f"expected {tuple(own[wrong[0]].shape)})")
        raise SeglabError(f"the backbone weights are not a torchvision {arch} state dict: {what}; save a matching "
                          f"file with torch.save(torchvision.models.{arch}().state_dict(), PATH)")
    module.load_state_dict({k: state[k] for k in own}, strict=True)
