"""The command line's jobs on a model, each built on ``seglab.infer`` and its own step: evaluate a split into a report
(writes nothing), export predictions for the Cityscapes benchmark server, segment a folder of photos."""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torchvision import tv_tensors
from tqdm.auto import tqdm

from seglab.checkpoint import model_from_checkpoint
from seglab.data import SegmentationDataset, build_dataset, read_image
from seglab.transforms import eval_transforms
from seglab.errors import SeglabError
from seglab.infer import evaluate, iter_predictions, predict_labels
from seglab.labels import TRAINID_TO_ID, LabelSet, get_label_set
from seglab.metrics import ConfusionMatrix, per_class_table
from seglab.toolbox.files import write_png
from seglab.toolbox.layouts import DATASET_NAMES, dataset_layout
from seglab.toolbox.runtime import resolve_device, resolve_precision
from seglab.viz import overlay

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
ModelSource = str | Path | tuple[nn.Module, str]  # a checkpoint file, or (a registry model, its dataset)


def load_for_inference(source: ModelSource, device: str = "auto", precision: str = "auto"
                       ) -> tuple[nn.Module, str, torch.device, str]:
    """The model (in eval mode, channels_last, on ``device``), its dataset name, the device and the precision. A
    ``(model, dataset)`` source is that module itself, moved and switched to eval mode."""
    if isinstance(source, tuple):
        model, dataset = source
    else:
        model, record = model_from_checkpoint(source)
        dataset = record.dataset
    device_t = resolve_device(device)
    model = model.to(device_t, memory_format=torch.channels_last).eval()
    return model, dataset, device_t, resolve_precision(precision, device_t)


def check_data_matches(dataset: str, data: str | Path) -> None:
    """A one-line error when ``data`` holds the other dataset than the one a model was trained on."""
    found, names = dataset_layout(data), DATASET_NAMES
    if found is not None and found != dataset:
        raise SeglabError(f"this checkpoint was trained on {names[dataset]} ({get_label_set(dataset).num_classes} "
                          f"classes) but {data} holds {names[found]} data; evaluate it on {names[dataset]} data "
                          f"or use a checkpoint trained on {names[found]}")


# ------------------------------------------------------------------------------------------------ evaluate
@dataclass
class EvaluationReport:
    """What ``seglab evaluate`` prints: the metrics summary, the per-class and per-category tables, the matrix."""

    summary: dict
    class_table: pd.DataFrame
    category_table: pd.DataFrame
    matrix: ConfusionMatrix

    def text(self) -> str:
        """Human-readable tables and headline numbers."""
        s = self.summary
        lines = [self.class_table.to_string(float_format=lambda v: f"{v:.4f}")]
        if len(self.category_table):
            lines.append(self.category_table.to_string(float_format=lambda v: f"{v:.4f}"))
        lines.append(f"mIoU {s['miou']:.4f}  mDice {s['mdice']:.4f}  pixel accuracy {s['pixel_accuracy']:.4f}  "
                     f"mean accuracy {s['mean_accuracy']:.4f}  fwIoU {s['fwiou']:.4f}")
        return "\n".join(lines)


def evaluate_checkpoint(source: ModelSource, data: str | Path, *, split: str = "val", mask_dir: str = "",
                        device: str = "auto", precision: str = "auto", workers: int = 2, progress: bool = True,
                        **inference) -> EvaluationReport:
    """Evaluate a checkpoint or registry model on a split at native resolution; inference: flip, window, tta_scales."""
    model, dataset_name, _, precision = load_for_inference(source, device, precision)
    check_data_matches(dataset_name, data)
    dataset = build_dataset(dataset_name, data, split, mask_dir=mask_dir)
    classes = get_label_set(dataset_name).classes
    matrix, scores = evaluate(model, dataset, class_names=classes, precision=precision, channels_last=True,
                              workers=workers, progress=progress, **inference)
    categories = pd.DataFrame({"iou": scores["category_iou"]}, dtype=float).rename_axis("category")
    return EvaluationReport(scores, per_class_table(matrix, classes), categories, matrix)


# ------------------------------------------------------------------------------------------------ benchmark export
def export_name(image_path: Path) -> Path:
    """Benchmark-server path of a prediction: ``<city>/<city>_<seq>_<frame>_leftImg8bit.png``."""
    return Path(image_path.parent.name) / image_path.name


def export_cityscapes(source: ModelSource, data: str | Path, export_dir: str | Path, *, split: str = "test",
                      device: str = "auto", precision: str = "auto", workers: int = 2, progress: bool = True,
                      **inference) -> Path:
    """Predict a Cityscapes split at full resolution and write each label map as a labelIds PNG named as the
    benchmark server wants, then ``<export_dir>.zip``; returns the zip's path."""
    model, dataset_name, device_t, precision = load_for_inference(source, device, precision)
    if dataset_name != "cityscapes":
        raise SeglabError("--export writes Cityscapes benchmark files; it needs a Cityscapes checkpoint and data")
    check_data_matches(dataset_name, data)
    dataset: SegmentationDataset = build_dataset(dataset_name, data, split)
    for index, logits, _ in iter_predictions(model, dataset, device_t, precision=precision, channels_last=True,
                                             workers=workers, progress=progress, **inference):
        labels = TRAINID_TO_ID[logits.argmax(1)[0].to(torch.uint8).cpu().numpy()]
        write_png(Path(export_dir) / export_name(dataset.image_path(index)), labels)
    return Path(shutil.make_archive(str(export_dir), "zip", root_dir=export_dir))


# ------------------------------------------------------------------------------------------------ predict a folder
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
    """Segment every image in a folder into ``<stem>_label.png`` (class indices, original size) and
    ``<stem>_overlay.png``. Unreadable files are skipped and reported; without ``window``, large images use the
    automatic sliding window."""
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
        label = predict_labels(model, tensor, precision=precision, flip=flip, window=window or "auto",
                               tta_scales=tta_scales, channels_last=channels_last)[0].to(torch.uint8).cpu().numpy()
        stem = out_dir / path.relative_to(base).with_suffix("")
        write_png(stem.parent / f"{stem.name}_label.png", label)
        write_png(stem.parent / f"{stem.name}_overlay.png", overlay(image, label, label_set, alpha))
        written.append(path)
    if not written:
        unreadable = [(p, why) for p, why in skipped if p in images]
        raise SeglabError(f"none of the {len(images)} image(s) in {images_dir} could be read (first: "
                          f"{unreadable[0][1]}); nothing was written")
    return {"written": [str(p) for p in written], "skipped": [(str(p), why) for p, why in skipped]}


def predict_checkpoint(source: ModelSource, images_dir: str | Path, out_dir: str | Path, *, device: str = "auto",
                       precision: str = "auto", alpha: float = 0.5, progress: bool = True, **inference) -> dict:
    """``predict_folder`` with a checkpoint's model, classes and colours (``inference``: flip, window, tta_scales)."""
    model, dataset_name, device_t, precision = load_for_inference(source, device, precision)
    return predict_folder(model, get_label_set(dataset_name), images_dir, out_dir, device_t, precision=precision,
                          channels_last=True, alpha=alpha, progress=progress, **inference)
