"""`TrainConfig`: the one description of a training run (plain data, no torch import).

Every field carries its help text and, where the values are a fixed set, its choices. `seglab train` makes one
`--flag` per field from them (seglab.toolbox.cli), notebooks build the config from their parameters with
`TrainConfig.from_params`, and every run saves it as config.json and inside each checkpoint. A recipe is written
once, as a preset file in seglab/presets/ (`TrainConfig.preset("minicity_demo", epochs=5)`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglab.errors import SeglabError

# Columns of a run's history.csv, one row per epoch.
HISTORY_COLUMNS = ["epoch", "lr", "train_loss", "val_loss", "miou", "mdice", "mean_accuracy", "seconds"]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
DATASETS = ("cityscapes", "voc")
PRESET_DIR = Path(__file__).parent / "presets"


def option(default: Any, help: str, choices: tuple | None = None) -> Any:
    """A TrainConfig field with its help text and allowed values (read by the CLI and the checks)."""
    metadata = {"help": help, "choices": choices}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything a training run needs. "Off" is a plain value (0 or "none"), never None."""

    # what and where
    model: str = option("unet", "model name (see `python -m seglab models`)")
    model_options: dict = option({}, "architecture options as KEY=VALUE, repeatable (e.g. backbone=resnet50)")
    dataset: str = option("cityscapes", "label set and layout of --data", DATASETS)
    data: str = option("data/minicity", "dataset root (e.g. data/minicity or the real Cityscapes root)")
    mask_dir: str = option("", "Cityscapes label masks: empty for the dataset's own gtFine labelIds, or the folder of "
                               "labelTrainIds masks `seglab masks` wrote (e.g. <data>/generated_gt)")
    out: str = option("outputs/runs/unet", "run folder: history.csv, last.pt, best.pt, config.json")
    # how long
    epochs: int = option(10, "passes over the training set")
    batch_size: int = option(4, "images per optimiser step (per process under torchrun)")
    max_steps: int = option(0, "cap on training steps per epoch (0: a full pass)")
    # input
    crop: tuple[int, int] = option((256, 256), "training crop H,W after scaling")
    train_resize: float = option(1.0, "training base size as a fraction of the native image size")
    zoom_range: tuple[float, float] = option((0.5, 2.0), "random zoom range LOW,HIGH around the training base size")
    val_resize: float = option(1.0, "validation resize factor while training (1: native size)")
    cat_max_ratio: float = option(1.0, "re-draw a training crop (up to 10 times) while one class covers more than "
                                       "this share of its labelled pixels (1: off)")
    class_uniform: float = option(0.0, "share of training crops centred on a pixel of a class drawn uniformly from "
                                       "the classes in the frame, so rare classes are seen as often as common ones "
                                       "(0: off)")
    # optimiser and schedule
    optimizer: str = option("adamw", "AdamW, or SGD with Nesterov momentum", ("adamw", "sgd"))
    lr: float = option(1e-3, "peak learning rate, reached at the end of the warm-up")
    weight_decay: float = option(1e-4, "decoupled weight decay on conv/linear weights (not norms and biases)")
    momentum: float = option(0.9, "SGD momentum")
    schedule: str = option("poly", "decay after the warm-up: (1-t)^0.9 or half a cosine", ("poly", "cosine"))
    warmup_epochs: float = option(0.5, "linear warm-up length in epochs")
    # loss
    loss: str = option("cross_entropy", "main loss term", ("cross_entropy", "focal", "ohem"))
    class_weights: str = option("none", "per-class weights of the main loss term", ("none", "median_frequency", "enet"))
    focal_gamma: float = option(2.0, "focal loss: easy pixels count (1 - p_true)^gamma")
    ohem_thresh: float = option(0.7, "OHEM: train on the pixels whose true-class probability is below this")
    ohem_min_kept: int = option(100_000, "OHEM: and at least this many of the hardest pixels per batch")
    dice_weight: float = option(0.0, "weight of an extra soft-Dice loss term (0: off)")
    lovasz_weight: float = option(0.0, "weight of an extra Lovász-softmax term, a surrogate of 1 - IoU (0: off)")
    # speed and stability
    precision: str = option("auto", "autocast type; auto: what pays on the device at this batch and crop size "
                                    "(docs/training.md#speed-defaults)", PRECISIONS)
    memory_format: str = option("auto", "layout of images and weights: channels_last (NHWC) or contiguous (NCHW); "
                                        "auto: what pays on the device (docs/training.md#speed-defaults)",
                                MEMORY_FORMATS)
    compile: bool = option(False, "compile the model with torch.compile: faster steps on a GPU after a one-off "
                                  "compile (minutes on a CPU)")
    grad_clip: float = option(1.0, "clip the global gradient norm to this value (0: off)")
    workers: int = option(2, "DataLoader worker processes")
    in_memory: bool = option(False, "decode the training and validation frames once, at the start, and keep them in "
                                    "memory: faster for small datasets such as MiniCity (4 bytes per pixel per frame)")
    seed: int = option(0, "seeds weights, shuffling and augmentation")
    device: str = option("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    sync_bn: bool = option(False, "SyncBatchNorm across processes under torchrun")
    progress: bool = option(True, "progress bars")
    tensorboard: bool = option(True, "TensorBoard event files in the run folder: loss, LR, metrics, per-class IoU, "
                                     "a few validation predictions")

    def check(self) -> None:
        """One-line errors for values that cannot work, before anything is read or written."""
        for f in dataclasses.fields(self):
            value, choices = getattr(self, f.name), f.metadata["choices"]
            if choices and value not in choices:
                raise SeglabError(f"{_flag(f.name)} must be one of {', '.join(choices)}, got {value!r}")
            for number in value if isinstance(value, tuple) else (value,):
                if isinstance(number, float) and not math.isfinite(number):
                    raise SeglabError(f"{_flag(f.name)} must be a finite number, got {value!r}")
        positive = ("epochs", "batch_size", "lr", "train_resize", "val_resize")
        not_negative = ("max_steps", "weight_decay", "momentum", "warmup_epochs", "dice_weight", "grad_clip",
                        "workers", "focal_gamma", "ohem_min_kept", "lovasz_weight")
        for name in positive + not_negative:
            value = getattr(self, name)
            if value < 0 or (value == 0 and name in positive):
                kind = "positive" if name in positive else "zero or positive"
                number = "integer" if isinstance(value, int) else "number"
                raise SeglabError(f"{_flag(name)} must be a {kind} {number}, got {value}")
        if len(self.crop) != 2 or min(self.crop) <= 0:
            raise SeglabError(f"--crop must be two positive sizes H,W, got {self.crop}")
        for name in ("ohem_thresh", "cat_max_ratio"):
            if not 0 < getattr(self, name) <= 1:
                raise SeglabError(f"{_flag(name)} must lie in (0, 1], got {getattr(self, name)}")
        if not 0 <= self.class_uniform <= 1:
            raise SeglabError(f"--class-uniform must lie in [0, 1], got {self.class_uniform}")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise SeglabError(f"--out {self.out} is a file; give a folder for the run")
        low, high = self.zoom_range
        if not 0 < low <= high:
            raise SeglabError(f"--zoom-range must be LOW,HIGH with 0 < LOW <= HIGH, got {low},{high}")

    def to_dict(self) -> dict:
        """JSON-ready values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A config from a dict such as config.json; unknown names fail with one line."""
        unknown = sorted(set(values) - set(field_names()))
        if unknown:
            raise SeglabError(f"unknown training option(s) {', '.join(unknown)}; "
                              "`python -m seglab train --help` lists them")
        return cls(**{k: tuple(v) if field_types()[k].startswith("tuple") else v for k, v in values.items()})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """The recipe written in ``seglab/presets/<name>.toml`` (or a .toml file path), with ``overrides``."""
        return cls.from_dict({**load_preset(name), **overrides})

    @classmethod
    def from_params(cls, params: Any, **overrides: Any) -> TrainConfig:
        """A config from a notebook's parameters: the ``preset`` they name, every parameter named like a field, the
        ``overrides`` dict parameter, then ``overrides``."""
        values = vars(params)
        fields = {k: v for k, v in values.items() if k in field_names()}
        return cls.preset(values.get("preset", ""), **{**fields, **values.get("overrides", {}), **overrides})


def preset_names() -> list[str]:
    """The presets shipped in seglab/presets/."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.toml"))


def load_preset(name: str) -> dict[str, Any]:
    """The field values of a preset name or .toml file ("" gives none: the TrainConfig defaults)."""
    if not name:
        return {}
    path = Path(name) if name.endswith(".toml") else PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise SeglabError(f"no preset {name!r}: use one of {', '.join(preset_names())}, or the path of a .toml file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise SeglabError(f"preset {path} is not valid TOML: {error}") from None


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


def field_types() -> dict[str, str]:
    """Each field's annotation as written (e.g. 'tuple[int, int]'): from_dict turns lists into tuples by it."""
    return {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
