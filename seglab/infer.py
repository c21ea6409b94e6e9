"""Inference: an image (or batch) to logits and label maps — whole or by sliding window, with flip and multi-scale
test-time augmentation — and the evaluation of a model on a dataset. Every caller infers through ``predict_logits``;
evaluating a checkpoint file, the benchmark export and predicting photos are jobs in ``seglab.toolbox.jobs``."""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from seglab.errors import SeglabError
from seglab.labels import CITYSCAPES, VOC
from seglab.metrics import ConfusionMatrix, summary
from seglab.toolbox.runtime import autocast

# Images with more pixels than this are predicted tile by tile so that memory stays bounded.
AUTO_WINDOW_PIXELS = 1024 * 2048
DEFAULT_WINDOW = (512, 1024)


def _forward(model: nn.Module, images: torch.Tensor, precision: str, flip: bool) -> torch.Tensor:
    """float32 logits of ``images`` (N, 3, H, W), averaged with the horizontally flipped pass when ``flip``."""
    with autocast(images.device, precision):
        logits = model(images).float()
        if flip:
            logits = (logits + model(images.flip(-1)).float().flip(-1)) / 2
    return logits


def _tile_starts(size: int, window: int, stride: int) -> list[int]:
    """Tile offsets every ``stride`` along a side (``window`` <= ``size``), the last tile flush with the end."""
    return [*range(0, size - window, stride), size - window]


def _windowed(model: nn.Module, images: torch.Tensor, precision: str, flip: bool, window: tuple[int, int] | None,
              overlap: float) -> torch.Tensor:
    """Logits of ``images``, whole or tile by tile (overlapping tiles average where they meet)."""
    if window is None:
        return _forward(model, images, precision, flip)
    n, _, height, width = images.shape
    win_h, win_w = min(window[0], height), min(window[1], width)
    stride_h, stride_w = max(1, math.ceil(win_h * (1 - overlap))), max(1, math.ceil(win_w * (1 - overlap)))
    total = counts = None
    for top in _tile_starts(height, win_h, stride_h):
        for left in _tile_starts(width, win_w, stride_w):
            tile = _forward(model, images[:, :, top:top + win_h, left:left + win_w], precision, flip)
            if total is None:
                total = images.new_zeros((n, tile.shape[1], height, width), dtype=torch.float32)
                counts = images.new_zeros((1, 1, height, width), dtype=torch.float32)
            total[:, :, top:top + win_h, left:left + win_w] += tile
            counts[:, :, top:top + win_h, left:left + win_w] += 1
    return total / counts


def check_tta_scales(scales: Sequence[float]) -> Sequence[float]:
    """``scales`` if it is a non-empty list of positive finite resize factors, else a one-line SeglabError."""
    if not scales or not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in scales):
        raise SeglabError(f"test-time scales must be positive numbers like 0.75,1.0,1.25, got {scales!r}")
    return scales


def predict_logits(model: nn.Module, images: torch.Tensor, *, precision: str = "fp32", flip: bool = False,
                   window: tuple[int, int] | None = None, overlap: float = 1 / 3, channels_last: bool = False,
                   tta_scales: Sequence[float] = (1.0,)) -> torch.Tensor:
    """Logits at input resolution. ``window``: the image is covered by overlapping tiles whose logits average.
    ``tta_scales``: multi-scale test-time augmentation as in mmsegmentation's aug-test: the image is resized by each
    factor, and the logits, resized back to the input size, average."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    size = images.shape[-2:]
    total = 0
    for scale in tta_scales:
        if scale == 1:
            total = total + _windowed(model, images, precision, flip, window, overlap)
            continue
        scaled_size = [max(1, round(side * scale)) for side in size]
        scaled = F.interpolate(images, size=scaled_size, mode="bilinear", align_corners=False)
        logits = _windowed(model, scaled, precision, flip, window, overlap)
        total = total + F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return total / len(tta_scales)


def predict_labels(model: nn.Module, images: torch.Tensor, *, size: tuple[int, int] | None = None,
                   window: tuple[int, int] | str | None = "auto", **options) -> torch.Tensor:
    """Label maps (N, H, W): the argmax of ``predict_logits`` (``options``: precision, flip, tta_scales, channels_last),
    at ``size`` when given. ``window="auto"`` slides a window over images of more than AUTO_WINDOW_PIXELS. Every path
    that shows or writes a label map (predict, the comparison app, the anatomy plots, TensorBoard) calls this."""
    if window == "auto":
        window = DEFAULT_WINDOW if images.shape[-2] * images.shape[-1] > AUTO_WINDOW_PIXELS else None
    logits = predict_logits(model, images, window=window, **options)
    if size is not None and tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
    return logits.argmax(1)


@torch.inference_mode()
def iter_predictions(model: nn.Module, dataset: Dataset, device: torch.device | None = None, *,
                     indices: Sequence[int] | None = None, workers: int = 0, progress: bool = True,
                     **inference) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(index, logits, target) for each sample of ``dataset``, one image at a time (``inference``: predict_logits's
    options, e.g. precision, flip, window, channels_last)."""
    model.eval()
    device = device or next(model.parameters()).device
    indices = list(range(len(dataset))) if indices is None else list(indices)
    loader = DataLoader(Subset(dataset, indices), batch_size=1, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    # The loader comes first in zip so that it is run to exhaustion, which stops its worker processes at once; left
    # half-consumed, its iterator would live on (notebook progress bars hold reference cycles) and be collected in a
    # later forked worker, which prints "AssertionError: can only test a child process" tracebacks.
    # iter(loader): else tqdm.auto creates (and leaves running) a second worker pool, see engine.train_one_epoch
    bar = tqdm(iter(loader), total=len(loader), desc="evaluate", disable=not progress, leave=False)
    for (image, target), index in zip(bar, indices):
        logits = predict_logits(model, image.to(device, non_blocking=True), **inference)
        yield index, logits, target.to(device, non_blocking=True)


def score_predictions(predictions: Iterable[tuple[int, torch.Tensor, torch.Tensor]], num_classes: int,
                      device: torch.device, criterion: nn.Module | None = None) -> tuple[ConfusionMatrix, float]:
    """The confusion matrix of ``predictions`` (and their mean loss when ``criterion`` is given)."""
    matrix = ConfusionMatrix(num_classes, device=device)
    losses = []
    for _, logits, target in predictions:
        if criterion is not None:
            losses.append(float(criterion(logits, target)))
        matrix.update(logits.argmax(1), target)
    return matrix, sum(losses) / max(1, len(losses))


def evaluate(model: nn.Module, dataset: Dataset, *, class_names: Sequence[str] | None = None,
             **options) -> tuple[ConfusionMatrix, dict]:
    """The confusion matrix of ``model`` on ``dataset`` (on the model's device) and its metrics (``summary``: mIoU,
    per-class IoU, ...). ``options``: iter_predictions's (precision, flip, window, tta_scales, workers, ...)."""
    device = next(model.parameters()).device
    matrix, _ = score_predictions(iter_predictions(model, dataset, device, **options), dataset.num_classes, device)
    return matrix, summary(matrix, class_names or default_class_names(dataset.num_classes))


def default_class_names(num_classes: int) -> list[str]:
    """Cityscapes' or VOC's class names by their number, else the class indices."""
    label_set = next((s for s in (CITYSCAPES, VOC) if s.num_classes == num_classes), None)
    return list(label_set.classes) if label_set else [str(c) for c in range(num_classes)]
