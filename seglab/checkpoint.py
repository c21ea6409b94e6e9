"""Checkpoint files: one atomic write, safe loading (``weights_only=True``), clear errors for bad files.

A checkpoint holds everything needed to rebuild the model and to resume training exactly: model name, options,
num_classes, class names, the state dicts (model, optimizer, scheduler, scaler), epoch, history, seed, the run
config and the seglab version. Only plain Python containers, numbers, strings and tensors are stored, so the
restricted unpickler of ``torch.load(weights_only=True)`` reads it and refuses anything that would run code.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglab import __version__
from seglab.errors import SeglabError
from seglab.files import atomic_write

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, *, model: nn.Module, spec: dict, num_classes: int, class_names: list[str],
                    epoch: int, history: dict, seed: int, config: dict, optimizer=None, scheduler=None,
                    scaler=None, extra: dict | None = None) -> None:
    """Write a checkpoint atomically. ``spec`` is ``{"name": model_name, "options": {...}}``."""
    state = {
        "format_version": FORMAT_VERSION,
        "seglab_version": __version__,
        "model_name": spec["name"],
        "model_options": dict(spec.get("options", {})),
        "num_classes": int(num_classes),
        "class_names": list(class_names),
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "history": history,
        "seed": int(seed),
        "config": config,
        **(extra or {}),
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with the safe unpickler; every failure becomes a one-line SeglabError naming the fix."""
    path = Path(path)
    if not path.is_file():
        raise SeglabError(f"checkpoint {path} not found; train one with `python -m seglab train` or check the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise SeglabError(f"checkpoint {path} contains Python objects that would run code when loaded; refused "
                              "for safety (seglab loads with weights_only=True); use a checkpoint saved by seglab "
                              "from a source you trust") from None
        raise SeglabError(f"checkpoint {path} is corrupt ({exc}); re-download it or use another checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SeglabError(f"checkpoint {path} is truncated or corrupt ({str(exc).splitlines()[0]}); "
                          "re-download it or use the run's other checkpoint (last.pt / best.pt)") from None
    if not isinstance(state, dict) or "format_version" not in state or "model" not in state:
        raise SeglabError(f"{path} is not a seglab checkpoint (no format_version/model entries); "
                          "plain state dicts are loaded with build_model(...).load_state_dict instead")
    if state["format_version"] > FORMAT_VERSION:
        raise SeglabError(f"checkpoint {path} has format version {state['format_version']}, newer than this seglab "
                          f"understands ({FORMAT_VERSION}); upgrade seglab (pip install -U -e .)")
    return state


def model_from_checkpoint(path: str | Path, *, expect_model: str | None = None,
                          expect_num_classes: int | None = None, map_location: str | torch.device = "cpu"
                          ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights; check it is the model the caller expects."""
    from seglab.models import build_model

    state = load_checkpoint(path, map_location)
    name, num_classes = state["model_name"], state["num_classes"]
    if expect_model is not None and expect_model != name:
        raise SeglabError(f"checkpoint {path} holds a {name!r} model, not {expect_model!r}; "
                          f"pass --model {name} or another checkpoint")
    if expect_num_classes is not None and expect_num_classes != num_classes:
        raise SeglabError(f"checkpoint {path} predicts {num_classes} classes but {expect_num_classes} are needed; "
                          "use a checkpoint trained on this dataset")
    # The checkpoint carries the trained weights: never download or read backbone weights again.
    options = {k: v for k, v in state["model_options"].items() if k not in ("pretrained", "backbone_weights")}
    model = build_model(name, num_classes, **options)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise SeglabError(f"checkpoint {path} does not fit model {name!r} with its options "
                          f"({str(exc).splitlines()[0]}); it was saved by an incompatible seglab version") from None
    return model, state
