"""Segmentation losses: every one takes logits (N, C, H, W) and class indices (N, H, W) with 255 = ignore."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seglab.config import TrainConfig
from seglab.labels import IGNORE_INDEX


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_true)^gamma, so that pixels the model already
    gets right count less; gamma 0 is plain cross-entropy."""
    ce = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX, reduction="none")
    p_true = torch.exp(-F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="none"))
    valid = target != IGNORE_INDEX
    pixel_weight = weight[target[valid]] if weight is not None else valid[valid].float()
    return ((1 - p_true) ** gamma * ce)[valid].sum() / pixel_weight.sum().clamp(min=1e-12)


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, thresh: float = 0.7, min_kept: int = 100_000,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """Online hard example mining (as mmsegmentation's OHEMPixelSampler): cross-entropy over the pixels whose true-class
    probability is below ``thresh``, and at least the ``min_kept`` hardest ones."""
    ce = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX, reduction="none")
    keep = ohem_keep(logits, target, thresh, min_kept)
    return ce[keep].mean() if keep.any() else ce.sum() * 0


@torch.no_grad()
def ohem_keep(logits: torch.Tensor, target: torch.Tensor, thresh: float, min_kept: int) -> torch.Tensor:
    """The pixels OHEM trains on: valid, with true-class probability below max(thresh, the min_kept-th smallest)."""
    valid = target != IGNORE_INDEX
    p_true = logits.softmax(1).gather(1, target.clamp(max=logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
    if not valid.any():
        return valid
    ranked = p_true[valid].sort().values
    threshold = max(thresh, float(ranked[min(min_kept, len(ranked) - 1)]))
    return valid & (p_true < threshold)


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovász-softmax (Berman et al. 2018): the Lovász extension of the Jaccard loss, a convex surrogate of 1 - IoU,
    averaged over the classes present in ``target``."""
    valid = target != IGNORE_INDEX
    probs = logits.softmax(1).permute(0, 2, 3, 1)[valid]  # (P, C) for the valid pixels
    labels = target[valid]
    losses = []
    for c in labels.unique():
        foreground = (labels == c).to(probs.dtype)
        errors, order = (foreground - probs[:, c]).abs().sort(descending=True)
        losses.append(torch.dot(errors, jaccard_steps(foreground[order])))
    return torch.stack(losses).mean() if losses else logits.sum() * 0


def jaccard_steps(foreground_sorted: torch.Tensor) -> torch.Tensor:
    """Increments of the Jaccard loss as the pixels, sorted by error, are added one by one to the mispredicted set."""
    total = foreground_sorted.sum()
    intersection = total - foreground_sorted.cumsum(0)
    union = total + (1 - foreground_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over classes, ignored pixels excluded. Per class c: intersection = sum of p_c over the
    pixels labelled c, union = sum of p_c over all valid pixels + the number of pixels labelled c."""
    num_classes = logits.shape[1]
    valid = target != IGNORE_INDEX
    probs = logits.softmax(1)
    p_true = probs.gather(1, target.clamp(max=num_classes - 1).unsqueeze(1)).squeeze(1)
    labels = target[valid]
    inter = torch.zeros(num_classes, dtype=probs.dtype, device=probs.device).index_add(0, labels, p_true[valid])
    truth = torch.bincount(labels, minlength=num_classes).to(probs.dtype)
    union = (probs * valid.unsqueeze(1)).sum((0, 2, 3)) + truth
    return 1 - ((2 * inter + eps) / (union + eps)).mean()


class SegmentationLoss(nn.Module):
    """The run's loss: cross-entropy, focal or OHEM (with optional class weights), plus weighted soft-Dice and
    Lovász-softmax terms, as the TrainConfig fields ``loss``, ``dice_weight`` and ``lovasz_weight`` say."""

    def __init__(self, config: TrainConfig, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        c, logits = self.config, logits.float()
        if c.loss == "focal":
            loss = focal_loss(logits, target, c.focal_gamma, self.weight)
        elif c.loss == "ohem":
            loss = ohem_cross_entropy(logits, target, c.ohem_thresh, c.ohem_min_kept, self.weight)
        else:
            loss = F.cross_entropy(logits, target, weight=self.weight, ignore_index=IGNORE_INDEX)
        if c.dice_weight:
            loss = loss + c.dice_weight * soft_dice_loss(logits, target)
        if c.lovasz_weight:
            loss = loss + c.lovasz_weight * lovasz_softmax(logits, target)
        return loss
