"""Cityscapes polygon annotations -> labelIds / labelTrainIds / color PNGs, and a check against provided masks.

Each frame is rasterised ONCE, with PIL's ImageDraw exactly as cityscapesscripts' ``json2labelImg`` draws it (so
the result is pixel-identical); the trainId and colour encodings are lookup tables applied to that labelId image.
PNGs are written by OpenCV at a low compression level (lossless), each
file atomically, and frames are spread over a process pool.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageDraw

from seglab.errors import SeglabError
from seglab.toolbox.files import atomic_write_bytes, read_label_png, write_png
from seglab.toolbox.parallel import default_workers, run_parallel
from seglab.labels import CS_LABELS, ID_TO_COLOR, ID_TO_TRAINID, cityscapes_label

POLYGONS_SUFFIX = "_gtFine_polygons.json"
# encoding name -> file suffix of the generated mask (the names the official Cityscapes tools use)
SUFFIXES: dict[str, str] = {
    "labelIds": "_gtFine_labelIds.png",
    "labelTrainIds": "_gtFine_labelTrainIds.png",
    "color": "_gtFine_color.png",
}
DEFAULT_SPLITS: tuple[str, ...] = ("train", "val")
GENERATED_DIRNAME = "generated_gt"
EXPECTED_LAYOUT = "<root>/gtFine/<split>/<city>/*" + POLYGONS_SUFFIX
SYNTH_HINT = "python -m seglab synth minicity --out data/minicity"
_UNLABELED_ID = cityscapes_label("unlabeled").id
# labelId -> RGBA as one uint32 per entry: one indexing step gives the (H, W, 4) colour image
_ID_TO_RGBA = np.concatenate([ID_TO_COLOR, np.full((256, 1), 255, np.uint8)], axis=1)
_ID_TO_RGBA32 = np.ascontiguousarray(_ID_TO_RGBA).view(np.uint32).ravel()


# ------------------------------------------------------------------------------------------------ reading
def load_annotation(path: str | os.PathLike) -> dict:
    """Parse one ``*_gtFine_polygons.json``; unreadable or invalid JSON is a SeglabError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            annotation = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SeglabError(f"{path}: cannot read polygon annotation ({exc}); regenerate or re-download it") from None
    if not isinstance(annotation, dict):
        raise SeglabError(f"{path}: expected a JSON object with imgHeight, imgWidth and objects")
    return annotation


def _is_number(value: Any) -> bool:
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _image_size(annotation: dict, source: str) -> tuple[int, int]:
    """(width, height) from imgWidth/imgHeight, which must be positive integers."""
    size = []
    for key in ("imgWidth", "imgHeight"):
        value = annotation.get(key)
        if value is None:
            raise SeglabError(f"{source}: missing {key!r}; every polygon file needs imgHeight and imgWidth")
        if not (_is_number(value) and value == int(value) and value > 0):
            raise SeglabError(f"{source}: {key} must be a positive integer, got {value!r}")
        size.append(int(value))
    return size[0], size[1]


def _flat_polygon(obj: dict, index: int, source: str) -> list:
    """The object's points as a flat [x0, y0, x1, y1, ...] list (the values untouched, as PIL receives them)."""
    polygon = obj.get("polygon")
    if not isinstance(polygon, list):
        raise SeglabError(f"{source}: object {index} ({obj.get('label')!r}) has no 'polygon' list of [x, y] points")
    flat = []
    for point in polygon:
        if not (isinstance(point, list | tuple) and len(point) == 2 and _is_number(point[0]) and _is_number(point[1])):
            raise SeglabError(
                f"{source}: object {index} ({obj.get('label')!r}) has a polygon point {point!r} that is not "
                "[x, y] with numeric coordinates")
        flat.extend(point)
    return flat


def _label_id(label: str, source: str) -> int:
    """The labelId of a label name (``...group`` falls back to its class), or a SeglabError naming file and label."""
    try:
        return cityscapes_label(label).id
    except KeyError:
        raise SeglabError(f"{source}: unknown label {label!r}; use a Cityscapes label name "
                          "(cityscapesscripts.helpers.labels lists them)") from None


# ------------------------------------------------------------------------------------------------ drawing
def rasterize_label_ids(annotation: dict, source: str = "annotation") -> np.ndarray:
    """(H, W) uint8 labelIds of one polygon annotation, drawn exactly as cityscapesscripts' json2labelImg.

    Background 'unlabeled'; objects in file order (later ones on top); deleted objects skipped; ``...group`` labels
    fall back to their class; negative ids (license plate) not drawn. Polygons with fewer than two points are
    skipped (the official tool raises on them). ``source`` names the file in error messages.
    """
    if not isinstance(annotation, dict):
        raise SeglabError(f"{source}: expected a JSON object with imgHeight, imgWidth and objects")
    size = _image_size(annotation, source)
    objects = annotation.get("objects", [])
    if not isinstance(objects, list):
        raise SeglabError(f"{source}: 'objects' must be a list of {{label, polygon}} objects")
    image = Image.new("L", size, _UNLABELED_ID)
    draw = ImageDraw.Draw(image)
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or "label" not in obj:
            raise SeglabError(f"{source}: object {index} is not a {{label, polygon}} object")
        points = _flat_polygon(obj, index, source)  # checked for every object, as the official parser reads all
        if obj.get("deleted"):
            continue
        label_id = _label_id(str(obj["label"]), source)
        if label_id < 0 or len(points) < 4:
            continue
        draw.polygon(points, fill=label_id)
    return np.array(image)


def encode(label_ids: np.ndarray) -> dict[str, np.ndarray]:
    """labelIds -> the three encodings {'labelIds', 'labelTrainIds', 'color' (H, W, 4 RGBA)} via lookup tables."""
    ids = np.asarray(label_ids)
    if ids.dtype != np.uint8 or ids.ndim != 2:
        raise ValueError(f"label_ids must be an (H, W) uint8 array, got {ids.dtype} {ids.shape}")
    color = np.take(_ID_TO_RGBA32, ids).view(np.uint8).reshape(*ids.shape, 4)  # np.take: ~1.5x fancy indexing
    return {"labelIds": ids, "labelTrainIds": cv2.LUT(ids, ID_TO_TRAINID), "color": color}  # cv2.LUT: ~4x numpy


# ------------------------------------------------------------------------------------------------ datasets
@dataclass(frozen=True)
class Frame:
    """One annotated frame: where its polygons are and where its generated masks go."""

    split: str
    city: str
    name: str  # <city>_<seq>_<frame>
    polygons: Path

    def outputs(self, out: Path) -> dict[str, Path]:
        """{encoding: path} of the generated masks under ``out``."""
        folder = out / self.split / self.city
        return {encoding: folder / (self.name + suffix) for encoding, suffix in SUFFIXES.items()}

    def provided(self, encoding: str = "labelIds") -> Path:
        """The mask the dataset itself ships next to the polygons (e.g. the official labelIds)."""
        return self.polygons.with_name(self.name + SUFFIXES[encoding])


def find_frames(root: str | os.PathLike, splits: Sequence[str] = DEFAULT_SPLITS) -> list[Frame]:
    """All ``<root>/gtFine/<split>/<city>/*_gtFine_polygons.json`` of the given splits, sorted; none is an error."""
    root = Path(root)
    if not root.is_dir():
        raise SeglabError(f"dataset root {root} does not exist; expected the layout {EXPECTED_LAYOUT} "
                          f"(create a synthetic one with `{SYNTH_HINT}`)")
    frames = [
        Frame(split, path.parent.name, path.name[: -len(POLYGONS_SUFFIX)], path)
        for split in splits
        for path in sorted((root / "gtFine" / split).glob("*/*" + POLYGONS_SUFFIX))
    ]
    if not frames:
        raise SeglabError(f"no polygon files found for splits {','.join(splits)} under {root}; expected the layout "
                          f"{EXPECTED_LAYOUT} (create a synthetic one with `{SYNTH_HINT}`)")
    return frames


# ------------------------------------------------------------------------------------------------ generating
@dataclass(frozen=True)
class MaskSummary:
    """What ``generate_masks`` did."""

    out: Path
    frames: int
    written: int
    skipped: int
    seconds: float
    workers: int
    missing_splits: tuple[str, ...] = ()
    degenerate_polygons: int = 0  # polygons with fewer than two points, not drawn

    def __str__(self) -> str:
        skipped = f", {self.skipped} skipped (outputs exist; --overwrite redoes them)" if self.skipped else ""
        if self.missing_splits:
            skipped += f"; split(s) {', '.join(self.missing_splits)} not found under gtFine/, skipped"
        if self.degenerate_polygons:
            skipped += (f"; {self.degenerate_polygons} polygon(s) with fewer than 2 points not drawn (the official "
                        "json2labelImg stops on them)")
        workers = f"{self.workers} worker" + ("s" if self.workers != 1 else "")
        speed = f" ({self.written / self.seconds:.1f} frames/s, {workers})" if self.written and self.seconds > 0 else ""
        return (f"masks: {self.written} of {self.frames} frames written{skipped} in {self.seconds:.1f} s{speed} "
                f"-> {self.out}")


def degenerate_polygons(annotation: dict) -> int:
    """How many objects of an annotation are not deleted but have a polygon of fewer than two points (not drawn)."""
    return sum(1 for obj in annotation.get("objects", []) if not obj.get("deleted") and len(obj["polygon"]) < 2)


def mask_frame(polygons: str | os.PathLike, outputs: dict[str, Path]) -> int:
    """Rasterise one polygon file once and write its three encodings to ``outputs`` ({encoding: path}); returns
    the number of degenerate polygons it could not draw."""
    annotation = load_annotation(polygons)
    arrays = encode(rasterize_label_ids(annotation, source=str(polygons)))
    for encoding, path in outputs.items():
        # masks can be regenerated: no fsync (it would dominate the time); the rename still
        # guarantees that an interrupted run leaves no half-written PNG
        write_png(path, arrays[encoding], durable=False)
    return degenerate_polygons(annotation)


def _mask_job(job: tuple[Path, dict[str, Path]]) -> int:
    return mask_frame(*job)


def _check_out(root: Path, out: Path) -> None:
    provided = (root / "gtFine").resolve()
    resolved = out.resolve()
    if resolved == provided or provided in resolved.parents:
        raise SeglabError(f"--out {out} is inside {provided}, which holds the provided masks; choose another folder "
                          f"(the default is {root / GENERATED_DIRNAME})")


def generate_masks(root: str | os.PathLike, out: str | os.PathLike | None = None,
                   splits: Sequence[str] = DEFAULT_SPLITS, workers: int | None = None, overwrite: bool = False,
                   progress: bool = True) -> MaskSummary:
    """Write labelIds, labelTrainIds and color PNGs for every polygon file of ``splits`` under ``out``.

    ``out`` defaults to ``<root>/generated_gt`` and mirrors ``<split>/<city>/``. Frames whose three outputs already
    exist are skipped unless ``overwrite``. ``workers`` processes (default: all cores).
    """
    start = time.perf_counter()
    root = Path(root)
    out = Path(out) if out is not None else root / GENERATED_DIRNAME
    frames = find_frames(root, splits)
    _check_out(root, out)
    jobs = []
    for frame in frames:
        outputs = frame.outputs(out)
        if overwrite or not all(path.is_file() for path in outputs.values()):
            jobs.append((frame.polygons, outputs))
    for folder in sorted({path.parent for _, outputs in jobs for path in outputs.values()}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SeglabError(f"cannot create the output folder {folder} ({exc.strerror or exc}); "
                              "choose another --out") from None
    workers = min(workers or default_workers(), max(len(jobs), 1))
    degenerate = run_parallel(_mask_job, jobs, workers, "masks", "frame", progress)
    missing = tuple(split for split in splits if not (Path(root) / "gtFine" / split).is_dir())
    return MaskSummary(out, len(frames), len(jobs), len(frames) - len(jobs), time.perf_counter() - start, workers,
                       missing, sum(degenerate))


# ------------------------------------------------------------------------------------------------ comparing
class MaskComparison(NamedTuple):
    """Generated vs provided labelIds: one row per image and one row per class."""

    per_image: Any  # pandas.DataFrame: split, city, frame, pixels, disagreeing, agreement
    per_class: Any  # pandas.DataFrame: id, name, provided_pixels, generated_pixels, intersection, iou, agreement


def _compare_job(job: tuple[Path, Path]) -> tuple[int, np.ndarray]:
    """(pixels that differ, 256x256 confusion counts provided x generated) of one frame."""
    provided, generated = read_label_png(job[0]), read_label_png(job[1])
    if provided.shape != generated.shape or provided.ndim != 2:
        raise SeglabError(f"{job[1]}: shape {generated.shape} does not match the provided {job[0]} "
                          f"{provided.shape}; regenerate with --overwrite")
    pairs = provided.astype(np.uint16) * 256 + generated
    confusion = np.bincount(pairs.ravel(), minlength=256 * 256).reshape(256, 256)
    return int(provided.size - np.trace(confusion)), confusion


def compare_masks(root: str | os.PathLike, generated: str | os.PathLike | None = None,
                  splits: Sequence[str] = DEFAULT_SPLITS, workers: int | None = None, save: bool = True,
                  progress: bool = True) -> MaskComparison:
    """Pixel agreement of generated vs provided ``_gtFine_labelIds.png``, per image and per class (IoU).

    Frames without a provided labelIds PNG are left out. With ``save`` the two tables are written to
    ``<generated>/comparison_per_image.csv`` and ``comparison_per_class.csv``.
    """
    import pandas as pd

    root = Path(root)
    generated = Path(generated) if generated is not None else root / GENERATED_DIRNAME
    frames = [frame for frame in find_frames(root, splits) if frame.provided().is_file()]
    if not frames:
        raise SeglabError(f"no provided *{SUFFIXES['labelIds']} next to the polygon files under {root / 'gtFine'}; "
                          "there is nothing to compare with")
    jobs = []
    for frame in frames:
        ours = frame.outputs(generated)["labelIds"]
        if not ours.is_file():
            raise SeglabError(f"{ours} is missing; run `python -m seglab masks --root {root} --out {generated}` first")
        jobs.append((frame.provided(), ours))
    results = run_parallel(_compare_job, jobs, workers, "compare", "frame", progress)

    per_image = pd.DataFrame({
        "split": [f.split for f in frames], "city": [f.city for f in frames], "frame": [f.name for f in frames],
        "pixels": [int(c.sum()) for _, c in results], "disagreeing": [d for d, _ in results]})
    per_image["agreement"] = 1.0 - per_image["disagreeing"] / per_image["pixels"]

    confusion = np.sum([c for _, c in results], axis=0)
    provided_px, generated_px, intersection = confusion.sum(1), confusion.sum(0), np.diag(confusion)
    names = {lab.id: lab.name for lab in CS_LABELS if lab.id >= 0}
    ids = [i for i in range(256) if provided_px[i] or generated_px[i]]
    per_class = pd.DataFrame({
        "id": ids, "name": [names.get(i, "?") for i in ids],
        "provided_pixels": provided_px[ids], "generated_pixels": generated_px[ids], "intersection": intersection[ids]})
    union = per_class["provided_pixels"] + per_class["generated_pixels"] - per_class["intersection"]
    per_class["iou"] = per_class["intersection"] / union
    per_class["agreement"] = per_class["intersection"] / per_class["provided_pixels"].where(
        per_class["provided_pixels"] > 0)
    if save:
        generated.mkdir(parents=True, exist_ok=True)
        for table, name in ((per_image, "comparison_per_image.csv"), (per_class, "comparison_per_class.csv")):
            atomic_write_bytes(generated / name, table.to_csv(index=False).encode())
    return MaskComparison(per_image, per_class)


def plot_comparison(root: str | os.PathLike, generated: str | os.PathLike | None = None, split: str = "val",
                    frame: str | None = None, out_png: str | os.PathLike | None = None):
    """Figure "generated vs provided" for one frame: image | provided | generated | disagreement map.

    ``frame`` is a ``<city>_<seq>_<frame>`` name (default: the first frame of ``split``). Returns the matplotlib
    Figure; with ``out_png`` it is also saved there as PNG.
    """
    from matplotlib.figure import Figure

    root = Path(root)
    generated = Path(generated) if generated is not None else root / GENERATED_DIRNAME
    frames = find_frames(root, [split])
    if frame is not None:
        frames = [f for f in frames if f.name == frame]
        if not frames:
            raise SeglabError(f"frame {frame!r} not found under {root / 'gtFine' / split}")
    chosen = frames[0]
    provided = read_label_png(chosen.provided())
    ours = read_label_png(chosen.outputs(generated)["labelIds"])
    image_path = root / "leftImg8bit" / split / chosen.city / f"{chosen.name}_leftImg8bit.png"
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB) if image_path.is_file() else np.full((*provided.shape, 3), 128, np.uint8)
    differ = provided != ours
    # thin disagreements would vanish when a 2048-wide frame is shown 400 pixels wide: widen the red marks
    grow = max(1, provided.shape[1] // 400)
    marks = cv2.dilate(differ.astype(np.uint8), np.ones((grow, grow), np.uint8)).astype(bool)
    gray = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    disagreement = np.repeat((gray // 2 + 64)[..., None], 3, axis=2)
    disagreement[marks] = (255, 0, 0)

    height, width = provided.shape
    figure = Figure(figsize=(16, 4 * height / width + 0.8), layout="constrained")
    panels = [(image[..., :3], "image" if image_path.is_file() else "image (not found)"),
              (ID_TO_COLOR[provided], "provided labelIds"), (ID_TO_COLOR[ours], "generated labelIds"),
              (disagreement, f"disagreement: {differ.mean():.3%} of pixels (red, widened)")]
    for ax, (panel, title) in zip(figure.subplots(1, 4), panels):
        ax.imshow(panel, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    figure.suptitle(f"generated vs provided: {chosen.name}")
    if out_png is not None:
        from seglab.viz import save_figure

        save_figure(figure, out_png, dpi=100)
    return figure
