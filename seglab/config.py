"""Training-run configuration: plain data (no torch import), shared by the trainer, the CLI and notebooks."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from seglab.errors import SeglabError

# Columns of a run's history.csv, one row per epoch.
HISTORY_COLUMNS = ["epoch", "lr", "train_loss", "val_loss", "miou", "mdice", "mean_accuracy", "seconds"]


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as config.json and inside every checkpoint."""

    model: str = "unet"
    data: str = "data/minicity"
    out: str = "outputs/runs/unet"
    dataset: str = "cityscapes"
    model_options: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 4
    crop: tuple[int, int] = (256, 256)
    scale: float = 1.0  # training base size = scale x the images' native shorter side (before random scaling)
    scale_range: tuple[float, float] = (0.5, 2.0)
    val_scale: float = 1.0  # validation images (and labels, nearest) resized by this factor
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "poly"
    warmup_epochs: float = 0.5
    class_weights: str | None = None  # None, "median_frequency" or "enet"
    dice_weight: float = 0.0
    precision: str = "auto"
    channels_last: bool = True
    grad_clip: float | None = 1.0
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    labels: str = "provided"  # Cityscapes: "provided" labelIds or "generated" labelTrainIds
    max_steps: int | None = None  # cap on training steps per epoch (quick demos and tests)
    sync_bn: bool = False
    progress: bool = True

    def validate(self) -> None:
        """One-line errors for values that cannot work, before anything is read or written."""
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise SeglabError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if len(self.crop) != 2 or min(self.crop) <= 0:
            raise SeglabError(f"crop must be two positive sizes H,W, got {self.crop}")
        if self.lr <= 0 or self.scale <= 0 or self.val_scale <= 0:
            raise SeglabError("lr, scale and val-scale must be positive")
        if self.optimizer not in ("adamw", "sgd"):
            raise SeglabError(f"unknown optimizer {self.optimizer!r}; choose adamw or sgd")
        if self.schedule not in ("poly", "cosine"):
            raise SeglabError(f"unknown schedule {self.schedule!r}; choose poly or cosine")
        if self.max_steps is not None and self.max_steps <= 0:
            raise SeglabError(f"max-steps must be a positive integer, got {self.max_steps}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SeglabError(f"unknown training option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        values = dict(values)
        for name in ("crop", "scale_range"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)
