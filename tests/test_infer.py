"""`seglab.infer.predict_logits`: sliding-window tiling and flip test-time augmentation against hand computations."""
from __future__ import annotations

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
