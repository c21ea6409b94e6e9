"""Interactive comparison of trained models on one image at a time (ipywidgets, used by notebook 11).

:class:`CompareApp` holds the logic with no widget in it (``render(state)`` -> RGB panels and a per-image IoU table,
``update(**changes)``), so tests drive it without a browser; ``app.widget`` only wires controls to ``update()``.
"""
from __future__ import annotations

import html
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd
import torch
from torchvision import tv_tensors

from seglab import infer, viz
from seglab.checkpoint import model_from_checkpoint
from seglab.data import SegmentationDataset, build_dataset
from seglab.errors import SeglabError
from seglab.labels import LabelSet, get_label_set
from seglab.metrics import ConfusionMatrix
from seglab.toolbox.files import png_bytes
from seglab.toolbox.runtime import resolve_device, resolve_precision
from seglab.transforms import eval_transforms

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.figure import Figure

VIEWS = ("prediction", "ground truth", "error map")
VIEW_HELP = ("each model's classes over the image", "the annotation over the image",
             "green: right, red: wrong, grey: ignored (not scored)")
GROUND_TRUTH_PANEL = "ground truth"
TABLE_STYLE = ("<style>.seglab-table table {border-collapse: collapse; margin-top: 4px}"
               " .seglab-table th, .seglab-table td {padding: 2px 12px; text-align: right;"
               " border-bottom: 1px solid var(--jp-border-color2, #ddd)}</style>")


@dataclass(frozen=True)
class CompareState:
    """What the app shows: image ``index``, the ``models`` side by side, overlay opacity ``alpha``, ``view`` mode."""

    index: int = 0
    models: tuple[str, ...] = ()
    alpha: float = 0.5
    view: str = "prediction"


@dataclass
class Rendering:
    """One screenful: the image, its ground truth, the RGB panels (one per selected model, or one "ground truth"
    panel in that view) and ``iou``, that image's mIoU and pixel accuracy per selected model."""

    state: CompareState
    image_name: str
    image: np.ndarray
    ground_truth: np.ndarray
    panels: dict[str, np.ndarray] = field(default_factory=dict)
    iou: pd.DataFrame = field(default_factory=pd.DataFrame)


def checkpoint_names(paths: Sequence[str | Path]) -> list[str]:
    """Short unique display names: the run folder (``runs/unet/best.pt`` -> ``unet``), longer paths on clashes."""
    paths = [Path(p) for p in paths]
    for depth in range(1, max((len(p.parts) for p in paths), default=1) + 1):
        names = [p.parent.name if depth == 1 and p.parent.name else "/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    raise SeglabError(f"the same checkpoint is given twice: {', '.join(map(str, paths))}; pass each once")


class CompareApp:
    """Several checkpoints side by side on the images of one dataset split.

    ``checkpoints``: paths (named after their run folders) or ``{name: path}``; ``dataset``: a SegmentationDataset
    or a data root (its ``split`` is read). Each model sees the whole image resized by ``resize`` (None: the
    ``val_resize`` stored in its checkpoint; 1: native size), on ``device`` at ``precision`` ('auto': bf16 where the
    hardware has it), with ``tta_scales`` / ``flip`` as in ``seglab.infer.predict_labels``; logits come back at the
    ground truth's size. At most ``cache_size`` predictions are kept; panels are shown ``display_width`` px wide.
    """

    def __init__(self, checkpoints: Sequence[str | Path] | Mapping[str, str | Path],
                 dataset: SegmentationDataset | str | Path, *, split: str = "val", device: str = "auto",
                 precision: str = "auto", resize: float | None = None, tta_scales: Sequence[float] = (1.0,),
                 flip: bool = False, cache_size: int = 256, display_width: int = 512) -> None:
        named = dict(checkpoints) if isinstance(checkpoints, Mapping) else dict(
            zip(checkpoint_names(list(checkpoints)), checkpoints))
        if not named:
            raise SeglabError("no checkpoint to compare: pass at least one path to a trained model's best.pt")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.tta = {"tta_scales": tuple(infer.check_tta_scales(tta_scales)), "flip": bool(flip)}
        self.models: dict[str, torch.nn.Module] = {}
        self.paths: dict[str, Path] = {}
        self.resizes: dict[str, float] = {}
        if resize is not None and resize <= 0:
            raise SeglabError(f"resize must be positive (1 = native size), got {resize}")
        dataset_names = {}
        for name, path in named.items():
            model, record = model_from_checkpoint(path)
            self.models[name] = model.to(self.device, memory_format=torch.channels_last).eval()
            self.paths[name] = Path(path)
            self.resizes[name] = float(resize if resize is not None else record.run_config.val_resize)
            dataset_names[name] = (record.dataset, record.spec["num_classes"])
        if len(set(dataset_names.values())) > 1:
            listing = ", ".join(f"{n}: {d} ({k} classes)" for n, (d, k) in dataset_names.items())
            raise SeglabError(f"the checkpoints were trained on different label sets ({listing}); "
                              "compare models of one dataset at a time")
        dataset_name, num_classes = next(iter(dataset_names.values()))
        self.label_set: LabelSet = get_label_set(dataset_name)
        self.num_classes = num_classes
        if not isinstance(dataset, SegmentationDataset):
            dataset = build_dataset(dataset_name, dataset, split)
        if len(dataset) == 0:
            raise SeglabError("the dataset has no images to show; check the data root and split")
        if dataset.num_classes != num_classes:
            raise SeglabError(f"the dataset has {dataset.num_classes} classes but the checkpoints predict "
                              f"{num_classes}; pass the dataset the models were trained on")
        self.dataset = dataset
        self.cache_size = int(cache_size)
        self.display_width = int(display_width)
        self._predictions: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._widget: ipywidgets.VBox | None = None
        self._controls: dict[str, Any] = {}
        self._panel_boxes: dict[str, Any] = {}
        self.state = CompareState(models=tuple(self.models))

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def names(self) -> list[str]:
        """The model names, in the order given."""
        return list(self.models)

    def check(self, state: CompareState) -> CompareState:
        """``state`` with its model list deduplicated in display order; a SeglabError for impossible values."""
        if not 0 <= state.index < len(self):
            raise SeglabError(f"image index {state.index} is outside 0..{len(self) - 1}")
        unknown = [m for m in state.models if m not in self.models]
        if unknown:
            raise SeglabError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(self.models)}")
        if state.view not in VIEWS:
            raise SeglabError(f"unknown view {state.view!r}; choose one of {', '.join(VIEWS)}")
        if not 0.0 <= state.alpha <= 1.0:
            raise SeglabError(f"opacity must lie in [0, 1], got {state.alpha}")
        return replace(state, models=tuple(m for m in self.models if m in state.models))

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The untransformed RGB image and class-index ground truth (255 = ignore) of image ``index``."""
        return self.dataset.load_pair(index)

    @torch.inference_mode()
    def predict(self, name: str, index: int) -> np.ndarray:
        """Class indices (H, W) uint8 that model ``name`` predicts for image ``index`` (cached)."""
        key = (name, index)
        if key in self._predictions:
            self._predictions.move_to_end(key)
            return self._predictions[key]
        image, _ = self.pair(index)
        height, width = image.shape[:2]
        factor = self.resizes[name]
        size = None if factor == 1.0 else max(1, round(min(height, width) * factor))  # shorter side, as in training
        tensor = eval_transforms(size)(tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)))
        labels = infer.predict_labels(self.models[name], tensor.unsqueeze(0).to(self.device), size=(height, width),
                                      precision=self.precision, channels_last=True, **self.tta)
        prediction = labels[0].to(torch.uint8).cpu().numpy()
        self._predictions[key] = prediction
        while len(self._predictions) > self.cache_size:
            self._predictions.popitem(last=False)
        return prediction

    def image_scores(self, name: str, index: int) -> dict[str, float]:
        """mIoU and pixel accuracy of model ``name`` on image ``index`` alone (classes present in it)."""
        _, gt = self.pair(index)
        matrix = ConfusionMatrix(self.num_classes).update(torch.from_numpy(self.predict(name, index)),
                                                          torch.from_numpy(gt))
        return {"mIoU": matrix.miou(), "pixel accuracy": matrix.pixel_accuracy()}

    def render(self, state: CompareState) -> Rendering:
        """Compose the panels and the IoU table ``state`` asks for (pure: the app's own state is left alone)."""
        state = self.check(state)
        image, gt = self.pair(state.index)
        panels: dict[str, np.ndarray] = {}
        if state.view == "ground truth":
            panels[GROUND_TRUTH_PANEL] = viz.overlay(image, gt, self.label_set.palette, state.alpha)
        for name in state.models:
            prediction = self.predict(name, state.index)
            if state.view == "prediction":
                panels[name] = viz.overlay(image, prediction, self.label_set.palette, state.alpha)
            elif state.view == "error map":
                panels[name] = cv2.addWeighted(image, 1.0 - state.alpha, viz.error_map(gt, prediction), state.alpha, 0)
        scores = pd.DataFrame([self.image_scores(name, state.index) for name in state.models],
                              index=pd.Index(state.models, name="model"), columns=["mIoU", "pixel accuracy"])
        return Rendering(state, self.dataset.image_path(state.index).name, image, gt, panels, scores)

    def update(self, **changes: Any) -> Rendering:
        """Apply ``changes`` (index, models, alpha, view) to the app's state and render it."""
        if "models" in changes:
            changes["models"] = tuple(changes["models"])
        rendering = self.render(replace(self.state, **changes))  # checks the new state before it is kept
        self.state = rendering.state
        return rendering

    def step(self, delta: int) -> Rendering:
        """Move ``delta`` images forward (negative: back); past either end it wraps around."""
        return self.update(index=(self.state.index + delta) % len(self))

    def scores(self, indices: Sequence[int] | None = None) -> pd.DataFrame:
        """Per-image mIoU of every model: one row per image (index = file name), one column per model."""
        indices = range(len(self)) if indices is None else indices
        rows = {self.dataset.image_path(i).name: {n: self.image_scores(n, i)["mIoU"] for n in self.models}
                for i in indices}
        return pd.DataFrame.from_dict(rows, orient="index", columns=self.names).rename_axis("image")

    def figure(self, indices: Sequence[int], view: str = "prediction", alpha: float = 1.0) -> Figure:
        """A static grid, one row per image: the image, the ground truth, then every model in ``view``."""
        if view not in ("prediction", "error map"):
            raise SeglabError(f"the figure shows models as 'prediction' or 'error map', not {view!r}")
        indices = list(indices)
        if not indices:
            raise SeglabError("the figure needs at least one image index")
        rows = []
        for index in indices:
            shown = self.render(CompareState(index, tuple(self.models), alpha, view))
            gt = viz.overlay(shown.image, shown.ground_truth, self.label_set.palette, alpha)
            rows.append([(shown.image, shown.image_name), (gt, GROUND_TRUTH_PANEL)] + [
                (shown.panels[name], f"{name}: mIoU {shown.iou.loc[name, 'mIoU']:.3f}") for name in self.models])
        return viz.image_grid(rows, fontsize=8)

    @property
    def widget(self) -> ipywidgets.VBox:
        """The ipywidgets app (built once): controls on top, one image per panel, the IoU table below."""
        if self._widget is None:
            self._widget = self._build_widget()
            self._refresh()
        return self._widget

    def _build_widget(self) -> ipywidgets.VBox:
        import ipywidgets as w

        c = self._controls
        c["index"] = w.IntSlider(value=self.state.index, min=0, max=len(self) - 1, description="image",
                                 continuous_update=False)
        c["prev"] = w.Button(description="◀ prev", tooltip="previous image (wraps around)",
                             layout=w.Layout(width="80px"))
        c["next"] = w.Button(description="next ▶", tooltip="next image (wraps around)", layout=w.Layout(width="80px"))
        c["models"] = w.SelectMultiple(options=self.names, value=self.state.models, description="models",
                                       rows=min(6, len(self.models)))
        c["alpha"] = w.FloatSlider(value=self.state.alpha, min=0.0, max=1.0, step=0.05, description="opacity",
                                   continuous_update=False)
        c["view"] = w.ToggleButtons(options=VIEWS, value=self.state.view, tooltips=VIEW_HELP,
                                    style={"button_width": "110px"})
        c["name"] = w.HTML()
        c["panels"] = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        c["table"] = w.HTML()
        for key in ("index", "prev", "next", "models", "alpha", "view", "panels", "table"):
            c[key].add_class(f"seglab-{key}")
        c["prev"].on_click(lambda _: self._on_step(-1))
        c["next"].on_click(lambda _: self._on_step(+1))
        for key in ("index", "models", "alpha", "view"):
            c[key].observe(lambda _: self._refresh(), names="value")
        box = w.VBox([w.HBox([c["prev"], c["index"], c["next"], c["name"]]), w.HBox([c["alpha"], c["view"]]),
                      c["models"], c["panels"], c["table"]])
        box.add_class("seglab-compare")
        return box

    def _on_step(self, delta: int) -> None:
        self._controls["index"].value = (self._controls["index"].value + delta) % len(self)  # triggers _refresh

    def _refresh(self) -> None:
        """Render the controls' values and show the result (errors appear in the table area, never as a crash)."""
        import ipywidgets as w

        c = self._controls
        try:
            rendering = self.update(index=c["index"].value, models=c["models"].value, alpha=c["alpha"].value,
                                    view=c["view"].value)
        except SeglabError as exc:
            c["table"].value = f"<b>error:</b> {html.escape(str(exc))}"
            return
        c["name"].value = f"<code>{html.escape(rendering.image_name)}</code>"
        boxes = []
        for title, picture in rendering.panels.items():
            if title not in self._panel_boxes:  # one box per title, reused so the browser only swaps the PNG
                self._panel_boxes[title] = w.VBox(  # panels share a row, wrapping only when narrower than 200 px
                    [w.HTML(), w.Image(format="png", layout=w.Layout(width="100%", height="auto"))],
                    layout=w.Layout(flex="1 1 0px", min_width="200px", max_width=f"{self.display_width}px",
                                    margin="0 8px 4px 0"))
                self._panel_boxes[title].add_class("seglab-panel")
            heading, image = self._panel_boxes[title].children
            score = rendering.iou["mIoU"].get(title)
            heading.value = f"<b>{html.escape(title)}</b>" + (f" &nbsp; mIoU {score:.3f}" if score is not None else "")
            image.value = png_bytes(fit_width(picture, self.display_width))
            boxes.append(self._panel_boxes[title])
        c["panels"].children = boxes
        table = rendering.iou.reset_index().to_html(index=False, float_format="{:.3f}".format, na_rep="–", border=0)
        c["table"].value = TABLE_STYLE + table if len(rendering.iou) else "<i>no model selected</i>"


def fit_width(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` shrunk (area averaging) to at most ``width`` pixels wide, keeping its aspect ratio."""
    if image.shape[1] <= width:
        return image
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)

