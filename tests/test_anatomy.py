"""seglab.anatomy: traced shapes match what the modules really return; receptive fields, dilation footprints and
valid-tap fractions match the same quantities computed by torch convolutions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.anatomy import (atrous_valid_weights, dilated_sampling, effective_receptive_field, erf_extent,
                            plot_dilated_sampling, plot_predictions, plot_receptive_fields, trace_shapes)
from seglab.models import build_model


def _ones_conv(in_channels: int, dilation: int, kernel_size: int = 3) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, 1, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation,
                     bias=False)
    nn.init.ones_(conv.weight)
    return conv


def _linear_stack(dilations, in_channels: int = 1, kernel_size: int = 3) -> nn.Sequential:
    """Stride-1 convolutions with all-one weights: the response to a delta counts paths, like dilated_sampling."""
    return nn.Sequential(*[_ones_conv(in_channels if i == 0 else 1, d, kernel_size) for i, d in enumerate(dilations)])


# ------------------------------------------------------------------------------------------------ trace_shapes
class _Manual(nn.Module):
    """A ModuleList iterated by hand (never called as a whole) plus a Sequential called as a whole, and one module
    called three times."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList([nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(4, 8, 3, stride=2, padding=1)])
        self.head = nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU())
        self.shared = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        for _ in range(3):
            x = self.shared(x)
        return self.head(x)


def test_trace_shapes_levels_skip_uncalled_containers_and_repeat_calls():
    model = _Manual()
    top = trace_shapes(model, (32, 48), depth=1)
    assert top["module"].tolist() == ["stages.0", "stages.1", "shared", "shared", "shared", "head"]
    assert top["output_shape"].tolist()[:2] == [(1, 4, 16, 24), (1, 8, 8, 12)]
    assert top["stride"].tolist()[:2] == [2.0, 4.0]
    assert top.loc[top.module == "head", "params"].item() == sum(p.numel() for p in model.head.parameters())
    deeper = trace_shapes(model, torch.zeros(2, 3, 32, 48), depth=2)
    assert deeper["module"].tolist() == ["stages.0", "stages.1", "shared", "shared", "shared", "head.0", "head.1"]
    assert deeper["output_shape"].iloc[-1] == tuple(model(torch.zeros(2, 3, 32, 48)).shape)


def test_trace_shapes_of_deeplab_matches_its_own_features_and_output_stride():
    for output_stride in (16, 8):
        model = build_model("deeplabv3plus", 5, output_stride=output_stride).train()
        table = trace_shapes(model, (64, 96)).set_index("module")
        assert model.training  # mode restored
        with torch.no_grad():
            low, high = model.eval().features(torch.zeros(1, 3, 64, 96))
        assert table.loc["backbone.layer1", "output_shape"] == tuple(low.shape)
        assert table.loc["backbone.layer4", "output_shape"] == tuple(high.shape)
        assert table.loc["backbone.layer4", "stride"] == output_stride
        assert table.loc["aspp", "output_shape"] == (1, 256, 64 // output_stride, 96 // output_stride)
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed


def test_trace_shapes_of_unet_halves_per_level_and_ends_with_the_logits():
    model = build_model("unet", 3, base_width=4, depth=3)
    table = trace_shapes(model, (32, 64), depth=1)
    encoder = table[table.module.str.startswith("encoder.")]
    assert encoder["stride"].tolist() == [1.0, 2.0, 4.0, 8.0]
    assert [shape[1] for shape in encoder["output_shape"]] == [4, 8, 16, 32]
    assert table["output_shape"].iloc[-1] == tuple(model.eval()(torch.zeros(1, 3, 32, 64)).shape)


def test_trace_shapes_rejects_bad_arguments():
    model = _Manual()
    with pytest.raises(SeglabError, match="depth"):
        trace_shapes(model, (8, 8), depth=0)
    with pytest.raises(SeglabError, match="input"):
        trace_shapes(model, torch.zeros(3, 8, 8))
    with pytest.raises(SeglabError, match="input size"):
        trace_shapes(model, (8, -1))


# ------------------------------------------------------------------------------------------------ footprints
@pytest.mark.parametrize("dilations", [[1], [2], [5], [2, 2, 2], [1, 2, 4], [3, 1]])
def test_dilated_sampling_equals_the_response_of_a_torch_conv_stack_to_a_delta(dilations):
    footprint = dilated_sampling(dilations)
    side = footprint.shape[0]
    delta = torch.zeros(1, 1, side, side)
    delta[..., side // 2, side // 2] = 1
    with torch.no_grad():
        response = _linear_stack(dilations)(delta)[0, 0].round().long().numpy()
    np.testing.assert_array_equal(footprint, response)
    assert side == 2 * sum(dilations) + 1


def test_dilated_sampling_shows_gridding_holes_and_hybrid_rates_without_them():
    assert (dilated_sampling([2, 2, 2]) == 0).sum() > 0  # rates sharing a factor leave holes
    assert (dilated_sampling([1, 2, 4]) > 0).all()  # rates 1, 2, 4 cover every pixel of the 15x15 span
    assert (dilated_sampling([6]) > 0).sum() == 9 and dilated_sampling([6]).shape == (13, 13)
    assert (dilated_sampling([2], kernel_size=5) > 0).sum() == 25
    for bad in ([], [0], [1.5]):
        with pytest.raises(SeglabError, match="dilations"):
            dilated_sampling(bad)
    with pytest.raises(SeglabError, match="kernel_size"):
        dilated_sampling([1], kernel_size=4)


@pytest.mark.parametrize("size,rate", [((16, 32), 1), ((16, 32), 6), ((16, 32), 12), ((33, 65), 24), (7, 36)])
def test_atrous_valid_weights_matches_a_zero_padded_torch_conv(size, rate):
    height, width = (size, size) if isinstance(size, int) else size
    with torch.no_grad():
        taps = _ones_conv(1, rate)(torch.ones(1, 1, height, width))
    assert atrous_valid_weights(size, rate) == pytest.approx(taps.mean().item() / 9)


def test_atrous_valid_weights_degenerates_to_the_centre_tap():
    assert atrous_valid_weights((8, 8), 8) == pytest.approx(1 / 9)
    assert atrous_valid_weights((8, 8), 1) > atrous_valid_weights((8, 8), 3) > atrous_valid_weights((8, 8), 6)
    with pytest.raises(SeglabError, match="rate"):
        atrous_valid_weights(8, 0)


# ------------------------------------------------------------------------------------------------ receptive field
def test_erf_of_a_linear_conv_stack_is_its_footprint():
    dilations = [1, 2, 4]
    model = _linear_stack(dilations, in_channels=3)
    size = 41
    erf = effective_receptive_field(model, size, samples=1)
    footprint = dilated_sampling(dilations).astype(np.float64)
    pad = (size - footprint.shape[0]) // 2
    np.testing.assert_allclose(erf, np.pad(footprint / footprint.max(), pad), rtol=1e-6, atol=1e-9)
    assert erf_extent(erf, 1.0) == footprint.shape[0] == 15
    assert erf_extent(erf, 0.5) < 15


def test_erf_leaves_parameters_and_mode_alone_and_grows_with_depth():
    torch.manual_seed(0)
    shallow = build_model("unet", 3, base_width=4, depth=2).train()
    deep = build_model("unet", 3, base_width=4, depth=4)
    erf = effective_receptive_field(shallow, (63, 63), samples=2)
    assert erf.shape == (63, 63) and erf.max() == pytest.approx(1.0) and erf.min() >= 0
    assert shallow.training and all(p.grad is None for p in shallow.parameters())
    # receptive-field recursion r += (k - 1) * jump: 3x3 double convs at jumps 1, 2, 4 (encoder) and 2, 1 (decoder),
    # 2x2 poolings at jumps 1, 2, non-overlapping 2x2 up-convolutions add nothing -> 44 pixels at most (45 centred)
    depth_2_bound = 1 + 4 * (1 + 2 + 4) + (1 + 2) + 4 * (2 + 1)
    assert depth_2_bound // 2 < erf_extent(erf, 1.0) <= depth_2_bound + 1
    assert erf_extent(effective_receptive_field(deep, (255, 255), samples=1), 1.0) > 2 * depth_2_bound


def test_erf_extent_of_known_maps_and_bad_input():
    square = np.zeros((21, 21))
    square[8:13, 8:13] = 1
    assert erf_extent(square, 1.0) == 5
    assert erf_extent(square, 0.04) == 1  # the centre pixel alone holds 1/25 of the mass
    assert erf_extent(np.zeros((5, 5))) == 0
    with pytest.raises(SeglabError, match="mass"):
        erf_extent(square, 0)
    with pytest.raises(SeglabError, match="samples"):
        effective_receptive_field(_linear_stack([1], in_channels=3), 9, samples=0)


# ------------------------------------------------------------------------------------------------ figures
def test_plots_are_saved(tmp_path):
    erf = effective_receptive_field(_linear_stack([1, 2], in_channels=3), 21, samples=1)
    fig = plot_receptive_fields({"a": erf, "b": erf}, out_png=tmp_path / "erf.png")
    assert len(fig.axes) == 2 and (tmp_path / "erf.png").stat().st_size > 1000
    fig = plot_dilated_sampling({"rate 2": [2], "1,2,4": [1, 2, 4]}, out_png=tmp_path / "sub" / "dil.png")
    assert len(fig.axes) == 2 and (tmp_path / "sub" / "dil.png").is_file()
    with pytest.raises(SeglabError):
        plot_receptive_fields({})


def test_plot_predictions_shows_image_truth_and_the_models_argmax(tmp_path):
    from seglab.transforms import IMAGENET_MEAN, IMAGENET_STD
    from seglab.labels import CITYSCAPES
    from seglab.viz import colorize

    torch.manual_seed(0)
    model = build_model("unet", 19, base_width=4, depth=2)
    images = [torch.randn(3, 24, 40) for _ in range(2)]
    targets = [torch.randint(0, 19, (24, 40)) for _ in range(2)]
    targets[1][:4] = 255
    dataset = list(zip(images, targets))
    fig = plot_predictions(model, dataset, CITYSCAPES, [1, 0], out_png=tmp_path / "pred.png")
    assert (tmp_path / "pred.png").is_file() and len(fig.axes) == 6
    with torch.no_grad():
        expected = model.eval()(images[1][None]).argmax(1)[0]
    shown = [np.asarray(ax.images[0].get_array()) for ax in fig.axes[:3]]
    np.testing.assert_array_equal(shown[2], colorize(expected, CITYSCAPES))
    np.testing.assert_array_equal(shown[1], colorize(targets[1], CITYSCAPES))
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = ((images[1] * std + mean).clamp(0, 1).permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(shown[0].astype(float) - rgb).max() <= 1
    with pytest.raises(SeglabError, match="out of range"):
        plot_predictions(model, dataset, CITYSCAPES, [2])
