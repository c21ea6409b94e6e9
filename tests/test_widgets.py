"""The model-comparison app (seglab.toolbox.widgets) without a browser: state -> panels and IoU, and the widget wiring."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.classification import MulticlassJaccardIndex
from torchvision.datasets import Cityscapes

from seglab.config import TrainConfig
from seglab.data import VOCSegmentation
from seglab.engine import fit
from seglab.errors import SeglabError
from seglab.toolbox.widgets import CompareApp, CompareState, checkpoint_names, fit_width, png_bytes

TINY_UNET = {"base_width": 8, "depth": 3}


def _train(data, out, seed: int):
    fit(TrainConfig(model="unet", model_options=TINY_UNET, data=str(data), out=str(out), epochs=1, batch_size=2,
                    crop=(64, 128), max_steps=2, workers=0, precision="fp32", progress=False, seed=seed))
    return out / "best.pt"


@pytest.fixture(scope="module")
def checkpoints(minicity, tmp_path_factory):
    """Two tiny UNets trained with different seeds, in run folders named 'unet' and 'unet_b'."""
    runs = tmp_path_factory.mktemp("runs")
    return [_train(minicity, runs / "unet", seed=0), _train(minicity, runs / "unet_b", seed=1)]


@pytest.fixture(scope="module")
def shared_app(checkpoints, minicity):
    return CompareApp(checkpoints, minicity, split="val", device="cpu", precision="fp32")


@pytest.fixture()
def app(shared_app):
    """The module's app (its prediction cache shared to save time), back at its initial state."""
    shared_app.state = CompareState(models=tuple(shared_app.models))
    return shared_app


def test_names_come_from_run_folders(app):
    assert app.names == ["unet", "unet_b"] and len(app) == 3
    assert checkpoint_names(["a/run/best.pt", "b/run/best.pt"]) == ["a/run/best.pt", "b/run/best.pt"]


def test_moving_the_slider_changes_the_image(app):
    first = app.update(index=0)
    second = app.update(index=1)
    assert app.state.index == 1 and first.image_name != second.image_name
    assert not np.array_equal(first.panels["unet"], second.panels["unet"])


def test_view_modes_change_the_panels(app):
    prediction = app.update(view="prediction", alpha=1.0)
    errors = app.update(view="error map")
    assert list(prediction.panels) == ["unet", "unet_b"] == list(errors.panels)
    assert not np.array_equal(prediction.panels["unet"], errors.panels["unet"])
    colours = {tuple(c) for c in errors.panels["unet"].reshape(-1, 3)}
    assert colours <= {(0, 170, 0), (230, 25, 25), (128, 128, 128)}  # viz.error_map's three colours at alpha 1


def test_ground_truth_view_equals_the_dataset_colour_label(app, minicity):
    rendering = app.update(index=2, view="ground truth", alpha=1.0)
    assert list(rendering.panels) == ["ground truth"]
    panel, gt = rendering.panels["ground truth"], rendering.ground_truth
    reference = Cityscapes(str(minicity), split="val", mode="fine", target_type="color")
    index = [p.split("/")[-1] for p in reference.images].index(rendering.image_name)
    colour = np.asarray(reference[index][1].convert("RGB"))
    valid = gt != 255
    assert valid.mean() > 0.5
    np.testing.assert_array_equal(panel[valid], colour[valid])
    np.testing.assert_array_equal(panel[~valid], rendering.image[~valid])  # ignored pixels: the plain image


def test_iou_readout_matches_torchmetrics_on_that_image(app):
    rendering = app.update(index=1)
    for name in app.names:
        pred = torch.from_numpy(app.predict(name, 1)).long()
        gt = torch.from_numpy(rendering.ground_truth).long()
        per_class = MulticlassJaccardIndex(19, average="none", ignore_index=255, zero_division=float("nan"))(pred, gt)
        valid = gt != 255
        present = torch.zeros(19, dtype=torch.bool)
        present[pred[valid].unique()] = True
        present[gt[valid].unique()] = True
        assert rendering.iou.loc[name, "mIoU"] == pytest.approx(float(per_class[present].mean()), abs=1e-6)
        accuracy = float((pred[valid] == gt[valid]).float().mean())
        assert rendering.iou.loc[name, "pixel accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_one_panel_per_selected_model(app):
    assert list(app.update(models=["unet_b", "unet"]).panels) == ["unet", "unet_b"]  # display order kept
    single = app.update(models=["unet_b"])
    assert list(single.panels) == ["unet_b"] and list(single.iou.index) == ["unet_b"]


def test_prev_next_wrap_around(app):
    assert app.step(-1).state.index == len(app) - 1
    assert app.step(+1).state.index == 0
    assert app.step(+1).state.index == 1


def test_opacity_zero_shows_the_plain_image(app):
    for view in ("prediction", "ground truth", "error map"):
        rendering = app.update(view=view, alpha=0.0)
        for panel in rendering.panels.values():
            np.testing.assert_array_equal(panel, rendering.image)
    image, _ = app.pair(app.state.index)
    np.testing.assert_array_equal(image, np.asarray(Image.open(app.dataset.image_path(app.state.index)).convert("RGB")))


def test_predictions_are_computed_once_per_model_and_image(app):
    app._predictions.clear()
    calls = []
    handle = app.models["unet"].register_forward_hook(lambda *_: calls.append(1))
    try:
        for view in ("prediction", "error map", "ground truth", "prediction"):
            app.update(index=0, view=view)
        app.update(index=1)
        app.update(index=0)
    finally:
        handle.remove()
    assert len(calls) == 2


def test_bad_state_is_a_clear_error(app, checkpoints, minicity, minivoc):
    with pytest.raises(SeglabError, match="outside 0..2"):
        app.update(index=3)
    with pytest.raises(SeglabError, match="unknown model"):
        app.update(models=["segformer"])
    with pytest.raises(SeglabError, match="opacity"):
        app.update(alpha=1.5)
    assert app.state.index == 0  # a refused change leaves the state alone
    with pytest.raises(SeglabError, match="no checkpoint"):
        CompareApp([], minicity)
    with pytest.raises(SeglabError, match="not found"):
        CompareApp([checkpoints[0].parent / "missing.pt"], minicity)
    with pytest.raises(SeglabError, match="21 classes but the checkpoints predict 19"):
        CompareApp(checkpoints, VOCSegmentation(minivoc, "val"))


def test_widget_controls_drive_the_images(checkpoints, minicity):
    app = CompareApp(checkpoints, minicity, device="cpu", precision="fp32")
    widget = app.widget
    controls = app._controls
    panels = controls["panels"].children
    assert len(panels) == 2 and "mIoU" in controls["table"].value and "unet_b" in controls["table"].value
    before = panels[0].children[1].value
    assert before == png_bytes(app.render(app.state).panels["unet"])
    controls["next"].click()
    assert controls["index"].value == 1 and app.state.index == 1
    after_next = panels[0].children[1].value
    assert after_next != before
    controls["view"].value = "error map"
    assert panels[0].children[1].value not in (before, after_next)
    controls["view"].value = "ground truth"
    assert len(controls["panels"].children) == 1
    controls["prev"].click()
    controls["prev"].click()
    assert controls["index"].value == len(app) - 1  # wrapped around
    assert controls["panels"] in widget.children


def test_widget_shrinks_wide_panels(checkpoints, minicity):
    app = CompareApp(checkpoints[:1], minicity, device="cpu", precision="fp32", display_width=100)
    shown = cv2.imdecode(np.frombuffer(app.widget.children[-2].children[0].children[1].value, np.uint8), 1)
    assert shown.shape == (50, 100, 3) and fit_width(shown, 200).shape == (50, 100, 3)


def test_static_figure_has_one_row_per_image(app, tmp_path):
    from seglab.viz import save_figure

    fig = app.figure([0, 2], view="error map")
    assert len(fig.axes) == 2 * (2 + 2)
    assert "mIoU" in fig.axes[2].get_title()
    assert save_figure(fig, tmp_path / "compare.png").stat().st_size > 0
    scores = app.scores()
    assert list(scores.columns) == ["unet", "unet_b"] and len(scores) == 3
    assert scores.loc[app.dataset.image_path(0).name, "unet"] == pytest.approx(app.image_scores("unet", 0)["mIoU"])


def _input_shapes(app: CompareApp, name: str, index: int = 0) -> tuple[list[tuple], np.ndarray]:
    """The input shapes the model ``name`` sees while the app predicts image ``index``, and the prediction."""
    shapes = []
    handle = app.models[name].register_forward_hook(lambda module, args, out: shapes.append(tuple(args[0].shape)))
    try:
        prediction = app.predict(name, index)
    finally:
        handle.remove()
    return shapes, prediction


def test_scale_resizes_the_input_and_returns_native_predictions(checkpoints, minicity, tmp_path):
    """Without ``resize`` each model sees the input at the val_resize stored in its checkpoint (here 1.0 for one run
    and 0.5 for a copy saved with val_resize 0.5); ``resize`` overrides it; predictions come back at native size."""
    from seglab.checkpoint import Checkpoint

    record = Checkpoint.load(checkpoints[0])
    record.config["val_resize"] = 0.5
    half = tmp_path / "unet_half" / "best.pt"
    half.parent.mkdir()
    record.save(half)
    app = CompareApp([checkpoints[0], half], minicity, device="cpu", precision="fp32")
    assert app.resizes == {"unet": 1.0, "unet_half": 0.5}  # each run's val_resize
    assert _input_shapes(app, "unet")[0] == [(1, 3, 128, 256)]
    shapes, prediction = _input_shapes(app, "unet_half")
    assert shapes == [(1, 3, 64, 128)] and prediction.shape == app.pair(0)[1].shape == (128, 256)
    override = CompareApp([checkpoints[0], half], minicity, device="cpu", precision="fp32", resize=0.5)
    assert override.resizes == {"unet": 0.5, "unet_half": 0.5}
    shapes, prediction = _input_shapes(override, "unet")
    assert shapes == [(1, 3, 64, 128)] and prediction.shape == (128, 256)
    native = CompareApp([half], minicity, device="cpu", precision="fp32", resize=1.0)
    assert _input_shapes(native, "unet_half")[0] == [(1, 3, 128, 256)]
    with pytest.raises(SeglabError, match="resize must be positive"):
        CompareApp(checkpoints, minicity, resize=0)
