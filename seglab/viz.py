"""Pictures of segmentations: colour masks, overlays, error maps, training curves, confusion heatmaps and GIFs.

Plots use pyplot so that notebooks show them inline; every ``out_png`` / ``path`` is written atomically.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seglab.config import HISTORY_COLUMNS
from seglab.errors import SeglabError
from seglab.labels import IGNORE_INDEX, LabelSet
from seglab.toolbox.files import atomic_write

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from seglab.metrics import ConfusionMatrix

CORRECT_COLOR = (0, 170, 0)  # error_map: right prediction
WRONG_COLOR = (230, 25, 25)  # error_map: wrong prediction
IGNORED_COLOR = (128, 128, 128)  # error_map: ground truth is the ignore label
Palette = LabelSet | np.ndarray | Sequence[Sequence[int]]  # a LabelSet or (K <= 256, 3) colours


def _pyplot():
    """matplotlib.pyplot, choosing Agg only when no backend is chosen yet and there is no display to draw on."""
    import matplotlib

    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    try:
        chosen = matplotlib.get_backend(auto_select=False)
    except TypeError:  # matplotlib < 3.10: the automatic choice already falls back to Agg without a display
        chosen = "auto"
    if chosen is None and headless and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_numpy(array: Any) -> np.ndarray:
    """numpy view of a numpy array, torch tensor (any device) or nested list."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _palette_lut(palette: Palette) -> np.ndarray:
    """A (256, 3) uint8 lookup table from a LabelSet or a (K <= 256, 3) colour list; missing entries are black."""
    colors = palette.palette if isinstance(palette, LabelSet) else _as_numpy(palette)
    if colors.ndim != 2 or colors.shape[1] != 3 or not 0 < colors.shape[0] <= 256:
        raise SeglabError(f"a palette must be a LabelSet or (K, 3) colours with K <= 256, got shape {colors.shape}")
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: colors.shape[0]] = np.clip(colors, 0, 255).astype(np.uint8)
    return lut


def _as_mask(mask: Any) -> np.ndarray:
    """(H, W) class indices as uint8 (0..255; 255 = ignore)."""
    mask = _as_numpy(mask)
    if mask.ndim != 2:
        raise SeglabError(f"a mask must be (H, W) class indices, got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise SeglabError(f"mask values must lie in 0..255, got {mask.min()}..{mask.max()}")
    return mask.astype(np.uint8, copy=False)


def _as_rgb(image: Any) -> np.ndarray:
    """(H, W, 3) uint8 from uint8 or float [0, 1] images, (H, W, 3) or (3, H, W) (a CHW tensor)."""
    image = _as_numpy(image)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise SeglabError(f"an image must be (H, W, 3) RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image.astype(np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image


# -------------------------------------------------------------------------------------------------- masks
def colorize(mask: Any, label_set_or_palette: Palette) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 colours of the palette (a LabelSet or (K, 3) colours)."""
    return _palette_lut(label_set_or_palette)[_as_mask(mask)]


def overlay(image: Any, mask: Any, palette: Palette, alpha: float = 0.5,
            ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """Blend the coloured mask over the image, ``alpha`` = mask weight; ignored pixels keep the plain image."""
    if not 0.0 <= alpha <= 1.0:
        raise SeglabError(f"alpha must lie in [0, 1], got {alpha}")
    rgb, mask = _as_rgb(image), _as_mask(mask)
    if rgb.shape[:2] != mask.shape:
        raise SeglabError(f"image is {rgb.shape[1]}x{rgb.shape[0]} but mask is {mask.shape[1]}x{mask.shape[0]}")
    blended = (1.0 - alpha) * rgb + alpha * colorize(mask, palette).astype(np.float32)
    out = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    if ignore_index is not None:
        out[mask == ignore_index] = rgb[mask == ignore_index]
    return out


def error_map(gt: Any, pred: Any, ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """(H, W, 3) uint8: CORRECT_COLOR where pred == gt, WRONG_COLOR elsewhere, IGNORED_COLOR on ignored pixels."""
    gt, pred = _as_mask(gt), _as_mask(pred)
    if gt.shape != pred.shape:
        raise SeglabError(f"ground truth {gt.shape} and prediction {pred.shape} differ in size")
    out = np.full(gt.shape + (3,), WRONG_COLOR, dtype=np.uint8)
    out[gt == pred] = CORRECT_COLOR
    if ignore_index is not None:
        out[gt == ignore_index] = IGNORED_COLOR
    return out


def triptych(image: Any, gt: Any, pred: Any, palette: Palette, gap: int = 4) -> np.ndarray:
    """image | coloured ground truth | coloured prediction side by side, separated by ``gap`` white columns."""
    rgb = _as_rgb(image)
    panels = [rgb, colorize(gt, palette), colorize(pred, palette)]
    if any(panel.shape != rgb.shape for panel in panels):
        raise SeglabError(f"image, ground truth and prediction must share one size, got "
                          f"{[panel.shape[:2] for panel in panels]}")
    spacer = np.full((rgb.shape[0], gap, 3), 255, dtype=np.uint8)
    return np.concatenate([panels[0], spacer, panels[1], spacer, panels[2]], axis=1)


# ------------------------------------------------------------------------------------------------ figures
def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix), creating folders, atomically; returns the path."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))
    return path


def finish_figure(fig: Figure, out_png: str | Path | None = None) -> Figure:
    """Tighten the layout and, when ``out_png`` is given, save the figure there (every plotting function ends so)."""
    fig.tight_layout()
    if out_png is not None:
        save_figure(fig, out_png)
    return fig


def image_grid(rows: Sequence[Sequence[tuple[Any, str]]], panel_width: float = 3.2, fontsize: int = 9,
               out_png: str | Path | None = None) -> Figure:
    """Rows of ``(picture, title)`` panels, each ``panel_width`` inches wide at the first picture's aspect ratio."""
    height, width = _as_numpy(rows[0][0][0]).shape[:2]
    fig, axes = _pyplot().subplots(len(rows), len(rows[0]), squeeze=False, figsize=(
        panel_width * len(rows[0]), len(rows) * (panel_width * height / width + 0.4)))
    for row_axes, row in zip(axes, rows):
        for ax, (picture, title) in zip(row_axes, row):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(title, fontsize=fontsize)
            ax.axis("off")
    return finish_figure(fig, out_png)


def _read_history(history: pd.DataFrame | str | Path) -> pd.DataFrame:
    import pandas as pd

    if isinstance(history, (str, Path)):
        if not Path(history).is_file():
            raise SeglabError(f"no history file {history}: train a model first (it writes <run>/history.csv)")
        history = pd.read_csv(history)
    missing = [c for c in ("epoch", "train_loss", "val_loss", "miou", "mdice", "mean_accuracy") if c not in history]
    if missing:
        raise SeglabError(f"history lacks column(s) {', '.join(missing)}; expected {', '.join(HISTORY_COLUMNS)}")
    if history.empty:
        raise SeglabError("history is empty: nothing to plot until one epoch has finished")
    return history


def plot_history(history: pd.DataFrame | str | Path, out_png: str | Path | None = None) -> Figure:
    """2x2 training curves per epoch: train/val loss, mIoU, mDice, mean pixel (class) accuracy."""
    frame = _read_history(history)
    fig, axes = _pyplot().subplots(2, 2, figsize=(10, 7), sharex=True)
    panels = [(["train_loss", "val_loss"], "loss"), (["miou"], "mIoU"), (["mdice"], "mDice"),
              (["mean_accuracy"], "mean accuracy")]
    for ax, (columns, title) in zip(axes.flat, panels):
        for column in columns:
            ax.plot(frame["epoch"], frame[column], marker="o", markersize=3, label=column.replace("_", " "))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if len(columns) > 1:
            ax.legend()
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    return finish_figure(fig, out_png)


def plot_confusion(matrix: ConfusionMatrix | np.ndarray | Any, class_names: Sequence[str],
                   normalize: str | None = "true", out_png: str | Path | None = None,
                   annotate: bool | None = None) -> Figure:
    """Seaborn heatmap of a confusion matrix (rows = ground truth). ``normalize``: 'true' (rows sum to 1, i.e.
    recall), 'pred' (columns, precision), 'all', or None for raw counts. Empty rows/columns stay 0."""
    import seaborn as sns

    counts = _as_numpy(matrix.matrix if hasattr(matrix, "matrix") else matrix).astype(np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(class_names):
        raise SeglabError(f"confusion matrix of shape {counts.shape} does not fit {len(class_names)} class names")
    if normalize not in ("true", "pred", "all", None):
        raise SeglabError(f"normalize must be 'true', 'pred', 'all' or None, got {normalize!r}")
    sums = counts.sum(axis={"true": 1, "pred": 0}.get(normalize), keepdims=True)  # "all": one grand total
    values = np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0) if normalize else counts
    size = max(5.0, 0.45 * len(class_names) + 2)
    annotate = len(class_names) <= 21 if annotate is None else annotate
    fig, ax = _pyplot().subplots(figsize=(size * 1.15, size))
    sns.heatmap(values, ax=ax, cmap="viridis", square=True, xticklabels=class_names, yticklabels=class_names,
                annot=annotate, fmt=".2f" if normalize else ".0f", annot_kws={"fontsize": 6},
                vmin=0, vmax=1 if normalize else None, cbar_kws={"shrink": 0.8})
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title("confusion matrix" + (f" (normalised over {normalize})" if normalize else " (pixels)"))
    return finish_figure(fig, out_png)


def plot_class_table(table: pd.DataFrame | Mapping[str, float | None], metric: str = "iou",
                     out_png: str | Path | None = None) -> Figure:
    """Horizontal bars of one per-class metric, sorted; ``table`` is ``metrics.per_class_table()`` or a
    ``{class: value}`` dict such as ``summary()['per_class_iou']``. Undefined (absent) classes are left out."""
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        if metric not in table:
            raise SeglabError(f"table has no column {metric!r}; choose one of {', '.join(map(str, table.columns))}")
        series = table[metric]
    else:
        series = pd.Series(dict(table), dtype="float64")
    series = series.dropna().sort_values()
    fig, ax = _pyplot().subplots(figsize=(6, max(2.5, 0.3 * len(series) + 1)))
    ax.barh(series.index.astype(str), series.values, color="tab:blue")
    for y, value in enumerate(series.values):
        ax.text(value, y, f" {value:.3f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel(metric)
    ax.set_title(f"per-class {metric} (mean {series.mean():.3f} over {len(series)} classes)")
    return finish_figure(fig, out_png)


# ---------------------------------------------------------------------------------------------------- GIF
def make_gif(frames: Iterable[Any], path: str | Path, fps: float = 2, palette: Palette | None = None) -> Path:
    """Write an endlessly looping GIF at ``fps`` frames per second. Each frame is an (H, W, 3) image or an
    ``(image, gt, pred)`` triple drawn with ``triptych(..., palette)``; all frames must share one size."""
    import imageio.v3 as iio

    if fps <= 0:
        raise SeglabError(f"fps must be positive, got {fps}")
    images = []
    for frame in frames:
        if isinstance(frame, (tuple, list)):
            if palette is None or len(frame) != 3:
                raise SeglabError("(image, gt, pred) frames need all three parts and a palette=...")
            frame = triptych(*frame, palette)
        images.append(_as_rgb(frame))
    if not images:
        raise SeglabError("no frames to write: pass at least one image")
    if len({image.shape for image in images}) > 1:
        raise SeglabError(f"GIF frames differ in size: {sorted({image.shape[:2] for image in images})}")
    # Pillow merges consecutive identical frames into one longer frame; that keeps the timing right.
    atomic_write(Path(path), lambda tmp: iio.imwrite(tmp, np.stack(images), extension=".gif",
                                                     duration=1000.0 / fps, loop=0))
    return Path(path)
