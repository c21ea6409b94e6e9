"""Reading checkpoint files safely: every way a file can be wrong becomes one line naming the fix, and records of
older formats are brought up to date, so the lesson's `Checkpoint.load` stays a few lines."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from seglab.errors import SeglabError

# Names of training options that changed; old records are read with the new names.
RENAMED_OPTIONS = {"scale": "train_resize", "scale_range": "zoom_range", "val_scale": "val_resize"}


def read_record(path: str | Path, newest_format: int, map_location: str | torch.device = "cpu") -> dict:
    """The dict a checkpoint file holds, read with ``torch.load(weights_only=True)`` and upgraded to
    ``newest_format``."""
    path = Path(path)
    if path.is_dir():
        inside = [name for name in ("best.pt", "last.pt") if (path / name).is_file()]
        raise SeglabError(f"{path} is a folder; pass the checkpoint file inside it"
                          + (f", e.g. {path / inside[0]}" if inside else " (best.pt or last.pt of a run)"))
    if not path.is_file():
        raise SeglabError(f"checkpoint {path} not found; train one with `python -m seglab train` or check the path")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch.save writes a zip (or a legacy pickle)
        raise SeglabError(f"{path} is not a checkpoint (not a file torch.save wrote); pass the best.pt or last.pt "
                          "a training run wrote")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise SeglabError(f"checkpoint {path} holds Python objects that would run code when loaded; refused "
                              "for safety (seglab loads with weights_only=True): use a checkpoint from a source you "
                              "trust") from None
        raise SeglabError(f"checkpoint {path} is corrupt; use the run's other checkpoint or train again") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError):
        raise SeglabError(f"checkpoint {path} is truncated or corrupt; use the run's other checkpoint "
                          "(last.pt / best.pt) or train again") from None
    if not isinstance(state, dict) or "format_version" not in state or "model" not in state:
        raise SeglabError(f"{path} is not a seglab checkpoint; load a plain state dict with "
                          "build_model(...).load_state_dict instead")
    if state["format_version"] > newest_format:
        raise SeglabError(f"checkpoint {path} has format {state['format_version']}, newer than this seglab "
                          f"reads ({newest_format}); upgrade seglab (pip install -U -e .)")
    if state["format_version"] == 1:
        state = _from_format_1(state)
    if state["format_version"] == 2:
        state = {**state, "config": {RENAMED_OPTIONS.get(k, k): v for k, v in state["config"].items()},
                 "format_version": 3}
        channels_last = state["config"].pop("channels_last", True)
        state["config"]["memory_format"] = "channels_last" if channels_last else "contiguous"
        labels = state["config"].pop("labels", "provided")  # "provided", "generated" or a folder
        if labels != "provided":
            generated = str(Path(state["config"].get("data", "data/minicity")) / "generated_gt")
            state["config"]["mask_dir"] = generated if labels == "generated" else labels
        from seglab.config import field_names  # options retired before format 3 are dropped, once, here

        state["config"] = {k: v for k, v in state["config"].items() if k in field_names()}
    return state


def _from_format_1(state: dict) -> dict:
    """The format-2 record of a version-1 checkpoint, which stored the model name, options, dataset and seed twice."""
    from seglab.models import INIT_OPTIONS

    config = {**state["config"], "dataset": state.get("dataset", state["config"].get("dataset", "cityscapes"))}
    for name, off in (("class_weights", "none"), ("grad_clip", 0.0), ("max_steps", 0)):
        if config.get(name, off) is None:
            config[name] = off
    options = {k: v for k, v in state["model_options"].items() if k not in INIT_OPTIONS}
    return {"spec": {"name": state["model_name"], "num_classes": state["num_classes"], "options": options},
            "class_names": state["class_names"], "config": config,
            **{k: state.get(k) for k in ("model", "optimizer", "scheduler", "scaler")},
            "epoch": state["epoch"], "history": state["history"], "best_miou": state.get("best_miou", -1.0),
            "seglab_version": state.get("seglab_version", "0.1.0"), "format_version": 2}
