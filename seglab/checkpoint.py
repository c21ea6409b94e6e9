"""Checkpoint files: one record (`Checkpoint`) written atomically and read safely (``weights_only=True``).

The record holds each fact once: the model's spec (``model.seglab_spec``: name, num_classes, options), the class
names, the run's config, the training state (model, optimizer, scheduler and scaler state dicts, epoch, history,
best mIoU) and the seglab version. Only plain containers, numbers, strings and tensors are stored, so the restricted
unpickler of ``torch.load(weights_only=True)`` reads it and refuses anything that would run code.
"""
from __future__ import annotations

import dataclasses
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from seglab import __version__
from seglab.config import TrainConfig
from seglab.errors import SeglabError
from seglab.toolbox.files import atomic_write

FORMAT_VERSION = 2


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

    @classmethod
    def from_model(cls, model: nn.Module, dataset: str) -> Checkpoint:
        """A record of a registry model that seglab did not train (e.g. torchvision's pretrained weights)."""
        from seglab.labels import get_label_set

        spec = model.seglab_spec
        config = TrainConfig(model=spec["name"], dataset=dataset, model_options=spec["options"])
        return cls(spec=spec, class_names=list(get_label_set(dataset).classes), config=config.to_dict(),
                   model=model.state_dict())

    def save(self, path: str | Path) -> None:
        """Write the record atomically as a plain dict."""
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
        """Read a checkpoint with the safe unpickler; every failure is a one-line SeglabError naming the fix."""
        path = Path(path)
        if path.is_dir():
            inside = [name for name in ("best.pt", "last.pt") if (path / name).is_file()]
            raise SeglabError(f"{path} is a folder; pass the checkpoint file inside it"
                              + (f", e.g. {path / inside[0]}" if inside else " (best.pt or last.pt of a run)"))
        if not path.is_file():
            raise SeglabError(f"checkpoint {path} not found; train one with `python -m seglab train` or check the path")
        if not _looks_like_torch_save(path):
            raise SeglabError(f"{path} is not a checkpoint (not a file torch.save wrote); pass the best.pt or last.pt "
                              "a training run wrote")
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            if "weights_only" in str(exc) or "Unsupported global" in str(exc):
                raise SeglabError(f"checkpoint {path} holds Python objects that would run code when loaded; refused "
                                  "for safety (seglab loads with weights_only=True): use a checkpoint from a source you trust"
                                  ) from None
            raise SeglabError(f"checkpoint {path} is corrupt; use the run's other checkpoint or train again") from None
        except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError):
            raise SeglabError(f"checkpoint {path} is truncated or corrupt; use the run's other checkpoint "
                              "(last.pt / best.pt) or train again") from None
        if not isinstance(state, dict) or "format_version" not in state or "model" not in state:
            raise SeglabError(f"{path} is not a seglab checkpoint; load a plain state dict with "
                              "build_model(...).load_state_dict instead")
        if state["format_version"] > FORMAT_VERSION:
            raise SeglabError(f"checkpoint {path} has format {state['format_version']}, newer than this seglab "
                              f"reads ({FORMAT_VERSION}); upgrade seglab (pip install -U -e .)")
        if state["format_version"] == 1:
            state = _from_format_1(state)
        return cls(**state)


def _looks_like_torch_save(path: Path) -> bool:
    """True when ``path`` starts like a torch.save file: a zip archive, or a legacy pickle (protocol byte 0x80)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _from_format_1(state: dict) -> dict:
    """The record of a version-1 checkpoint, which stored the model name, options, dataset and seed twice."""
    config = {**state["config"], "dataset": state.get("dataset", state["config"].get("dataset", "cityscapes"))}
    for name, off in (("class_weights", "none"), ("grad_clip", 0.0), ("max_steps", 0)):
        if config.get(name, off) is None:
            config[name] = off
    from seglab.models import INIT_OPTIONS

    names = set(TrainConfig.__dataclass_fields__)
    options = {k: v for k, v in state["model_options"].items() if k not in INIT_OPTIONS}
    return {"spec": {"name": state["model_name"], "num_classes": state["num_classes"], "options": options},
            "class_names": state["class_names"], "config": {k: v for k, v in config.items() if k in names},
            **{k: state.get(k) for k in ("model", "optimizer", "scheduler", "scaler")},
            "epoch": state["epoch"], "history": state["history"], "best_miou": state.get("best_miou", -1.0),
            "seglab_version": state.get("seglab_version", "0.1.0")}


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
