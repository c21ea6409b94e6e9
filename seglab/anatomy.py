"""Looking inside a model, as the architecture notebooks draw what the papers describe: tensor shapes per stage, the
effective receptive field of an output pixel (Luo et al., NeurIPS 2016), where stacked dilated kernels sample (the
gridding of Wang et al., WACV 2018) and how much of an atrous kernel lands inside a small map (DeepLabV3, Fig. 4).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.labels import LabelSet
from seglab.viz import _pyplot, colorize, finish_figure, image_grid

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

SHAPE_COLUMNS = ["module", "type", "input_shape", "output_shape", "stride", "params"]


# ------------------------------------------------------------------------------------------------ helpers
def _first_shape(value: Any) -> tuple | None:
    """Shape of the first tensor in a module's input/output (a tensor, or nested in a tuple, list or dict)."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (tuple, list)) else ()
    return next((shape for shape in map(_first_shape, items) if shape is not None), None)


def _size_pair(size: int | Sequence[int], what: str) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        raise SeglabError(f"{what} must be a positive int or (height, width), got {size!r}")
    return pair


def _model_device(model: nn.Module) -> torch.device:
    return next((param.device for param in model.parameters()), torch.device("cpu"))


# ------------------------------------------------------------------------------------------------ shapes
def trace_shapes(model: nn.Module, input: torch.Tensor | int | Sequence[int], depth: int = 1) -> pd.DataFrame:
    """One forward pass (eval mode, no gradients) recording each stage's input and output shape, in execution order.

    ``input`` is an (N, 3, H, W) batch or an image size ``(H, W)`` (a zero image is used). A stage is a sub-module
    that ran, at nesting ``depth``; containers that never run as a whole (ModuleList, a backbone whose layers the
    model calls one by one) are not a level, and leaves that ran are listed at whatever depth they sit.
    """
    import pandas as pd

    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise SeglabError(f"depth must be an integer >= 1, got {depth!r}")
    if not isinstance(input, torch.Tensor):
        input = torch.zeros(1, 3, *_size_pair(input, "input size"))
    if input.ndim != 4:
        raise SeglabError(f"input must be an (N, C, H, W) batch or an image size (H, W), got shape "
                          f"{tuple(input.shape)}")
    modules = {name: module for name, module in model.named_modules() if name}
    events: list[tuple[str, tuple, tuple]] = []

    def record(name: str, module: nn.Module, args: tuple, output: Any) -> None:
        events.append((name, _first_shape(args) or (), _first_shape(output) or ()))

    handles = [module.register_forward_hook(partial(record, name)) for name, module in modules.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(input.to(_model_device(model)))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()

    called = {name for name, _, _ in events}
    has_called_child = {prefix for name in called for prefix in _prefixes(name)[:-1]}
    height = input.shape[-2]
    rows = []
    for name, in_shape, out_shape in events:
        level = sum(prefix in called for prefix in _prefixes(name))  # nesting, counting only modules that ran
        if level == depth or (level < depth and name not in has_called_child):
            module = modules[name]
            stride = round(height / out_shape[-2], 2) if len(out_shape) == 4 and out_shape[-2] else float("nan")
            rows.append((name, type(module).__name__, in_shape, out_shape, stride,
                         sum(p.numel() for p in module.parameters())))
    return pd.DataFrame(rows, columns=SHAPE_COLUMNS)


def _prefixes(name: str) -> list[str]:
    """'a.b.c' -> ['a', 'a.b', 'a.b.c']."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


# ------------------------------------------------------------------------------------------------ receptive field
def effective_receptive_field(model: nn.Module, size: int | Sequence[int], samples: int = 2,
                              seed: int = 0) -> np.ndarray:
    """(H, W) map, max 1, of how strongly each input pixel sways the centre prediction: |d (centre logits, summed) /
    d input| over colour channels, averaged over ``samples`` noise images, in eval mode. Pixels it cannot see are
    exactly 0, so its support is the theoretical receptive field (bar paths through ReLUs off for every sample).
    """
    height, width = _size_pair(size, "size")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise SeglabError(f"samples must be an integer >= 1, got {samples!r}")
    device = _model_device(model)
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(height, width, dtype=torch.float64)
    was_training = model.training
    model.eval()
    try:
        for _ in range(samples):
            image = torch.randn(1, 3, height, width, generator=generator).to(device).requires_grad_(True)
            output = model(image)
            if output.ndim != 4:
                raise SeglabError(f"the model must return (N, C, H, W) maps, got shape {tuple(output.shape)}")
            centre = output[0, :, output.shape[-2] // 2, output.shape[-1] // 2].sum()
            (grad,) = torch.autograd.grad(centre, image)
            total += grad[0].abs().sum(0).double().cpu()
    finally:
        model.train(was_training)
    peak = total.max()
    return (total / peak if peak > 0 else total).numpy()


def erf_extent(erf: np.ndarray, mass: float = 0.95) -> int:
    """Side (pixels) of the smallest square centred on the middle pixel that holds ``mass`` of the map's total:
    ``mass=1.0`` gives the theoretical receptive field (clipped to the map), ``0.95`` the far smaller effective one."""
    erf = np.abs(np.asarray(erf, dtype=np.float64))
    if erf.ndim != 2 or not erf.size:
        raise SeglabError(f"erf must be a non-empty (H, W) map, got shape {erf.shape}")
    if not 0.0 < mass <= 1.0:
        raise SeglabError(f"mass must lie in (0, 1], got {mass}")
    total = erf.sum()
    if total == 0:
        return 0
    cy, cx = erf.shape[0] // 2, erf.shape[1] // 2
    yy, xx = np.indices(erf.shape)
    ring = np.maximum(np.abs(yy - cy), np.abs(xx - cx))  # Chebyshev distance: squares around the centre
    cumulative = np.cumsum(np.bincount(ring.ravel(), weights=erf.ravel())) / total
    radius = int(np.searchsorted(cumulative, mass - 1e-9))
    return 2 * radius + 1


# ------------------------------------------------------------------------------------------------ dilation
def dilated_sampling(dilations: Sequence[int], kernel_size: int = 3) -> np.ndarray:
    """Footprint of a stack of ``kernel_size`` convolutions with these dilations (stride 1): entry (y, x) counts the
    paths from input pixel (y, x) to the centre output, 0 where it is never seen (rates 2, 2, 2 leave holes)."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise SeglabError(f"kernel_size must be an odd positive integer, got {kernel_size!r}")
    dilations = list(dilations)
    if not dilations or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
                                for d in dilations):
        raise SeglabError(f"dilations must be a non-empty list of integers >= 1, got {dilations!r}")
    half = sum(int(d) * (kernel_size // 2) for d in dilations)
    footprint = np.zeros((2 * half + 1, 2 * half + 1), dtype=np.int64)
    footprint[half, half] = 1
    offsets = np.arange(-(kernel_size // 2), kernel_size // 2 + 1)
    for d in dilations:
        shifts = offsets * int(d)  # np.roll never wraps here: the canvas fits the whole stack
        footprint = sum(np.roll(footprint, (int(dy), int(dx)), axis=(0, 1)) for dy in shifts for dx in shifts)
    return footprint


def atrous_valid_weights(feature_size: int | Sequence[int], rate: int, kernel_size: int = 3) -> float:
    """Mean fraction of a ``kernel_size`` x ``kernel_size`` kernel with dilation ``rate`` (zero padding) whose taps
    land inside a feature map of ``feature_size``: 1.0 for small rates, falling to 1/k^2 (only the centre tap, a
    1x1 conv) once the rate exceeds the map. Why DeepLabV3 adds image pooling and doubles its rates at OS8."""
    height, width = _size_pair(feature_size, "feature_size")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
        raise SeglabError(f"rate must be an integer >= 1, got {rate!r}")
    offsets = rate * np.arange(-(kernel_size // 2), kernel_size // 2 + 1)

    def per_axis(n: int) -> np.ndarray:
        positions = np.arange(n)[:, None] + offsets[None, :]
        return ((positions >= 0) & (positions < n)).sum(1)

    valid = per_axis(height)[:, None] * per_axis(width)[None, :]
    return float(valid.mean() / kernel_size**2)


# ------------------------------------------------------------------------------------------------ figures
def plot_receptive_fields(maps: Mapping[str, np.ndarray], mass: float = 0.95, log: bool = True,
                          out_png: str | Path | None = None) -> Figure:
    """Effective receptive fields side by side (one panel per ``{title: erf}``), each with squares marking the
    theoretical (support) and the ``mass`` extent. ``log`` shows log10 of the map so the faint tails are visible."""
    from matplotlib.patches import Rectangle

    if not maps:
        raise SeglabError("no receptive-field maps to plot")
    fig, axes = _pyplot().subplots(1, len(maps), figsize=(3.6 * len(maps), 3.8), squeeze=False)
    for ax, (title, erf) in zip(axes[0], maps.items()):
        erf = np.asarray(erf, dtype=np.float64)
        shown = np.log10(np.maximum(erf, 1e-6)) if log else erf
        ax.imshow(shown, cmap="magma", vmin=-6 if log else 0, vmax=0 if log else 1)
        cy, cx = erf.shape[0] // 2, erf.shape[1] // 2
        for side, color, label in ((erf_extent(erf, 1.0), "cyan", "theoretical"),
                                   (erf_extent(erf, mass), "lime", f"{mass:.0%} of gradient")):
            ax.add_patch(Rectangle((cx - side / 2, cy - side / 2), side, side, fill=False, color=color, lw=1.2,
                                   label=f"{label}: {side} px"))
        ax.set_title(title, fontsize=10)
        ax.legend(loc="lower center", fontsize=7, framealpha=0.8)
        ax.set(xticks=[], yticks=[])
    fig.suptitle("effective receptive field of the centre pixel" + (" (log10 |gradient|)" if log else ""))
    return finish_figure(fig, out_png)


def plot_dilated_sampling(configs: Mapping[str, Sequence[int]], kernel_size: int = 3,
                          out_png: str | Path | None = None) -> Figure:
    """One panel per ``{title: dilations}``: which input pixels a (stack of) dilated kernel(s) reaches, drawn on a
    common pixel grid (darker = more paths, white = never seen)."""
    if not configs:
        raise SeglabError("no dilation settings to plot")
    footprints = {title: dilated_sampling(d, kernel_size) for title, d in configs.items()}
    side = max(f.shape[0] for f in footprints.values())
    fig, axes = _pyplot().subplots(1, len(configs), figsize=(3.2 * len(configs), 3.5), squeeze=False)
    for ax, (title, footprint) in zip(axes[0], footprints.items()):
        canvas = np.pad(footprint, (side - footprint.shape[0]) // 2).astype(np.float64)
        ax.imshow(np.where(canvas > 0, canvas, np.nan), cmap="Blues", vmin=0)
        ax.set_xticks(np.arange(-0.5, side, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, side, 1), minor=True)
        if side <= 80:
            ax.grid(which="minor", color="0.85", linewidth=0.4)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        seen = int((footprint > 0).sum())
        ax.plot(side // 2, side // 2, "+", color="red", markersize=8)  # the output pixel's position
        ax.set_title(f"{title}\n{footprint.shape[0]}x{footprint.shape[0]} span, {seen} pixels seen", fontsize=9)
    return finish_figure(fig, out_png)


def plot_predictions(model: nn.Module, dataset: Any, label_set: LabelSet, indices: Sequence[int] = (0, 1, 2), *,
                     precision: str = "fp32", out_png: str | Path | None = None) -> Figure:
    """One row per dataset sample: image | ground truth | prediction, titled with that image's mIoU.

    ``dataset[i]`` must give a normalised (3, H, W) image and its (H, W) class mask, as seglab's datasets do (use
    the transforms and size the model was validated with). The model runs on its own device, in eval mode.
    """
    from seglab.data import denormalize
    from seglab.infer import predict_labels
    from seglab.metrics import ConfusionMatrix

    indices = list(indices)
    if not indices:
        raise SeglabError("no images to show: pass at least one index")
    if not all(0 <= i < len(dataset) for i in indices):
        raise SeglabError(f"image indices {indices} out of range for a dataset of {len(dataset)} images")
    device = _model_device(model)
    model.eval()
    rows = []
    with torch.inference_mode():
        for index in indices:
            image, target = dataset[index]
            prediction = predict_labels(model, image[None].to(device), precision=precision)[0].cpu()
            miou = ConfusionMatrix(label_set.num_classes).update(prediction, target).miou()
            rows.append([(denormalize(image), f"image {index}"), (colorize(target, label_set), "ground truth"),
                         (colorize(prediction, label_set), f"prediction (image mIoU {miou:.2f})")])
    return image_grid(rows, panel_width=4.5, out_png=out_png)


__all__ = ["atrous_valid_weights", "dilated_sampling", "effective_receptive_field", "erf_extent",
           "plot_dilated_sampling", "plot_predictions", "plot_receptive_fields", "trace_shapes"]
