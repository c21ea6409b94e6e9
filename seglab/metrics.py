"""Segmentation metrics from one confusion matrix, with the conventions of the official Cityscapes evaluation
(``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling``):

* Pixels whose ground truth is the ignore index (255) are dropped before anything is counted, so they are never false
  positives and never true negatives (specificity's TN counts valid pixels only).
* Per-class values are NaN where undefined (0 / 0). A class is *present* when it has ground-truth or predicted pixels;
  ``miou``, ``mdice`` and ``specificity`` average over present classes (the official "mean over non-NaN IoUs"),
  ``mean_accuracy`` (= sensitivity, the macro recall) over classes with ground-truth pixels.
* Category IoU is the IoU of the matrix summed over category blocks, as the official script computes it.

``ConfusionMatrix`` is the short version a student reads; the JSON summary, the per-class table, the sum over DDP
processes and the official reference evaluation are functions beside it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.errors import SeglabError
from seglab.labels import CITYSCAPES_CATEGORIES, CITYSCAPES_CLASS_TO_CATEGORY, CITYSCAPES_CLASSES, IGNORE_INDEX

Categories = tuple[Sequence[str], Sequence[int]]  # (category names, category index of each class)


def confusion_counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(num_classes, num_classes) counts of (truth, prediction) pairs over the non-ignored pixels: one bincount."""
    valid = target != ignore_index
    pairs = target[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den as float64, NaN where den == 0 (undefined, not zero)."""
    return np.divide(num, den, out=np.full(np.shape(den), np.nan), where=np.asarray(den) != 0)


def nanmean(values: np.ndarray) -> float:
    """Mean of the defined (non-NaN) values; NaN when there are none."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


class ConfusionMatrix:
    """Pixel counts of (ground truth, prediction) pairs summed over batches: ``matrix[t, p]``, rows = truth."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: str | None = None) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: Any, target: Any) -> ConfusionMatrix:
        """Add a batch: ``pred`` class indices (N, H, W) or logits (N, C, H, W), ``target`` class indices."""
        pred, target = class_indices(pred, target, self.num_classes, self.ignore_index)
        device = self.matrix.device
        self.matrix += confusion_counts(pred.to(device), target.to(device), self.num_classes, self.ignore_index)
        return self

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """True positives, false positives and false negatives per class, and the number of valid pixels."""
        m = self.matrix.cpu().numpy()
        tp = np.diag(m)
        return tp, m.sum(axis=0) - tp, m.sum(axis=1) - tp, int(m.sum())

    def iou(self) -> np.ndarray:
        """Per-class intersection over union, TP / (TP + FP + FN)."""
        tp, fp, fn, _ = self.counts()
        return ratio(tp, tp + fp + fn)

    def dice(self) -> np.ndarray:
        """Per-class Dice (F1), 2 TP / (2 TP + FP + FN)."""
        tp, fp, fn, _ = self.counts()
        return ratio(2 * tp, 2 * tp + fp + fn)

    def class_accuracy(self) -> np.ndarray:
        """Per-class accuracy = recall = sensitivity, TP / (TP + FN)."""
        tp, _, fn, _ = self.counts()
        return ratio(tp, tp + fn)

    def specificity_per_class(self) -> np.ndarray:
        """Per-class TN / (TN + FP), TN counted over valid pixels."""
        tp, fp, fn, total = self.counts()
        return ratio(total - tp - fp - fn, total - tp - fn)

    def present(self) -> np.ndarray:
        """The classes with ground-truth or predicted pixels (those the macro means average)."""
        tp, fp, fn, _ = self.counts()
        return tp + fp + fn > 0

    def pixel_accuracy(self) -> float:
        tp, _, _, total = self.counts()
        return float(ratio(tp.sum(), total))

    def miou(self) -> float:
        return nanmean(self.iou())

    def mdice(self) -> float:
        return nanmean(self.dice())

    def mean_accuracy(self) -> float:
        return nanmean(self.class_accuracy())

    def specificity(self) -> float:
        return nanmean(np.where(self.present(), self.specificity_per_class(), np.nan))

    def fwiou(self) -> float:
        """Frequency-weighted IoU: IoU of each class weighted by its share of the ground-truth pixels."""
        tp, _, fn, total = self.counts()
        return float((tp + fn) @ np.nan_to_num(self.iou()) / total) if total else math.nan

    def category_iou(self, class_to_category: Sequence[int], num_categories: int | None = None) -> np.ndarray:
        """IoU of each category on the matrix summed over category blocks (the official category score)."""
        mapping = np.asarray(class_to_category)
        k = int(num_categories or mapping.max() + 1)
        collapsed = np.zeros((k, k), dtype=np.int64)
        np.add.at(collapsed, (mapping[:, None], mapping[None, :]), self.matrix.cpu().numpy())
        tp = np.diag(collapsed)
        return ratio(tp, collapsed.sum(axis=0) + collapsed.sum(axis=1) - tp)


# ------------------------------------------------------------------------------------------- beside the class
def class_indices(pred: Any, target: Any, num_classes: int,
                  ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """``pred`` as class indices (the argmax of logits), checked against ``target``: one-line errors, nothing counted."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.ndim == target.ndim + 1 and pred.ndim >= 3:
        if pred.shape[-3] != num_classes:
            raise SeglabError(f"logits have {pred.shape[-3]} channels but the matrix has {num_classes} classes: "
                              "build ConfusionMatrix(num_classes) with the model's number of classes")
        pred = pred.argmax(dim=-3)
    if pred.is_floating_point() or target.is_floating_point():
        raise SeglabError("pass integer class indices (the argmax of the logits), or logits shaped (N, C, H, W)")
    if pred.shape != target.shape:
        raise SeglabError(f"prediction shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}: "
                          "resize the prediction to the label size before evaluating")
    valid = target != ignore_index
    for name, values in (("target", target[valid]), ("prediction", pred.to(target.device)[valid])):
        wrong = (values < 0) | (values >= num_classes)
        if wrong.any():
            raise SeglabError(f"{name} holds label {int(values[wrong][0])}, outside 0..{num_classes - 1} and not the "
                              f"ignore index {ignore_index}: convert label ids to train ids (seglab.labels.ID_TO_TRAINID)")
    return pred, target


def _json_float(value: float) -> float | None:
    """NaN -> None, so that the summary is strict JSON (null: undefined, no pixels of that class)."""
    return None if math.isnan(value) else float(value)


def _names(matrix: ConfusionMatrix, class_names: Sequence[str]) -> list[str]:
    names = list(class_names)
    if len(names) != matrix.num_classes:
        raise SeglabError(f"got {len(names)} class names for a {matrix.num_classes}-class confusion matrix")
    return names


def summary(matrix: ConfusionMatrix, class_names: Sequence[str],
            categories: Categories | None = None) -> dict[str, Any]:
    """The ``evaluate --json`` contract; undefined values are None. ``categories`` = (names, category of each class);
    by default the Cityscapes categories when the classes are Cityscapes', otherwise none."""
    names = _names(matrix, class_names)
    if categories is None and tuple(names) == CITYSCAPES_CLASSES:
        categories = (CITYSCAPES_CATEGORIES, CITYSCAPES_CLASS_TO_CATEGORY)
    category_iou: dict[str, float | None] = {}
    if categories is not None:
        values = matrix.category_iou(categories[1], len(categories[0]))
        category_iou = {name: _json_float(v) for name, v in zip(categories[0], values)}
    return {
        "pixel_accuracy": _json_float(matrix.pixel_accuracy()),
        "mean_accuracy": _json_float(matrix.mean_accuracy()),
        "miou": _json_float(matrix.miou()),
        "mdice": _json_float(matrix.mdice()),
        "fwiou": _json_float(matrix.fwiou()),
        "sensitivity": _json_float(matrix.mean_accuracy()),  # macro recall: the older repositories' name for it
        "specificity": _json_float(matrix.specificity()),
        "per_class_iou": {name: _json_float(v) for name, v in zip(names, matrix.iou())},
        "per_class_dice": {name: _json_float(v) for name, v in zip(names, matrix.dice())},
        "category_iou": category_iou,
    }


def per_class_table(matrix: ConfusionMatrix, class_names: Sequence[str]):
    """Per-class table (index = class name): iou, dice, accuracy (= sensitivity), specificity, pixels, predicted."""
    import pandas as pd

    counts = matrix.matrix.cpu().numpy()
    return pd.DataFrame({"iou": matrix.iou(), "dice": matrix.dice(), "accuracy": matrix.class_accuracy(),
                         "specificity": matrix.specificity_per_class(), "pixels": counts.sum(axis=1),
                         "predicted": counts.sum(axis=0)}, index=pd.Index(_names(matrix, class_names), name="class"))


def all_reduce(matrix: ConfusionMatrix) -> ConfusionMatrix:
    """Sum the counts over all DDP processes (nothing to do without an initialised process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return matrix
    counts = matrix.matrix
    if dist.get_backend() == "nccl" and counts.device.type != "cuda":
        counts = counts.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    matrix.matrix.copy_(counts)  # back from the GPU copy; a no-op when it was reduced in place
    return matrix


# ---------------------------------------------------------------------------------- the official reference
def find_cityscapes_pairs(gt_dir: str | Path, pred_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """Match every ``<city>_<seq>_<frame>_gtFine_labelIds.png`` under ``gt_dir`` with the one
    ``<city>_<seq>_<frame>*.png`` under ``pred_dir`` (the official script's rule); returns (preds, gts)."""
    gt_files = sorted(Path(gt_dir).rglob("*_gtFine_labelIds.png"))
    if not gt_files:
        raise SeglabError(f"no *_gtFine_labelIds.png under {gt_dir}: point it at gtFine/<split> "
                          "(run `python -m seglab masks` first if only polygons exist)")
    by_frame: dict[str, list[Path]] = {}
    for path in Path(pred_dir).rglob("*.png"):
        by_frame.setdefault("_".join(path.name.split("_")[:3]), []).append(path)
    preds = []
    for gt in gt_files:
        key = gt.name[: -len("_gtFine_labelIds.png")]
        found = by_frame.get(key, [])
        if len(found) != 1:
            problem = "no prediction" if not found else f"{len(found)} predictions"
            raise SeglabError(f"{problem} for {key} under {pred_dir}: expected exactly one {key}*.png")
        preds.append(found[0])
    return preds, gt_files


def official_cityscapes_eval(pred_files: Sequence[str | Path], gt_files: Sequence[str | Path]) -> dict[str, Any]:
    """Run cityscapesscripts' evalPixelLevelSemanticLabeling on the same files (reference; quiet, no JSON file,
    no instance-level nIoU). Returns its result dict: classScores, categoryScores, averageScoreClasses, confMatrix."""
    import copy

    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    args = copy.copy(official.args)  # the module keeps one global args object: never mutate it
    args.quiet = True
    args.JSONOutput = False
    args.evalInstLevelScore = False  # needs *_instanceIds.png and is not what we compare
    args.evalPixelAccuracy = False  # its per-image counters are mislabelled upstream; pixel accuracy is in confMatrix
    args.colorized = False
    try:
        return official.evaluateImgLists([str(p) for p in pred_files], [str(g) for g in gt_files], args)
    except SystemExit:  # the script reports problems with print + sys.exit
        raise SeglabError("the official Cityscapes evaluation rejected the files (see the ERROR line above)") from None
