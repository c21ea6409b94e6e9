"""torchvision's own segmentation models (FCN, DeepLabV3, LR-ASPP) as seglab models: logits at input size.

``weights`` says where the weights come from: ``None`` (random), ``"DEFAULT"`` (torchvision's COCO-with-VOC-labels
weights, downloaded once into torch's cache) or a local file holding torchvision's own state dict. With a number of
classes other than the weights' 21, the class layers start random and everything else is loaded (fine-tuning).
"""
from __future__ import annotations

import os

import torch
import torchvision
from torch import nn

from seglab.errors import SeglabError
from seglab.models.common import download_state_dict, read_state_dict

# seglab name -> torchvision builder in torchvision.models.segmentation
TORCHVISION_MODELS = {f"tv_{arch}": arch for arch in (
    "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large")}


def torchvision_state_dict(arch: str, weights: str | os.PathLike | None) -> dict | None:
    """torchvision's state dict for segmentation model ``arch`` from ``weights`` (None, "DEFAULT" or a file)."""
    if weights is None:
        return None
    if weights == "DEFAULT":
        return download_state_dict(arch, "offline, pass weights=PATH (a saved state dict) or weights=None")
    return read_state_dict(weights, "weights", f"torchvision.models.segmentation.{arch}()")


class TorchvisionSegmentation(nn.Module):
    """A torchvision segmentation network whose forward returns its ``"out"`` logits (already at input size)."""

    arch: str  # set by each registry subclass

    def __init__(self, num_classes: int, *, weights: str | None = None) -> None:
        super().__init__()
        state = torchvision_state_dict(self.arch, weights)
        builder = torchvision.models.get_model_builder(self.arch)
        self.net = builder(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
        if state is not None:
            self._load(state, weights)

    def _load(self, state: dict, source: object) -> None:
        """Load every tensor of ``state`` (auxiliary head dropped); class layers of another size stay random."""
        state = {k.removeprefix("net."): v for k, v in state.items() if not k.startswith("aux_classifier.")}
        own = self.net.state_dict()
        missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
        if missing or unexpected:
            first = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
            raise SeglabError(f"weights {source} are not a torchvision {self.arch} state dict ({first}); save one "
                              f"with torch.save(torchvision.models.segmentation.{self.arch}().state_dict(), PATH)")
        self.net.load_state_dict({k: v for k, v in state.items() if v.shape == own[k].shape}, strict=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def torchvision_classes() -> dict[str, type[TorchvisionSegmentation]]:
    """One registry class per torchvision model (the registry reads the options from the class signature)."""
    return {name: type(name, (TorchvisionSegmentation,), {"arch": arch, "__doc__": f"torchvision's {arch}."})
            for name, arch in TORCHVISION_MODELS.items()}
