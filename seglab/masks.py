"""Cityscapes polygon annotations -> labelIds / labelTrainIds / color PNGs, and a check against provided masks.

Each frame is rasterised ONCE, with PIL's ImageDraw exactly as cityscapesscripts' ``json2labelImg`` draws it (so the
result is pixel-identical); the trainId and colour encodings are lookup tables applied to that labelId image.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageDraw

from seglab.errors import SeglabError
from seglab.labels import CS_LABELS, ID_TO_COLOR, ID_TO_TRAINID, cityscapes_label
from seglab.toolbox.files import atomic_write_bytes, checked_polygons, load_annotation, read_label_png, write_png
from seglab.toolbox.parallel import default_workers, run_parallel

POLYGONS_SUFFIX = "_gtFine_polygons.json"
# encoding name -> file suffix of the generated mask (the names the official Cityscapes tools use)
SUFFIXES: dict[str, str] = {"labelIds": "_gtFine_labelIds.png", "labelTrainIds": "_gtFine_labelTrainIds.png",
                            "color": "_gtFine_color.png"}
DEFAULT_SPLITS: tuple[str, ...] = ("train", "val")
GENERATED_DIRNAME = "generated_gt"
LAYOUT_HINT = (f"expected the layout <root>/gtFine/<split>/<city>/*{POLYGONS_SUFFIX} "
               "(create a synthetic one with `python -m seglab synth minicity --out data/minicity`)")
_UNLABELED_ID = cityscapes_label("unlabeled").id
# labelId -> RGBA as one uint32 per entry: one indexing step gives the (H, W, 4) colour image
_ID_TO_RGBA32 = np.concatenate([ID_TO_COLOR, np.full((256, 1), 255, np.uint8)], axis=1).view(np.uint32).ravel()


# ------------------------------------------------------------------------------------------------ drawing
def _label_id(label: str, source: str) -> int:
    """The labelId of a label name (``...group`` falls back to its class), or a SeglabError naming file and label."""
    try:
        return cityscapes_label(label).id
    except KeyError:
        raise SeglabError(f"{source}: unknown label {label!r}; use a Cityscapes label name "
                          "(cityscapesscripts.helpers.labels lists them)") from None


def rasterize_label_ids(annotation: dict, source: str = "annotation") -> np.ndarray:
    """(H, W) uint8 labelIds of one polygon annotation, drawn exactly as cityscapesscripts' json2labelImg.

    Background 'unlabeled'; objects in file order (later ones on top); deleted objects skipped; ``...group`` labels
    fall back to their class; negative ids (license plate) not drawn. Polygons with fewer than two points are
    skipped (the official tool raises on them). ``source`` names the file in error messages.
    """
    size, polygons = checked_polygons(annotation, source)  # a malformed file is a one-line SeglabError
    image = Image.new("L", size, _UNLABELED_ID)
    draw = ImageDraw.Draw(image)
    for obj, points in polygons:
        if obj.get("deleted"):
            continue
        label_id = _label_id(str(obj["label"]), source)
        if label_id >= 0 and len(points) >= 4:
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

    def provided(self) -> Path:
        """The labelIds mask the dataset itself ships next to the polygons."""
        return self.polygons.with_name(self.name + SUFFIXES["labelIds"])


def find_frames(root: str | os.PathLike, splits: Sequence[str] = DEFAULT_SPLITS) -> list[Frame]:
    """All ``<root>/gtFine/<split>/<city>/*_gtFine_polygons.json`` of the given splits, sorted; none is an error."""
    root = Path(root)
    if not root.is_dir():
        raise SeglabError(f"dataset root {root} does not exist; {LAYOUT_HINT}")
    frames = [Frame(split, path.parent.name, path.name[: -len(POLYGONS_SUFFIX)], path)
              for split in splits for path in sorted((root / "gtFine" / split).glob("*/*" + POLYGONS_SUFFIX))]
    if not frames:
        raise SeglabError(f"no polygon files found for splits {','.join(splits)} under {root}; {LAYOUT_HINT}")
    return frames


def _generated_dir(root: Path, generated: str | os.PathLike | None) -> Path:
    """Where the generated masks are: ``generated``, by default ``<root>/generated_gt``."""
    return Path(generated) if generated is not None else root / GENERATED_DIRNAME


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
        notes = f", {self.skipped} skipped (outputs exist; --overwrite redoes them)" if self.skipped else ""
        if self.missing_splits:
            notes += f"; split(s) {', '.join(self.missing_splits)} not found under gtFine/, skipped"
        if self.degenerate_polygons:
            notes += (f"; {self.degenerate_polygons} polygon(s) with fewer than 2 points not drawn (the official "
                      "json2labelImg stops on them)")
        workers = f"{self.workers} worker" + ("s" if self.workers != 1 else "")
        speed = f" ({self.written / self.seconds:.1f} frames/s, {workers})" if self.written and self.seconds > 0 else ""
        return (f"masks: {self.written} of {self.frames} frames written{notes} in {self.seconds:.1f} s{speed} "
                f"-> {self.out}")


def _write_masks(out: Path, frame: Frame) -> int:
    """Rasterise one frame once and write its three encodings under ``out``; returns its undrawn polygons."""
    annotation = load_annotation(frame.polygons)
    arrays = encode(rasterize_label_ids(annotation, source=str(frame.polygons)))
    for encoding, path in frame.outputs(out).items():
        # masks can be regenerated: no fsync (it would dominate the time); the rename still means no half-written PNG
        write_png(path, arrays[encoding], durable=False)
    return sum(1 for obj in annotation.get("objects", []) if not obj.get("deleted") and len(obj["polygon"]) < 2)


def generate_masks(root: str | os.PathLike, out: str | os.PathLike | None = None,
                   splits: Sequence[str] = DEFAULT_SPLITS, workers: int | None = None, overwrite: bool = False,
                   progress: bool = True) -> MaskSummary:
    """Write labelIds, labelTrainIds and color PNGs for every polygon file of ``splits`` under ``out``.

    ``out`` defaults to ``<root>/generated_gt`` and mirrors ``<split>/<city>/``. Frames whose three outputs already
    exist are skipped unless ``overwrite``. ``workers`` processes (default: all cores).
    """
    start = time.perf_counter()
    root = Path(root)
    out = _generated_dir(root, out)
    frames = find_frames(root, splits)
    provided = (root / "gtFine").resolve()
    if out.resolve().is_relative_to(provided):
        raise SeglabError(f"--out {out} is inside {provided}, which holds the provided masks; choose another folder "
                          f"(the default is {root / GENERATED_DIRNAME})")
    jobs = [frame for frame in frames if overwrite or not all(p.is_file() for p in frame.outputs(out).values())]
    workers = min(workers or default_workers(), max(len(jobs), 1))
    undrawn = run_parallel(partial(_write_masks, out), jobs, workers, "masks", "frame", progress)
    missing = tuple(split for split in splits if not (root / "gtFine" / split).is_dir())
    return MaskSummary(out, len(frames), len(jobs), len(frames) - len(jobs), time.perf_counter() - start, workers,
                       missing, sum(undrawn))


# ------------------------------------------------------------------------------------------------ comparing
class MaskComparison(NamedTuple):
    """Generated vs provided labelIds: one row per image and one row per class."""

    per_image: Any  # pandas.DataFrame: split, city, frame, pixels, disagreeing, agreement
    per_class: Any  # pandas.DataFrame: id, name, provided_pixels, generated_pixels, intersection, iou, agreement


def _confusion(generated: Path, frame: Frame) -> np.ndarray:
    """256x256 pixel counts of one frame: provided labelId (rows) x generated labelId (columns)."""
    provided, ours = read_label_png(frame.provided()), read_label_png(frame.outputs(generated)["labelIds"])
    if provided.shape != ours.shape or provided.ndim != 2:
        raise SeglabError(f"{frame.outputs(generated)['labelIds']}: shape {ours.shape} does not match the provided "
                          f"{frame.provided()} {provided.shape}; regenerate with --overwrite")
    pairs = provided.astype(np.uint16) * 256 + ours
    return np.bincount(pairs.ravel(), minlength=256 * 256).reshape(256, 256)


def compare_masks(root: str | os.PathLike, generated: str | os.PathLike | None = None,
                  splits: Sequence[str] = DEFAULT_SPLITS, workers: int | None = None, save: bool = True,
                  progress: bool = True) -> MaskComparison:
    """Pixel agreement of generated vs provided ``_gtFine_labelIds.png``, per image and per class (IoU).

    Frames without a provided labelIds PNG are left out. With ``save`` the two tables are written to
    ``<generated>/comparison_per_image.csv`` and ``comparison_per_class.csv``.
    """
    import pandas as pd

    root = Path(root)
    generated = _generated_dir(root, generated)
    frames = [frame for frame in find_frames(root, splits) if frame.provided().is_file()]
    if not frames:
        raise SeglabError(f"no provided *{SUFFIXES['labelIds']} next to the polygon files under {root / 'gtFine'}; "
                          "there is nothing to compare with")
    for frame in frames:
        if not frame.outputs(generated)["labelIds"].is_file():
            raise SeglabError(f"{frame.outputs(generated)['labelIds']} is missing; run "
                              f"`python -m seglab masks --root {root} --out {generated}` first")
    confusions = run_parallel(partial(_confusion, generated), frames, workers, "compare", "frame", progress)

    pixels = [int(c.sum()) for c in confusions]
    per_image = pd.DataFrame({"split": [f.split for f in frames], "city": [f.city for f in frames],
                              "frame": [f.name for f in frames], "pixels": pixels,
                              "disagreeing": [n - int(np.trace(c)) for n, c in zip(pixels, confusions)]})
    per_image["agreement"] = 1.0 - per_image["disagreeing"] / per_image["pixels"]

    confusion = np.sum(confusions, axis=0)
    provided_px, generated_px = confusion.sum(1), confusion.sum(0)
    ids = [i for i in range(256) if provided_px[i] or generated_px[i]]
    names = {lab.id: lab.name for lab in CS_LABELS if lab.id >= 0}
    per_class = pd.DataFrame({"id": ids, "name": [names.get(i, "?") for i in ids], "provided_pixels": provided_px[ids],
                              "generated_pixels": generated_px[ids], "intersection": np.diag(confusion)[ids]})
    union = per_class["provided_pixels"] + per_class["generated_pixels"] - per_class["intersection"]
    per_class["iou"] = per_class["intersection"] / union
    per_class["agreement"] = per_class["intersection"] / per_class["provided_pixels"].replace(0, np.nan)
    if save:
        for table, name in ((per_image, "comparison_per_image.csv"), (per_class, "comparison_per_class.csv")):
            atomic_write_bytes(generated / name, table.to_csv(index=False).encode())
    return MaskComparison(per_image, per_class)


def plot_comparison(root: str | os.PathLike, generated: str | os.PathLike | None = None, split: str = "val",
                    frame: str | None = None, out_png: str | os.PathLike | None = None):
    """Figure "generated vs provided" for one frame: image | provided | generated | disagreement map.

    ``frame`` is a ``<city>_<seq>_<frame>`` name (default: the first frame of ``split``). Returns the matplotlib
    Figure (not a pyplot one); with ``out_png`` it is also saved there as PNG.
    """
    from matplotlib.figure import Figure

    root = Path(root)
    frames = [f for f in find_frames(root, [split]) if frame is None or f.name == frame]
    if not frames:
        raise SeglabError(f"frame {frame!r} not found under {root / 'gtFine' / split}")
    chosen = frames[0]
    provided = read_label_png(chosen.provided())
    ours = read_label_png(chosen.outputs(_generated_dir(root, generated))["labelIds"])
    image_path = root / "leftImg8bit" / split / chosen.city / f"{chosen.name}_leftImg8bit.png"
    found = image_path.is_file()
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB) if found else np.full(
        (*provided.shape, 3), 128, np.uint8)
    differ = provided != ours
    # thin disagreements would vanish when a 2048-wide frame is shown 400 pixels wide: widen the red marks
    grow = max(1, provided.shape[1] // 400)
    marks = cv2.dilate(differ.astype(np.uint8), np.ones((grow, grow), np.uint8)).astype(bool)
    disagreement = np.repeat((cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) // 2 + 64)[..., None], 3, axis=2)
    disagreement[marks] = (255, 0, 0)

    height, width = provided.shape
    figure = Figure(figsize=(16, 4 * height / width + 0.8), layout="constrained")
    panels = [(image, "image" if found else "image (not found)"), (ID_TO_COLOR[provided], "provided labelIds"),
              (ID_TO_COLOR[ours], "generated labelIds"),
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
