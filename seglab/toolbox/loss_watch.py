"""Watching the training loss without stalling a GPU: losses stay on the device and are read in groups, checked for
NaN/inf (on every process), shown on the progress bar and logged."""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from seglab.errors import SeglabError


class LossWatch:
    """Collects one epoch's step losses; every ``every`` steps (and at the end) copies them to the host at once,
    stops on a non-finite one, and calls ``show(step, loss, lr)`` for each. ``mean()`` is the epoch's mean loss
    across processes."""

    def __init__(self, every: int, device: torch.device, last_step: int, epoch: int, checkpoint: Path,
                 show: Callable[[int, float, float], None]) -> None:
        self.every, self.last_step, self.show = every, last_step, show
        self.epoch, self.checkpoint = epoch, checkpoint
        self.total = torch.zeros(2, device=device)
        self.unread: list[tuple[int, torch.Tensor, float]] = []

    def add(self, step: int, loss: torch.Tensor, lr: float) -> None:
        """Record a step's loss (still on the device) and the learning rate it used."""
        self.total += torch.stack([loss.float(), torch.ones((), device=loss.device)])
        self.unread.append((step, loss, lr))
        if len(self.unread) == self.every or step == self.last_step:
            self._read()

    def _read(self) -> None:
        losses = torch.stack([loss for _, loss, _ in self.unread]).float()
        bad = (~torch.isfinite(losses)).any().float()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(bad)
        values = losses.tolist()
        if bad.item():
            step, value = next(((s, v) for (s, _, _), v in zip(self.unread, values) if not math.isfinite(v)),
                               (self.unread[0][0], float("nan")))  # another process's loss, when none of ours
            raise SeglabError(f"loss became {value} at epoch {self.epoch}, step {step}; stopped, and the last good "
                              f"checkpoint {self.checkpoint} is kept; lower --lr or use --precision fp32")
        for (step, _, lr), value in zip(self.unread, values):
            self.show(step, value, lr)
        self.unread = []

    def mean(self) -> float:
        """The mean loss of the epoch over all processes."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.total)
        return float(self.total[0] / self.total[1].clamp(min=1))
