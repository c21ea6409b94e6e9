"""The model registry: `build_model(name, num_classes, **options)` builds any seglab model by name.

Every model takes (N, 3, H, W) images of any size and returns (N, num_classes, H, W) logits. The built model
carries `model.seglab_spec = {"name", "num_classes", "options"}` (architecture options with defaults filled in), so
`build_model(spec["name"], spec["num_classes"], **spec["options"])` rebuilds it, e.g. from a checkpoint.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, NamedTuple

import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.models.ddunet import DDUNet
from seglab.models.deeplabv3plus import DeepLabV3Plus
from seglab.models.fcn import FCN8s
from seglab.models.r2unet import R2UNet
from seglab.models.torchvision_seg import torchvision_classes
from seglab.models.unet import UNet, UNetVGG13

# Options that only choose where initial weights come from; a checkpoint's state dict replaces them, so they are
# left out of `seglab_spec` (rebuilding from a checkpoint must not need the internet or the original file).
INIT_OPTIONS = ("pretrained", "backbone_weights", "weights")


class _Entry(NamedTuple):
    cls: type[nn.Module]
    family: str
    paper: str


_REGISTRY: dict[str, _Entry] = {
    "unet": _Entry(UNet, "U-Net", "Ronneberger et al., MICCAI 2015"),
    "unet_vgg13": _Entry(UNetVGG13, "U-Net", "Ronneberger et al. 2015 + VGG13 encoder (TernausNet-style)"),
    "fcn8s": _Entry(FCN8s, "FCN", "Long et al., CVPR 2015"),
    "deeplabv3plus": _Entry(DeepLabV3Plus, "DeepLab", "Chen et al., ECCV 2018"),
    "r2unet": _Entry(R2UNet, "R2U-Net", "Alom et al., arXiv:1802.06955, 2018"),
    "ddunet": _Entry(DDUNet, "DDU-Net", "seglab's dilated U-Net: U-Net + Yu & Koltun 2016 dilations + D-LinkNet's "
                                        "summed cascade (Zhou et al. 2018)"),
    **{name: _Entry(cls, "torchvision", f"torchvision.models.segmentation.{cls.arch}")
       for name, cls in torchvision_classes().items()},
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)
# The architectures written in seglab (the tv_* models wrap torchvision's networks unchanged).
NATIVE_MODEL_NAMES: tuple[str, ...] = tuple(name for name, entry in _REGISTRY.items() if entry.family != "torchvision")


class ModelInfo(NamedTuple):
    """One row of `list_models()`."""

    name: str
    family: str
    paper: str
    params: int  # trainable parameters at num_classes=19 (Cityscapes) with default options
    options: dict[str, Any]  # every option with its default


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise SeglabError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return _REGISTRY[name]


def model_options(name: str) -> dict[str, Any]:
    """Every option of model `name` with its default value (read from the class signature)."""
    parameters = inspect.signature(_entry(name).cls.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _plain(value: Any) -> Any:
    """Tuples become lists so the spec round-trips through JSON and torch.load(weights_only=True) unchanged."""
    return list(value) if isinstance(value, tuple) else value


def build_model(name: str, num_classes: int, **options: Any) -> nn.Module:
    """Build model `name` with `num_classes` output channels; unknown names/options are a one-line SeglabError."""
    defaults = model_options(name)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        raise SeglabError(f"unknown option {unknown[0]!r} for model {name!r}; valid options: {valid}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise SeglabError(f"num_classes must be a positive integer, got {num_classes!r}")
    model = _entry(name).cls(num_classes, **options)
    arch = {k: _plain(options.get(k, v)) for k, v in defaults.items() if k not in INIT_OPTIONS}
    model.seglab_spec = {"name": name, "num_classes": num_classes, "options": arch}
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@functools.lru_cache(maxsize=None)
def _params(name: str, num_classes: int) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        return count_parameters(build_model(name, num_classes))


def list_models(num_classes: int = 19) -> list[ModelInfo]:
    """One row per model: name, family, paper, parameters at `num_classes` with default options, options."""
    return [
        ModelInfo(name, entry.family, entry.paper, _params(name, num_classes), model_options(name))
        for name, entry in _REGISTRY.items()
    ]


__all__ = ["MODEL_NAMES", "NATIVE_MODEL_NAMES", "INIT_OPTIONS", "ModelInfo", "build_model", "count_parameters",
           "list_models", "model_options"]
