"""TensorBoard event files for a training run: per-step loss and LR, per-epoch metrics, per-class IoU and a few
validation predictions, all against the optimiser step so the curves line up (``tensorboard --logdir outputs/runs``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class TensorBoardLog:
    """A SummaryWriter on a run folder. ``first_step``: steps from there on are dropped from earlier event files (a
    resumed run overwrites what an interrupted epoch had logged; a new run, everything)."""

    def __init__(self, run_dir: str | Path, first_step: int = 1) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when logging

        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=first_step)

    def step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def epoch(self, step: int, row: dict, per_class_iou: dict[str, float | None],
              predictions: list[np.ndarray]) -> None:
        """One epoch's history row (train and validation losses, mIoU, mDice, mean accuracy), its per-class IoU
        (classes absent from the validation set are left out) and image | ground truth | prediction panels."""
        self.writer.add_scalar("train/epoch_loss", row["train_loss"], step)
        for key in ("val_loss", "miou", "mdice", "mean_accuracy"):
            self.writer.add_scalar(f"val/{key.removeprefix('val_')}", row[key], step)
        for name, iou in per_class_iou.items():
            if iou is not None:
                self.writer.add_scalar(f"val_iou/{name}", iou, step)
        for index, panel in enumerate(predictions):
            self.writer.add_image(f"val_prediction/{index}", panel, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
