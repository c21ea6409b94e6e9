"""`seglab.infer.predict_logits`: sliding-window tiling and flip test-time augmentation against hand computations."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seglab.infer import predict_logits


class Recording(nn.Module):
    """Wraps a model and records the (H, W) of every input it sees."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.shapes = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape[-2:]))
        return self.model(x)


def _seeded(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for param in module.parameters():
        nn.init.normal_(param)
    return module.eval()


@pytest.mark.parametrize("window", [(12, 12), (10, 16), (16, 23), (37, 53), (64, 80), (1, 53)])
@pytest.mark.parametrize("overlap", [0.0, 1 / 3, 0.5, 0.6])
def test_sliding_window_equals_whole_image_for_a_pointwise_model(window, overlap):
    """A 1x1 convolution sees one pixel at a time, so tiles averaged where they overlap must give the whole-image
    logits at every pixel: a misplaced, missing or wrongly weighted tile shows. 37x53 is divisible by no window."""
    model = Recording(_seeded(nn.Conv2d(3, 5, 1)))
    images = torch.randn(2, 3, 37, 53, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(images)
        model.shapes.clear()
        tiled = predict_logits(model, images, window=window, overlap=overlap)
    assert tiled.shape == whole.shape and tiled.dtype == torch.float32
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)
    expected_tile = (min(window[0], 37), min(window[1], 53))
    assert set(model.shapes) == {expected_tile}  # every forward pass is one full window
    if window[0] < 37 or window[1] < 53:
        assert len(model.shapes) > 1


def test_sliding_window_tiles_cover_every_pixel_and_count_overlaps():
    """A model that answers 1 everywhere: the averaged result is exactly 1 only if every pixel is covered and each
    tile's sum is divided by the number of tiles that cover the pixel."""
    ones = lambda x: torch.ones(x.shape[0], 2, *x.shape[-2:])  # noqa: E731
    for window, overlap in (((8, 8), 1 / 3), ((10, 16), 0.5), ((16, 23), 0.6)):
        out = predict_logits(ones, torch.zeros(1, 3, 37, 53), window=window, overlap=overlap)
        assert torch.equal(out, torch.ones(1, 2, 37, 53))


def test_flip_tta_averages_with_the_flipped_back_pass_of_an_asymmetric_model():
    """TTA logits are (m(x) + flip(m(flip(x)))) / 2, computed here by hand for a 3x3 convolution with a random,
    left-right asymmetric kernel plus an x-coordinate ramp (a model that is not flip-symmetric)."""
    conv = _seeded(nn.Conv2d(3, 4, 3, padding=1))
    ramp = torch.linspace(-1, 3, 29)

    def model(x: torch.Tensor) -> torch.Tensor:
        return conv(x) + ramp

    images = torch.randn(2, 3, 17, 29, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = model(images)
        mirrored = model(images.flip(-1)).flip(-1)
        expected = (plain + mirrored) / 2
        got = predict_logits(model, images, flip=True)
    assert (plain - mirrored).abs().max() > 0.5  # the model is far from flip-symmetric, so the test can fail
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(predict_logits(model, images), plain, rtol=0, atol=0)


def test_flip_tta_with_a_sliding_window_matches_the_whole_image_for_a_pointwise_model():
    """A 1x1 convolution commutes with flipping, so flip TTA over tiles must still give the whole-image logits."""
    conv = _seeded(nn.Conv2d(3, 4, 1))
    images = torch.randn(1, 3, 17, 29, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = predict_logits(conv, images, flip=True, window=(8, 12), overlap=1 / 3)
        torch.testing.assert_close(got, conv(images), rtol=1e-5, atol=1e-5)


class TilePosition(nn.Module):
    """Logits that depend on where a pixel sits in the tile it is predicted in: channel 0 is the row, channel 1 the
    column within the input, channel 2 the image's first channel; a tile's result is not a crop of the whole's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        rows = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1).expand(n, 1, height, width)
        cols = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width).expand(n, 1, height, width)
        return torch.cat([rows, cols, x[:, :1]], 1)


def _mmseg_slide(model: nn.Module, images: torch.Tensor, crop: tuple[int, int], stride: tuple[int, int]):
    """mmsegmentation's EncoderDecoder.slide_inference (v1.x), transcribed: grids of crop-size tiles at ``stride``,
    the last one moved back inside the image, logits summed and divided by the number of tiles over each pixel."""
    (h_stride, w_stride), (h_crop, w_crop) = stride, crop
    batch, _, h_img, w_img = images.shape
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds, count = None, torch.zeros(batch, 1, h_img, w_img)
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1, x1 = h_idx * h_stride, w_idx * w_stride
            y2, x2 = min(y1 + h_crop, h_img), min(x1 + w_crop, w_img)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            logits = model(images[:, :, y1:y2, x1:x2])
            if preds is None:
                preds = images.new_zeros(batch, logits.shape[1], h_img, w_img)
            preds[:, :, y1:y2, x1:x2] += logits
            count[:, :, y1:y2, x1:x2] += 1
    return preds / count


@pytest.mark.parametrize("window, overlap", [((12, 20), 1 / 3), ((12, 20), 0.5), ((16, 23), 0.6), ((37, 24), 0.0)])
def test_sliding_window_blends_tiles_as_mmsegmentation_does(window, overlap):
    """With a model whose output depends on the pixel's place in its tile, the overlap (the tile stride
    ceil(window x (1 - overlap))) and the averaging of overlapping tiles show in every pixel."""
    images = torch.randn(1, 3, 37, 53, generator=torch.Generator().manual_seed(2))
    stride = tuple(max(1, math.ceil(w * (1 - overlap))) for w in window)
    expected = _mmseg_slide(TilePosition(), images, window, stride)
    tiled = predict_logits(TilePosition(), images, window=window, overlap=overlap)
    torch.testing.assert_close(tiled, expected, rtol=0, atol=1e-5)
    whole = TilePosition()(images)
    assert not torch.allclose(tiled[:, :2], whole[:, :2])  # the tiles do show in the result


def test_every_path_draws_the_same_label_map(tiny_checkpoint, minicity, tmp_path):
    """The evaluation, predict_folder, the comparison app and predict_labels itself give one image the same labels."""
    import shutil

    import numpy as np
    from PIL import Image

    from seglab.checkpoint import model_from_checkpoint
    from seglab.data import build_dataset
    from seglab.infer import iter_predictions, predict_labels
    from seglab.toolbox.jobs import predict_folder
    from seglab.labels import CITYSCAPES
    from seglab.toolbox.widgets import CompareApp

    model = model_from_checkpoint(tiny_checkpoint)[0].to(memory_format=torch.channels_last).eval()
    dataset = build_dataset("cityscapes", minicity, "val")
    image, _ = dataset[0]
    with torch.inference_mode():
        direct = predict_labels(model, image[None], channels_last=True)[0]
    _, logits, _ = next(iter_predictions(model, dataset, torch.device("cpu"), progress=False, channels_last=True))
    evaluated = logits.argmax(1)[0]
    app = CompareApp([tiny_checkpoint], minicity, device="cpu", precision="fp32", resize=1.0)
    shown = torch.from_numpy(app.predict(app.names[0], 0).astype(np.int64))
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(dataset.image_path(0), folder)
    predict_folder(model, CITYSCAPES, folder, tmp_path / "out", torch.device("cpu"), channels_last=True,
                   progress=False)
    (label_png,) = (tmp_path / "out").glob("*_label.png")
    written = torch.from_numpy(np.asarray(Image.open(label_png)).astype(np.int64))
    assert direct.shape == image.shape[-2:] and len(direct.unique()) > 1  # a real, varied prediction
    for other in (evaluated, shown, written):
        assert torch.equal(direct, other)
