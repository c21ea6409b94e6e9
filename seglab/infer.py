"""Inference: whole-image or sliding-window logits, multi-scale + flip TTA, dataset evaluation, benchmark export,
folder prediction."""
from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import tv_tensors
from tqdm.auto import tqdm

from seglab.checkpoint import Checkpoint, model_from_checkpoint
from seglab.toolbox.files import atomic_write, write_png
from seglab.data import (DATASET_NAMES, SegmentationDataset, build_dataset, dataset_layout, eval_transforms,
                         read_image)
from seglab.errors import SeglabError
from seglab.labels import TRAINID_TO_ID, LabelSet, get_label_set
from seglab.metrics import ConfusionMatrix, per_class_table, summary
from seglab.toolbox.runtime import autocast, resolve_device, resolve_precision
from seglab.viz import overlay

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
# Images with more pixels than this are predicted tile by tile so that memory stays bounded.
AUTO_WINDOW_PIXELS = 1024 * 2048
DEFAULT_WINDOW = (512, 1024)


def _forward(model: nn.Module, images: torch.Tensor, precision: str, flip: bool) -> torch.Tensor:
    """float32 logits of ``images`` (N, 3, H, W), averaged with the horizontally flipped pass when ``flip``."""
    with autocast(images.device, precision):
        logits = model(images).float()
        if flip:
            logits = logits + model(images.flip(-1)).float().flip(-1)
            logits = logits / 2
    return logits


def _tile_starts(size: int, window: int, stride: int) -> list[int]:
    if size <= window:
        return [0]
    starts = list(range(0, size - window, stride)) + [size - window]
    return sorted(set(starts))


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
    """``scales`` (test-time resize factors) if it is a non-empty list of positive finite resize factors, else a one-line SeglabError."""
    if not scales or not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in scales):
        raise SeglabError(f"test-time scales must be positive numbers like 0.75,1.0,1.25, got {scales!r}")
    return scales


def predict_logits(model: nn.Module, images: torch.Tensor, *, precision: str = "fp32", flip: bool = False,
                   window: tuple[int, int] | None = None, overlap: float = 1 / 3, channels_last: bool = False,
                   tta_scales: Sequence[float] = (1.0,)) -> torch.Tensor:
    """Logits at input resolution. ``window``: the image is covered by overlapping tiles whose logits average.
    ``tta_scales``: multi-scale test-time augmentation as in mmsegmentation's aug-test: the image is resized by each
    factor, and the logits, resized back to the input size, average. Every caller (training validation, evaluate,
    predict, the comparison app) infers through this one function."""
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


def export_name(image_path: Path) -> Path:
    """Benchmark-server path of a prediction: ``<city>/<city>_<seq>_<frame>_leftImg8bit.png``."""
    return Path(image_path.parent.name) / image_path.name


@torch.inference_mode()
def iter_predictions(model: nn.Module, dataset: SegmentationDataset, device: torch.device, *,
                     indices: Sequence[int] | None = None, workers: int = 0, progress: bool = True,
                     **inference) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(index, logits, target) for each sample of ``dataset``, one image at a time (``inference``: predict_logits's
    options, e.g. precision, flip, window, channels_last)."""
    model.eval()
    indices = list(range(len(dataset))) if indices is None else list(indices)
    loader = DataLoader(Subset(dataset, indices), batch_size=1, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    # The loader comes first in zip so that it is run to exhaustion, which stops its worker processes at once; left
    # half-consumed, its iterator would live on (notebook progress bars hold reference cycles) and be collected in a
    # later forked worker, which prints "AssertionError: can only test a child process" tracebacks.
    # iter(loader): tqdm.auto would otherwise create (and leave running) a second worker pool, see engine.train_one_epoch
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


def evaluate(model: nn.Module, dataset: SegmentationDataset, device: torch.device, *,
             criterion: nn.Module | None = None, **options) -> tuple[ConfusionMatrix, float]:
    """Confusion matrix (and mean loss) of ``model`` on ``dataset`` (``options``: iter_predictions's)."""
    predictions = iter_predictions(model, dataset, device, **options)
    return score_predictions(predictions, dataset.num_classes, device, criterion)


def export_cityscapes(predictions: Iterable[tuple[int, torch.Tensor, torch.Tensor]], dataset: SegmentationDataset,
                      export_dir: str | Path) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Pass ``predictions`` through, writing each as a labelIds PNG named as the Cityscapes benchmark server wants."""
    for index, logits, target in predictions:
        labels = TRAINID_TO_ID[logits.argmax(1)[0].to(torch.uint8).cpu().numpy()]
        write_png(Path(export_dir) / export_name(dataset.image_path(index)), labels)
        yield index, logits, target


def zip_export(export_dir: str | Path) -> Path:
    """Pack an export folder into ``<export_dir>.zip`` (city folders inside), ready for the benchmark server."""
    export_dir = Path(export_dir)
    archive = shutil.make_archive(str(export_dir), "zip", root_dir=export_dir)
    return Path(archive)


def list_images(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """Image files (by suffix, recursively, sorted) and the other files found in ``folder``; ``folder`` may also be
    one image file."""
    folder = Path(folder)
    if folder.is_file():
        return ([folder], []) if folder.suffix.lower() in IMAGE_SUFFIXES else ([], [folder])
    if not folder.is_dir():
        raise SeglabError(f"{folder} does not exist; pass --images with a folder of .jpg/.png files or one image "
                          "file")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]


@torch.inference_mode()
def predict_folder(model: nn.Module, label_set: LabelSet, images_dir: str | Path, out_dir: str | Path,
                   device: torch.device, *, precision: str = "fp32", flip: bool = False,
                   window: tuple[int, int] | None = None, tta_scales: Sequence[float] = (1.0,),
                   channels_last: bool = False, alpha: float = 0.5, progress: bool = True) -> dict:
    """Segment every image in a folder: ``<stem>_label.png`` (class indices, original size) and ``<stem>_overlay.png``.

    Unreadable files are skipped and reported; without ``window``, images larger than AUTO_WINDOW_PIXELS use a sliding
    window.
    """
    images, others = list_images(images_dir)
    if not images:
        where = f"{images_dir} is not an image file" if Path(images_dir).is_file() else f"no images found in {images_dir}"
        raise SeglabError(f"{where}; pass --images with {'/'.join(IMAGE_SUFFIXES)} files or a folder of them")
    base = Path(images_dir) if Path(images_dir).is_dir() else Path(images_dir).parent
    out_dir = Path(out_dir)
    model.eval()
    transform = eval_transforms()
    written, skipped = [], [(p, "not an image file") for p in others]
    for path in tqdm(images, desc="predict", disable=not progress or len(images) == 1):
        try:
            image = read_image(path, upright=True)
        except SeglabError as exc:
            skipped.append((path, str(exc)))
            continue
        tensor = transform(tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))).unsqueeze(0).to(device)
        label = predict_labels(model, tensor, precision=precision, flip=flip, window=window or "auto", tta_scales=tta_scales,
                               channels_last=channels_last)[0].to(torch.uint8).cpu().numpy()
        stem = out_dir / path.relative_to(base).with_suffix("")
        write_png(stem.parent / f"{stem.name}_label.png", label)
        write_png(stem.parent / f"{stem.name}_overlay.png", overlay(image, label, label_set, alpha))
        written.append(path)
    if not written:
        unreadable = [(p, why) for p, why in skipped if p in images]
        raise SeglabError(f"none of the {len(images)} image(s) in {images_dir} could be read (first: "
                          f"{unreadable[0][1]}); nothing was written")
    return {"written": [str(p) for p in written], "skipped": [(str(p), why) for p, why in skipped]}


# ------------------------------------------------------------------------------------------------ from a checkpoint
@dataclass
class EvaluationReport:
    """What ``seglab evaluate`` computes: the metrics JSON, the per-class and per-category tables, the matrix."""

    summary: dict
    class_table: pd.DataFrame
    category_table: pd.DataFrame
    matrix: ConfusionMatrix
    export_zip: Path | None = None

    def text(self) -> str:
        """Human-readable tables and headline numbers."""
        s = self.summary
        lines = [self.class_table.to_string(float_format=lambda v: f"{v:.4f}")]
        if len(self.category_table):
            lines.append(self.category_table.to_string(float_format=lambda v: f"{v:.4f}"))
        lines.append(f"mIoU {s['miou']:.4f}  mDice {s['mdice']:.4f}  pixel accuracy {s['pixel_accuracy']:.4f}  "
                     f"mean accuracy {s['mean_accuracy']:.4f}  fwIoU {s['fwiou']:.4f}")
        if self.export_zip is not None:
            lines.append(f"benchmark export: {self.export_zip}")
        return "\n".join(lines)


def check_data_matches(dataset: str, data: str | Path) -> None:
    """A one-line error when ``data`` holds the other dataset than the one a model was trained on."""
    found, names = dataset_layout(data), DATASET_NAMES
    if found is not None and found != dataset:
        raise SeglabError(f"this checkpoint was trained on {names[dataset]} ({get_label_set(dataset).num_classes} "
                          f"classes) but {data} holds {names[found]} data; evaluate it on {names[dataset]} data "
                          f"or use a checkpoint trained on {names[found]}")


def _setup(checkpoint: str | Path | Checkpoint, device: str, precision: str
           ) -> tuple[nn.Module, Checkpoint, torch.device, str]:
    """The checkpoint's model (a file, or a record such as ``Checkpoint.from_model``) on ``device`` in eval mode and
    channels_last, its record, the device and precision."""
    device_t = resolve_device(device)
    model, record = model_from_checkpoint(checkpoint)
    model = model.to(device_t, memory_format=torch.channels_last).eval()
    return model, record, device_t, resolve_precision(precision, device_t)


def evaluate_checkpoint(checkpoint: str | Path | Checkpoint, data: str | Path, *, split: str = "val",
                        mask_dir: str = "", export_dir: str | Path | None = None,
                        json_path: str | Path | None = None, device: str = "auto", precision: str = "auto", flip: bool = False,
                        window: tuple[int, int] | None = None, tta_scales: Sequence[float] = (1.0,), workers: int = 2,
                        progress: bool = True) -> EvaluationReport:
    """Evaluate a checkpoint on a split at native resolution; optionally export PNGs + zip and write the JSON."""
    model, record, device_t, precision = _setup(checkpoint, device, precision)
    if export_dir is not None and record.dataset != "cityscapes":
        raise SeglabError("--export writes Cityscapes benchmark files; it needs a Cityscapes checkpoint and data")
    label_set = get_label_set(record.dataset)
    check_data_matches(record.dataset, data)
    dataset = build_dataset(record.dataset, data, split, mask_dir=mask_dir)
    predictions = iter_predictions(model, dataset, device_t, precision=precision, flip=flip, window=window,
                                   tta_scales=tta_scales, channels_last=True, workers=workers, progress=progress)
    if export_dir is not None:
        predictions = export_cityscapes(predictions, dataset, export_dir)
    matrix, _ = score_predictions(predictions, dataset.num_classes, device_t)
    scores = summary(matrix, label_set.classes)
    categories = pd.DataFrame({"iou": list(scores["category_iou"].values())},
                              index=pd.Index(list(scores["category_iou"]), name="category"), dtype=float)
    report = EvaluationReport(scores, per_class_table(matrix, label_set.classes), categories, matrix)
    if export_dir is not None:
        report.export_zip = zip_export(export_dir)
    if json_path is not None:
        atomic_write(json_path, lambda tmp: Path(tmp).write_text(json.dumps(scores, indent=2)))
    return report


def predict_checkpoint(checkpoint: str | Path | Checkpoint, images_dir: str | Path, out_dir: str | Path, *,
                       device: str = "auto", precision: str = "auto", flip: bool = False,
                       window: tuple[int, int] | None = None, tta_scales: Sequence[float] = (1.0,), alpha: float = 0.5,
                       progress: bool = True) -> dict:
    """``predict_folder`` with the model, classes and colours a checkpoint describes."""
    model, record, device_t, precision = _setup(checkpoint, device, precision)
    return predict_folder(model, get_label_set(record.dataset), images_dir, out_dir, device_t, precision=precision,
                          flip=flip, window=window, tta_scales=tta_scales, channels_last=True, alpha=alpha,
                          progress=progress)
