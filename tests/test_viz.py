"""seglab.viz: colours from the official tables, overlays, error maps, GIF timing, figures written atomically."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import torch
from cityscapesscripts.helpers.labels import trainId2label

from seglab.errors import SeglabError
from seglab.labels import CITYSCAPES, VOC_PALETTE
from seglab.metrics import ConfusionMatrix, per_class_table
from seglab.viz import (CORRECT_COLOR, IGNORED_COLOR, WRONG_COLOR, colorize, error_map, make_gif, overlay,
                        plot_class_table, plot_confusion, plot_history, save_figure, triptych)

H, W = 12, 16


def _mask(seed: int = 0, classes: int = 19) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, classes, size=(H, W)).astype(np.uint8)
    mask[:2] = 255
    return mask


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def test_colorize_uses_the_official_cityscapes_colours_and_any_palette():
    mask = _mask()
    rgb = colorize(torch.from_numpy(mask), CITYSCAPES)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    for y, x in [(5, 3), (7, 9), (11, 15)]:
        assert tuple(rgb[y, x]) == trainId2label[int(mask[y, x])].color
    assert (rgb[:2] == 0).all()  # ignore -> black
    np.testing.assert_array_equal(colorize(mask, VOC_PALETTE[:21]), VOC_PALETTE[:21][np.minimum(mask, 20)] *
                                  (mask < 21)[..., None])
    with pytest.raises(SeglabError, match="palette"):
        colorize(mask, np.zeros((3, 4)))


def test_overlay_blends_and_keeps_ignored_pixels():
    image, mask = _image(), _mask()
    assert np.array_equal(overlay(image, mask, CITYSCAPES, alpha=0.0), image)
    full = overlay(image, mask, CITYSCAPES, alpha=1.0)
    np.testing.assert_array_equal(full[2:], colorize(mask, CITYSCAPES)[2:])
    np.testing.assert_array_equal(full[:2], image[:2])
    half = overlay(image.astype(np.float32) / 255, mask, CITYSCAPES, alpha=0.5)
    expected = np.round((image[5, 5].astype(float) + colorize(mask, CITYSCAPES)[5, 5]) / 2)
    assert np.abs(half[5, 5].astype(float) - expected).max() <= 1
    with pytest.raises(SeglabError, match="alpha"):
        overlay(image, mask, CITYSCAPES, alpha=2)


def test_error_map_colours():
    gt = np.array([[0, 1, 255]], dtype=np.uint8)
    pred = np.array([[0, 2, 3]], dtype=np.uint8)
    out = error_map(gt, pred)
    assert out.dtype == np.uint8 and out.shape == (1, 3, 3)
    assert [tuple(c) for c in out[0]] == [CORRECT_COLOR, WRONG_COLOR, IGNORED_COLOR]


def test_triptych_puts_image_truth_prediction_side_by_side():
    image, gt, pred = _image(), _mask(1), _mask(2)
    strip = triptych(image, gt, pred, CITYSCAPES, gap=4)
    assert strip.shape == (H, 3 * W + 8, 3) and strip.dtype == np.uint8
    np.testing.assert_array_equal(strip[:, :W], image)
    np.testing.assert_array_equal(strip[:, W + 4:2 * W + 4], colorize(gt, CITYSCAPES))
    np.testing.assert_array_equal(strip[:, -W:], colorize(pred, CITYSCAPES))
    assert (strip[:, W:W + 4] == 255).all()


def test_make_gif_has_every_frame_at_the_requested_fps(tmp_path):
    frames = [(_image(i), _mask(i), _mask(i + 10)) for i in range(3)]
    path = make_gif(frames, tmp_path / "deep" / "pred.gif", fps=4, palette=CITYSCAPES)
    stack = iio.imread(path, index=None)
    assert stack.shape == (3, H, 3 * W + 8, 3)
    assert iio.immeta(path)["duration"] == 250  # ms per frame = 1000 / fps
    solid = [np.full((H, W, 3), value, np.uint8) for value in (0, 255)]
    assert iio.imread(make_gif(solid, tmp_path / "bw.gif", fps=2), index=None)[1].min() == 255
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bw.gif", "deep"]  # no temp files left
    with pytest.raises(SeglabError, match="differ in size"):
        make_gif([solid[0], np.zeros((4, 4, 3), np.uint8)], tmp_path / "bad.gif")
    assert not (tmp_path / "bad.gif").exists()


def test_plot_history_draws_four_panels_from_a_csv(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2, 3], "lr": [0.01] * 3, "train_loss": [2.0, 1.5, 1.2],
                            "val_loss": [2.1, 1.7, 1.4], "miou": [0.1, 0.2, 0.3], "mdice": [0.15, 0.3, 0.4],
                            "mean_accuracy": [0.2, 0.3, 0.45], "seconds": [3.0] * 3})
    history.to_csv(tmp_path / "history.csv", index=False)
    fig = plot_history(tmp_path / "history.csv", out_png=tmp_path / "figs" / "history.png")
    assert len(fig.axes) == 4
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), history["miou"])
    assert iio.imread(tmp_path / "figs" / "history.png").ndim == 3
    with pytest.raises(SeglabError, match="val_loss"):
        plot_history(history.drop(columns="val_loss"))


def test_plot_confusion_normalises_rows(tmp_path):
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 8, 8), generator=g)
    pred = torch.randint(0, 4, (2, 8, 8), generator=g)
    cm = ConfusionMatrix(4).update(pred, target)
    names = ["a", "b", "c", "d"]
    fig = plot_confusion(cm, names, normalize="true", out_png=tmp_path / "cm.png")
    values = np.asarray(fig.axes[0].collections[0].get_array()).reshape(4, 4)
    np.testing.assert_allclose(values.sum(axis=1), 1.0)
    np.testing.assert_allclose(values, cm.matrix.numpy() / cm.matrix.numpy().sum(axis=1, keepdims=True))
    assert (tmp_path / "cm.png").stat().st_size > 0
    raw = plot_confusion(cm.matrix.numpy(), names, normalize=None)
    assert np.asarray(raw.axes[0].collections[0].get_array()).sum() == int(cm.matrix.sum())
    with pytest.raises(SeglabError, match="normalize"):
        plot_confusion(cm, names, normalize="rows")


def test_plot_class_table_and_save_figure(tmp_path):
    cm = ConfusionMatrix(3).update(torch.tensor([[0, 1, 1, 2]]), torch.tensor([[0, 1, 2, 2]]))
    fig = plot_class_table(per_class_table(cm, ["x", "y", "z"]), "iou")
    widths = sorted(bar.get_width() for bar in fig.axes[0].patches)
    np.testing.assert_allclose(widths, sorted(cm.iou()))
    target = save_figure(fig, tmp_path / "a" / "b" / "iou.svg")
    assert target.read_text().lstrip().startswith("<?xml")
    plot_class_table({"x": 0.5, "y": None}, out_png=tmp_path / "dict.png")
    assert (tmp_path / "dict.png").exists()
