"""One confusion matrix, accumulated with ``torch.bincount``, from which every segmentation metric is derived.

Conventions (the same as the official Cityscapes evaluation, ``cityscapesscripts.evaluation.
evalPixelLevelSemanticLabeling``):

* Only *valid* pixels count: pixels whose ground truth is the ignore index (255) are dropped before anything is
  counted, so they are never false positives and never true negatives.
* A prediction outside ``0..num_classes-1`` (e.g. 255, or a void id turned into 255 by a LUT) on a valid pixel is a
  false negative of the ground-truth class and a false positive of no class. It is kept in a hidden extra column;
  ``.matrix`` shows the ``num_classes x num_classes`` part (rows = ground truth, columns = prediction).
* Per-class values are NaN where they are undefined (0 / 0). A class is **present** when it has ground-truth pixels
  or predicted pixels. ``miou``, ``mdice`` and ``specificity`` average over the present classes (for IoU this is
  exactly the official "mean over classes with a non-NaN IoU"); ``mean_accuracy`` (= ``sensitivity``, the macro
  recall) averages over classes with ground-truth pixels, the only ones where recall is defined.
* Specificity is TN / (TN + FP) with TN counted over valid pixels only (no inflation by void pixels).
* Category IoU collapses the confusion matrix over the category blocks (Cityscapes: flat, construction, object,
  nature, sky, human, vehicle) and computes IoU on the collapsed matrix, as the official script does.
"""
from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.errors import SeglabError
from seglab.fast_confusion import byte_pair_counts
from seglab.files import read_label_png
from seglab.labels import (CITYSCAPES_CATEGORIES, CITYSCAPES_CLASS_TO_CATEGORY, CITYSCAPES_CLASSES,
                           CITYSCAPES_NUM_CLASSES, ID_TO_TRAINID, IGNORE_INDEX)

Categories = tuple[Sequence[str], Sequence[int]]  # (category names, category index of each class)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise num / den as float64, NaN where den == 0 (undefined, not zero)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN (not a warning) when there are none."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _json_float(value: float) -> float | None:
    """NaN -> None so that the summary is strict JSON (null means 'undefined: no pixels of that class')."""
    return None if math.isnan(value) else float(value)


def confusion_counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int | None = IGNORE_INDEX) -> torch.Tensor:
    """(num_classes, num_classes + 1) counts of (truth, prediction) pairs: the whole idea in one ``bincount``.

    Ignored pixels are dropped; a prediction that is not a class goes to the extra last column.
    """
    n = num_classes
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    target, pred = target[valid].long(), pred[valid].long()
    unknown = (target < 0) | (target >= n)
    if unknown.any():
        raise SeglabError(f"target holds label {int(target[unknown][0])}, outside 0..{n - 1} and not the ignore "
                          f"index {ignore_index}: convert label ids to train ids (seglab.labels.ID_TO_TRAINID)")
    pred = torch.where((pred >= 0) & (pred < n), pred, n)
    return torch.bincount(target * (n + 1) + pred, minlength=n * (n + 1)).view(n, n + 1)


class ConfusionMatrix:
    """Accumulates a (num_classes x num_classes) confusion matrix over batches; rows = ground truth, cols = prediction.

    ``update`` accepts class indices ``(N, H, W)`` / ``(H, W)`` or logits ``(N, C, H, W)`` / ``(C, H, W)`` as torch
    tensors (CPU or CUDA) or numpy arrays. The counts live on ``device`` (default CPU) in int64.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX,
                 device: torch.device | str | None = None) -> None:
        if int(num_classes) < 1:
            raise SeglabError(f"num_classes must be a positive integer, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        # one extra column for predictions that are not a class (counted as false negatives only)
        self._counts = torch.zeros(self.num_classes, self.num_classes + 1, dtype=torch.int64,
                                   device=torch.device(device) if device is not None else "cpu")

    # ------------------------------------------------------------------------------------------- accumulate
    @torch.no_grad()
    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> ConfusionMatrix:
        """Add one batch: ``pred`` class indices or logits (class axis at -3), ``target`` class indices."""
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        if pred.ndim == target.ndim + 1 and pred.ndim >= 3:
            if pred.shape[-3] != self.num_classes:
                raise SeglabError(f"logits have {pred.shape[-3]} channels but the matrix has {self.num_classes} "
                                  "classes: build ConfusionMatrix(num_classes) with the model's number of classes")
            pred = pred.argmax(dim=-3)
        if pred.is_floating_point() or target.is_floating_point():
            raise SeglabError("pass integer class indices (the argmax of the logits), or logits shaped (N, C, H, W)")
        if pred.shape != target.shape:
            raise SeglabError(f"prediction shape {tuple(pred.shape)} does not match target shape "
                              f"{tuple(target.shape)}: resize the prediction to the label size before evaluating")
        self._counts += confusion_counts(pred, target.to(pred.device), self.num_classes,
                                         self.ignore_index).to(self._counts.device)
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of ``other`` (same classes and ignore index) into this matrix, in place."""
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"can only merge a ConfusionMatrix, got {type(other).__name__}")
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise SeglabError(f"cannot merge a {other.num_classes}-class matrix (ignore {other.ignore_index}) into a "
                              f"{self.num_classes}-class one (ignore {self.ignore_index})")
        self._counts += other._counts.to(self._counts.device)
        return self

    def copy(self) -> ConfusionMatrix:
        """An independent copy (same classes, ignore index, device and counts)."""
        twin = ConfusionMatrix(self.num_classes, self.ignore_index, self._counts.device)
        twin._counts.copy_(self._counts)
        return twin

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts over all DDP processes (no-op without an initialised process group)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        counts = self._counts
        if dist.get_backend() == "nccl" and counts.device.type != "cuda":
            counts = counts.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(counts, op=dist.ReduceOp.SUM)
        if counts is not self._counts:
            self._counts.copy_(counts)
        return self

    # ------------------------------------------------------------------------------------------------ counts
    @property
    def matrix(self) -> torch.Tensor:
        """(num_classes, num_classes) int64 counts on valid pixels: rows = ground truth, columns = prediction."""
        return self._counts[:, :-1]

    def _stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """tp, fp, fn, gt (pixels per ground-truth class) and the number of valid pixels, as numpy."""
        counts = self._counts.cpu().numpy()
        tp = np.diag(counts).astype(np.int64)
        gt = counts.sum(axis=1)
        predicted = counts[:, :-1].sum(axis=0)
        return tp, predicted - tp, gt - tp, gt, int(gt.sum())

    @property
    def total(self) -> int:
        """Number of valid (non-ignored) pixels counted so far."""
        return int(self._counts.sum())

    def present(self) -> np.ndarray:
        """Boolean mask of the classes with ground-truth or predicted pixels (those the macro means average)."""
        tp, fp, fn, _, _ = self._stats()
        return (tp + fp + fn) > 0

    # ----------------------------------------------------------------------------------------------- metrics
    def pixel_accuracy(self) -> float:
        """Correct valid pixels / valid pixels."""
        tp, _, _, _, total = self._stats()
        return float(_safe_div(tp.sum(), total))

    def class_accuracy(self) -> np.ndarray:
        """Per-class accuracy = recall = sensitivity = TP / (TP + FN); NaN for classes without ground truth."""
        tp, _, _, gt, _ = self._stats()
        return _safe_div(tp, gt)

    def mean_accuracy(self) -> float:
        """Mean class accuracy (macro recall) over classes with ground-truth pixels."""
        return _nanmean(self.class_accuracy())

    def iou(self) -> np.ndarray:
        """Per-class intersection over union TP / (TP + FP + FN); NaN for classes absent from truth and prediction."""
        tp, fp, fn, _, _ = self._stats()
        return _safe_div(tp, tp + fp + fn)

    def miou(self) -> float:
        """Mean IoU over present classes (the official Cityscapes average over non-NaN class IoUs)."""
        return _nanmean(self.iou())

    def dice(self) -> np.ndarray:
        """Per-class Dice / F1 = 2 TP / (2 TP + FP + FN); NaN for absent classes."""
        tp, fp, fn, _, _ = self._stats()
        return _safe_div(2 * tp, 2 * tp + fp + fn)

    def mdice(self) -> float:
        """Mean Dice over present classes."""
        return _nanmean(self.dice())

    def fwiou(self) -> float:
        """Frequency-weighted IoU: sum over classes of (ground-truth pixel share) x IoU."""
        _, _, _, gt, total = self._stats()
        if total == 0:
            return math.nan
        iou = np.nan_to_num(self.iou())  # classes without ground truth get weight 0
        return float((gt / total * iou).sum())

    def specificity_per_class(self) -> np.ndarray:
        """Per-class TN / (TN + FP), TN counted over valid pixels only; NaN where undefined."""
        tp, fp, fn, _, total = self._stats()
        tn = total - tp - fp - fn
        return _safe_div(tn, tn + fp)

    def specificity(self) -> float:
        """Mean specificity over present classes (absent classes would add a meaningless 1.0)."""
        values = self.specificity_per_class()
        return _nanmean(np.where(self.present(), values, np.nan))

    def category_iou(self, class_to_category: Sequence[int], num_categories: int | None = None) -> np.ndarray:
        """IoU of each category on the matrix summed over category blocks (the official Cityscapes category score)."""
        mapping = np.asarray(class_to_category, dtype=np.int64)
        if mapping.shape != (self.num_classes,):
            raise SeglabError(f"class_to_category needs one category index per class ({self.num_classes})")
        k = int(num_categories if num_categories is not None else mapping.max() + 1)
        collapsed = np.zeros((k, k + 1), dtype=np.int64)  # the last column: predictions that are not a class
        np.add.at(collapsed, (mapping[:, None], np.append(mapping, k)[None, :]), self._counts.cpu().numpy())
        tp = np.diag(collapsed)
        return _safe_div(tp, collapsed[:, :-1].sum(axis=0) + collapsed.sum(axis=1) - tp)

    # ------------------------------------------------------------------------------------------------ reports
    def _check_names(self, class_names: Sequence[str]) -> list[str]:
        names = list(class_names)
        if len(names) != self.num_classes:
            raise SeglabError(f"got {len(names)} class names for a {self.num_classes}-class confusion matrix")
        return names

    def summary(self, class_names: Sequence[str], categories: Categories | None = None) -> dict[str, Any]:
        """The ``evaluate --json`` contract; undefined values (no pixels at all) are None.

        ``categories`` is ``(category_names, category_index_of_each_class)``; when None and ``class_names`` are the
        19 Cityscapes classes, the Cityscapes categories are used, otherwise ``category_iou`` is empty.
        """
        names = self._check_names(class_names)
        if categories is None and tuple(names) == CITYSCAPES_CLASSES:
            categories = (CITYSCAPES_CATEGORIES, CITYSCAPES_CLASS_TO_CATEGORY)
        category_iou: dict[str, float | None] = {}
        if categories is not None:
            category_names, mapping = list(categories[0]), categories[1]
            values = self.category_iou(mapping, len(category_names))
            category_iou = {name: _json_float(v) for name, v in zip(category_names, values)}
        return {
            "pixel_accuracy": _json_float(self.pixel_accuracy()),
            "mean_accuracy": _json_float(self.mean_accuracy()),
            "miou": _json_float(self.miou()),
            "mdice": _json_float(self.mdice()),
            "fwiou": _json_float(self.fwiou()),
            "sensitivity": _json_float(self.mean_accuracy()),  # macro recall: the literature's second name for it
            "specificity": _json_float(self.specificity()),
            "per_class_iou": {name: _json_float(v) for name, v in zip(names, self.iou())},
            "per_class_dice": {name: _json_float(v) for name, v in zip(names, self.dice())},
            "category_iou": category_iou,
        }

    def to_dataframe(self, class_names: Sequence[str]):
        """Per-class table (index = class name): iou, dice, accuracy (= sensitivity), specificity, pixels, predicted."""
        import pandas as pd

        names = self._check_names(class_names)
        _, _, _, gt, _ = self._stats()
        frame = pd.DataFrame({
            "iou": self.iou(),
            "dice": self.dice(),
            "accuracy": self.class_accuracy(),
            "specificity": self.specificity_per_class(),
            "pixels": gt,
            "predicted": self.matrix.sum(dim=0).cpu().numpy(),
        }, index=pd.Index(names, name="class"))
        return frame

# ---------------------------------------------------------------------------------------- label files on disk
def evaluate_label_files(pred_files: Sequence[str | Path], gt_files: Sequence[str | Path],
                         num_classes: int = CITYSCAPES_NUM_CLASSES, lut: np.ndarray | None = ID_TO_TRAINID,
                         matrix: ConfusionMatrix | None = None, workers: int | None = None) -> ConfusionMatrix:
    """Accumulate prediction / ground-truth PNG pairs (e.g. a Cityscapes labelIds export against gtFine).

    Both images go through ``lut`` (default: Cityscapes label id -> train id, void -> 255) before counting, so
    ground-truth void pixels are ignored and predicted void ids count as misses, exactly as the official script.
    ``workers`` threads (default: one per core, at most 8) decode and count pairs concurrently (decoding and OpenCV
    release the GIL); counting goes through ``fast_confusion.byte_pair_counts``.
    """
    workers = max(1, workers if workers is not None else min(8, os.cpu_count() or 1))
    if len(pred_files) != len(gt_files):
        raise SeglabError(f"{len(pred_files)} predictions for {len(gt_files)} ground-truth files: pass matching lists")
    cm = matrix if matrix is not None else ConfusionMatrix(num_classes)

    def count(pred_file: str | Path, gt_file: str | Path) -> torch.Tensor:
        pred, gt = read_label_png(pred_file), read_label_png(gt_file)
        if pred.shape != gt.shape:
            raise SeglabError(f"prediction {pred_file} is {pred.shape[1]}x{pred.shape[0]} but ground truth {gt_file} "
                              f"is {gt.shape[1]}x{gt.shape[0]}: export predictions at full label resolution")
        return byte_pair_counts(pred, gt, cm.num_classes, lut, cm.ignore_index)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for pair in zip(pred_files, gt_files):
            pending.append(pool.submit(count, *pair))
            if len(pending) > 2 * workers:  # bounded read-ahead: memory stays flat on long lists
                cm._counts += pending.popleft().result()
        while pending:
            cm._counts += pending.popleft().result()
    return cm


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
