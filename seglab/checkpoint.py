"""Checkpoint files: one record (`Checkpoint`) written atomically and read safely (``weights_only=True``).

The record holds each fact once: the model's spec (``model.seglab_spec``: name, num_classes, options), the class
names, the run's config, the training state (model, optimizer, scheduler and scaler state dicts, epoch, history,
best mIoU) and the seglab version. Only plain containers, numbers, strings and tensors are stored, so the restricted
unpickler of ``torch.load(weights_only=True)`` reads it and refuses anything that would run code.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from seglab import __version__
from seglab.config import TrainConfig
from seglab.errors import SeglabError
from seglab.toolbox.checkpoint_files import read_record
from seglab.toolbox.files import atomic_write

FORMAT_VERSION = 3  # 3: scale, scale_range, val_scale, labels, channels_last became train_resize, zoom_range,
#                      val_resize, mask_dir, memory_format


@dataclass
class Checkpoint:
    """What a checkpoint file holds; `Checkpoint.load` returns one, `save` writes one."""

    spec: dict  # model.seglab_spec: {"name", "num_classes", "options"}; build_model(**) rebuilds the model
    class_names: list[str]
    config: dict  # TrainConfig.to_dict() of the run
    model: dict  # the model's state dict
    optimizer: dict | None = None
    scheduler: dict | None = None
    scaler: dict | None = None
    epoch: int = 0
    history: dict = field(default_factory=dict)
    best_miou: float = -1.0
    seglab_version: str = __version__
    format_version: int = FORMAT_VERSION

    @property
    def run_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config)

    @property
    def dataset(self) -> str:
        return self.run_config.dataset

    def save(self, path: str | Path) -> None:
        """Write the record atomically as a plain dict."""
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
        """Read a checkpoint with the safe unpickler (``torch.load(weights_only=True)``); a bad file is a one-line
        SeglabError naming the fix, and older formats are upgraded (seglab.toolbox.checkpoint_files)."""
        return cls(**read_record(path, FORMAT_VERSION, map_location))


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def model_from_checkpoint(path: str | Path | Checkpoint, *, expect_model: str | None = None,
                          expect_num_classes: int | None = None, map_location: str | torch.device = "cpu"
                          ) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model a checkpoint (a file or a record) describes and load its weights; check it is the model the
    caller expects."""
    from seglab.models import build_model

    record = path if isinstance(path, Checkpoint) else Checkpoint.load(path, map_location)
    if isinstance(path, Checkpoint):
        path = f"record of {record.spec['name']}"  # for the messages below
    name, num_classes = record.spec["name"], record.spec["num_classes"]
    if expect_model is not None and expect_model != name:
        raise SeglabError(f"checkpoint {path} holds a {name!r} model, not {expect_model!r}; "
                          f"pass --model {name} or another checkpoint")
    if expect_num_classes is not None and expect_num_classes != num_classes:
        raise SeglabError(f"checkpoint {path} predicts {num_classes} classes but {expect_num_classes} are needed; "
                          "use a checkpoint trained on this dataset")
    model = build_model(name, num_classes, **record.spec["options"])  # the spec has no weight-loading options
    try:
        model.load_state_dict(record.model)
    except RuntimeError:
        raise SeglabError(f"checkpoint {path} does not fit model {name!r} with its options; it was saved by an "
                          "incompatible seglab version") from None
    return model, record
