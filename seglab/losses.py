"""Segmentation losses: every one takes logits (N, C, H, W) and class indices (N, H, W) with 255 = ignore."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seglab.labels import IGNORE_INDEX


class SegmentationLoss(nn.Module):
    """Cross-entropy with ignore 255 (optional class weights), plus an optional soft-Dice term on valid pixels."""

    def __init__(self, weight: torch.Tensor | None = None, dice_weight: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight if weight is not None else None)
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        loss = F.cross_entropy(logits, target, weight=self.weight, ignore_index=IGNORE_INDEX)
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, target)
        return loss


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over classes, ignored pixels excluded."""
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    probs = logits.softmax(1) * valid
    one_hot = F.one_hot(target.clamp(max=logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2) * valid
    inter = (probs * one_hot).sum((0, 2, 3))
    union = probs.sum((0, 2, 3)) + one_hot.sum((0, 2, 3))
    return 1 - ((2 * inter + eps) / (union + eps)).mean()
