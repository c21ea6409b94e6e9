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


def _byte_valued(values: torch.Tensor) -> bool:
    """True when every value lies in 0..255 (always for uint8), so raw values can index a 256 x 256 histogram."""
    if values.dtype == torch.uint8 or values.numel() == 0:
        return True
    if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
        return False
    low, high = torch.aminmax(values)
    return bool(low >= 0) and bool(high <= 255)


_CALCHIST_EXACT = 2**24  # OpenCV counts in float32: exact up to 2**24 per bin, so larger inputs go in chunks


def _byte_pair_histogram(target: torch.Tensor, pred: torch.Tensor) -> np.ndarray:
    """(256, 256) int64 counts (numpy) of the (target, pred) value pairs of two byte-valued tensors of one shape.

    On the CPU, OpenCV's 2-D ``calcHist`` on the raw bytes: about 2x a single-threaded ``torch.bincount`` over
    ``target << 8 | pred`` keys (no key pass) and unaffected by thread contention on a busy machine. Elsewhere
    (CUDA, MPS) one ``torch.bincount`` on the device; only the 256 x 256 result comes back.
    """
    if target.device.type != "cpu":
        key = (target.to(torch.int32) << 8) | pred.to(torch.int32)
        return torch.bincount(key.flatten(), minlength=256 * 256).view(256, 256).cpu().numpy()
    import cv2

    gt = target.to(torch.uint8).reshape(-1).numpy()
    pr = pred.to(torch.uint8).reshape(-1).numpy()
    hist = np.zeros((256, 256), dtype=np.int64)
    for start in range(0, gt.size, _CALCHIST_EXACT):
        chunk = slice(start, start + _CALCHIST_EXACT)
        hist += cv2.calcHist([gt[chunk], pr[chunk]], [0, 1], None, [256, 256], [0, 256, 0, 256]).astype(np.int64)
    return hist


def _json_float(value: float) -> float | None:
    """NaN -> None so that the summary is strict JSON (null means 'undefined: no pixels of that class')."""
    return None if math.isnan(value) else float(value)


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
    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray,
               lut: np.ndarray | torch.Tensor | None = None) -> ConfusionMatrix:
        """Add one batch: ``pred`` class indices or logits (class axis at -3), ``target`` class indices.

        ``lut`` (256 entries, e.g. ``seglab.labels.ID_TO_TRAINID``) maps raw uint8 values of both before counting;
        it is applied to the 256 x 256 histogram of value pairs, not to every pixel, so it costs nothing.
        """
        self._counts += self.batch_counts(pred, target, lut).to(self._counts.device)
        return self

    @torch.no_grad()
    def batch_counts(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray,
                     lut: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
        """The (n, n + 1) counts ``update`` would add, without touching this matrix (safe to call from threads)."""
        pred = torch.as_tensor(pred)
        target = torch.as_tensor(target, device=pred.device)
        if pred.ndim == target.ndim + 1 and pred.ndim >= 3:
            if pred.shape[-3] != self.num_classes:
                raise SeglabError(f"logits have {pred.shape[-3]} channels but the matrix has {self.num_classes} "
                                  "classes: build ConfusionMatrix(num_classes) with the model's number of classes")
            pred = pred.argmax(dim=-3)
        elif pred.is_floating_point():
            raise SeglabError("predictions are floating point but have no class axis: pass class indices "
                              "(argmax of the logits) or logits shaped (N, C, H, W)")
        if pred.shape != target.shape:
            raise SeglabError(f"prediction shape {tuple(pred.shape)} does not match target shape "
                              f"{tuple(target.shape)}: resize the prediction to the label size before evaluating")
        if target.is_floating_point():
            raise SeglabError("target must hold integer class indices, got a floating point tensor")

        return self._histogram(pred, target, lut)

    def _histogram(self, pred: torch.Tensor, target: torch.Tensor,
                   lut: np.ndarray | torch.Tensor | None) -> torch.Tensor:
        """(n, n + 1) counts of one batch from a histogram over (target code, prediction code) cells.

        Codes: targets are class / ignored (n) / unknown (n + 1), predictions class / not-a-class (n). Byte-valued
        inputs (uint8 files, or any tensor whose values lie in 0..255) skip the per-pixel recoding: one 256 x 256
        histogram of the raw value pairs, whose cells are then moved to their codes (``lut`` applied there too).
        """
        n = self.num_classes
        byte_path = n <= 255 and _byte_valued(pred) and _byte_valued(target)
        if lut is not None and not byte_path:
            raise SeglabError("a lut needs uint8-valued predictions and targets (0..255) and at most 255 classes")
        if byte_path:
            raw = _byte_pair_histogram(target, pred)
            values, target_code, pred_code = self._byte_codes(lut)
            cells = (target_code[:, None] * (n + 1) + pred_code[None, :]).ravel()
            coded = np.bincount(cells, weights=raw.ravel(), minlength=(n + 2) * (n + 1))  # float64: exact < 2**53
            hist = torch.from_numpy(coded.astype(np.int64).reshape(n + 2, n + 1)).to(target.device)
        else:
            target, pred = target.long(), pred.long()
            code = torch.where((target >= 0) & (target < n), target, n + 1)  # n + 1: unknown label
            if self.ignore_index is not None:
                code = torch.where(target == self.ignore_index, n, code)  # n: ignored
            pred = torch.where((pred >= 0) & (pred < n), pred, n)
            hist = torch.bincount((code * (n + 1) + pred).flatten(), minlength=(n + 2) * (n + 1)).view(n + 2, n + 1)
        if bool(hist[n + 1].sum() > 0):
            if byte_path:
                present = np.nonzero(raw.sum(axis=1))[0]
                value = int(values[present[target_code[present] == n + 1]].min())
            else:
                value = int(target[code == n + 1].flatten()[0])
            raise SeglabError(f"target holds label {value}, outside 0..{n - 1} and not the ignore index "
                              f"{self.ignore_index}: convert label ids to train ids (seglab.labels.ID_TO_TRAINID)")
        return hist[:n]

    def _byte_codes(self, lut: np.ndarray | torch.Tensor | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each raw byte value: its value after ``lut``, its target code and its prediction code."""
        n, ignore = self.num_classes, self.ignore_index
        if lut is None:
            values = np.arange(256, dtype=np.int64)
        else:
            values = torch.as_tensor(lut).cpu().numpy().astype(np.int64)
            if values.shape != (256,):
                raise SeglabError(f"a lut must have 256 entries, got shape {values.shape}")
        is_class = (values >= 0) & (values < n)
        target_code = np.where(is_class, values, n + 1)
        if ignore is not None:
            target_code = np.where(values == ignore, n, target_code)
        return values, target_code, np.where(is_class, values, n)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of ``other`` (same classes and ignore index) into this matrix, in place."""
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"can only merge a ConfusionMatrix, got {type(other).__name__}")
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise SeglabError(f"cannot merge a {other.num_classes}-class matrix (ignore {other.ignore_index}) into a "
                              f"{self.num_classes}-class one (ignore {self.ignore_index})")
        self._counts += other._counts.to(self._counts.device)
        return self

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return self.merge(other)

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        return self.copy().merge(other)

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

    def reset(self) -> ConfusionMatrix:
        """Zero the counts (start a new evaluation)."""
        self._counts.zero_()
        return self

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and ints, loadable with ``torch.load(weights_only=True)``."""
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index, "counts": self._counts.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore counts saved by ``state_dict`` (same number of classes and ignore index)."""
        if (state.get("num_classes"), state.get("ignore_index")) != (self.num_classes, self.ignore_index):
            raise SeglabError(f"saved confusion matrix has {state.get('num_classes')} classes / ignore "
                              f"{state.get('ignore_index')}, this one {self.num_classes} / {self.ignore_index}")
        self._counts.copy_(state["counts"])

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

    sensitivity_per_class = class_accuracy

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

    def category_matrix(self, class_to_category: Sequence[int], num_categories: int | None = None) -> np.ndarray:
        """Counts summed over category blocks: (K, K + 1), last column = predictions that are not a class."""
        mapping = np.asarray(class_to_category, dtype=np.int64)
        if mapping.shape != (self.num_classes,):
            raise SeglabError(f"class_to_category needs one category index per class ({self.num_classes}), "
                              f"got {mapping.shape[0] if mapping.ndim else 0}")
        k = int(num_categories if num_categories is not None else mapping.max() + 1)
        columns = np.append(mapping, k)  # the 'not a class' column stays apart
        counts = self._counts.cpu().numpy()
        collapsed = np.zeros((k, k + 1), dtype=np.int64)
        np.add.at(collapsed, (mapping[:, None], columns[None, :]), counts)
        return collapsed

    def category_iou(self, class_to_category: Sequence[int], num_categories: int | None = None) -> np.ndarray:
        """IoU of each category computed on the collapsed matrix (the official Cityscapes category score)."""
        collapsed = self.category_matrix(class_to_category, num_categories)
        tp = np.diag(collapsed)
        fp = collapsed[:, :-1].sum(axis=0) - tp
        fn = collapsed.sum(axis=1) - tp
        return _safe_div(tp, tp + fp + fn)

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
            "sensitivity": _json_float(self.mean_accuracy()),
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

    def __repr__(self) -> str:
        return (f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"pixels={self.total}, miou={self.miou():.4f})")


# ---------------------------------------------------------------------------------------- label files on disk
def _read_label_ids(path: str | Path) -> np.ndarray:
    """A single-channel 8-bit label PNG as (H, W) uint8, decoded with OpenCV (fast)."""
    import cv2

    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise SeglabError(f"cannot read label image {path}: missing, empty or not an image")
    if label.ndim != 2 or label.dtype != np.uint8:
        raise SeglabError(f"{path} is not a single-channel 8-bit label PNG (got shape {label.shape}, {label.dtype}); "
                          "write label ids as one uint8 channel, not a colour rendering")
    return label


def evaluate_label_files(pred_files: Sequence[str | Path], gt_files: Sequence[str | Path],
                         num_classes: int = CITYSCAPES_NUM_CLASSES, lut: np.ndarray | None = ID_TO_TRAINID,
                         matrix: ConfusionMatrix | None = None, workers: int | None = None) -> ConfusionMatrix:
    """Accumulate prediction / ground-truth PNG pairs (e.g. a Cityscapes labelIds export against gtFine).

    Both images go through ``lut`` (default: Cityscapes label id -> train id, void -> 255) before counting, so
    ground-truth void pixels are ignored and predicted void ids count as misses, exactly as the official script.
    ``workers`` threads (default: one per core, at most 8) decode and count pairs concurrently; OpenCV and torch
    release the GIL while they work, and PNG decoding is most of the time.
    """
    workers = max(1, workers if workers is not None else min(8, os.cpu_count() or 1))
    if len(pred_files) != len(gt_files):
        raise SeglabError(f"{len(pred_files)} predictions for {len(gt_files)} ground-truth files: pass matching lists")
    cm = matrix if matrix is not None else ConfusionMatrix(num_classes)

    def count(pred_file: str | Path, gt_file: str | Path) -> torch.Tensor:
        pred, gt = _read_label_ids(pred_file), _read_label_ids(gt_file)
        if pred.shape != gt.shape:
            raise SeglabError(f"prediction {pred_file} is {pred.shape[1]}x{pred.shape[0]} but ground truth {gt_file} "
                              f"is {gt.shape[1]}x{gt.shape[0]}: export predictions at full label resolution")
        return cm.batch_counts(torch.from_numpy(pred), torch.from_numpy(gt), lut)

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
