"""Tests for seglab.models: shapes at any size, gradients, export, the registry, backbone weights, DeepLab strides."""
from __future__ import annotations

import json
import os
import time

import pytest
import torch
import torch.nn.functional as F
import torchvision

from seglab.toolbox.cli import main
from seglab.errors import SeglabError
from seglab.models import (MODEL_NAMES, NATIVE_MODEL_NAMES, build_model, count_parameters, list_models,
                           model_options)
from seglab.models.deeplabv3plus import dilated_resnet
from seglab.models.fcn import bilinear_upsampler
from seglab.models.r2unet import RecurrentConv

NUM_CLASSES = 5


def _model(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, NUM_CLASSES, **options)


# ------------------------------------------------------------------------------------------------ every model
@pytest.mark.parametrize("name", NATIVE_MODEL_NAMES)
def test_logits_have_input_resolution_at_even_and_odd_sizes(name):
    model = _model(name).eval()
    with torch.inference_mode():
        for shape in [(1, 3, 256, 512), (2, 3, 250, 333)]:
            x = torch.randn(shape)
            logits = model(x)
            assert logits.shape == (shape[0], NUM_CLASSES, *shape[2:])
            assert torch.isfinite(logits).all()
        # padding must not leak between images: each image of a batch gives what it gives alone
        x = torch.randn(2, 3, 45, 71)
        torch.testing.assert_close(model(x)[1:], model(x[1:]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NATIVE_MODEL_NAMES)
def test_gradients_reach_every_parameter(name):
    model = _model(name).train()
    x = torch.randn(2, 3, 64, 96)
    target = torch.randint(0, NUM_CLASSES, (2, 64, 96))
    target[:, :8] = 255  # the ignore label is part of every real target
    F.cross_entropy(model(x), target, ignore_index=255).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{pname} has a non-finite gradient"


@pytest.mark.parametrize("name", NATIVE_MODEL_NAMES)
def test_torch_export_matches_eager(name):
    model = _model(name).eval()
    x = torch.randn(1, 3, 70, 101)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace.*` is deprecated")
@pytest.mark.parametrize("name", NATIVE_MODEL_NAMES)
def test_jit_trace_matches_eager(name):
    model = _model(name).eval()
    x = torch.randn(1, 3, 70, 101)
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
        torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "name,options",
    [("unet", {"base_width": 8, "depth": 3, "upsample": "bilinear"}), ("unet_vgg13", {"upsample": "bilinear"}),
     ("fcn8s", {"backbone": "vgg13", "fc_channels": 64}), ("deeplabv3plus", {"output_stride": 8}),
     ("r2unet", {"base_width": 8, "t": 1}), ("ddunet", {"base_width": 8, "dilations": (1, 3)})],
)
def test_spec_rebuilds_the_same_model_after_a_json_round_trip(name, options):
    model = _model(name, **options).eval()
    spec = json.loads(json.dumps(model.seglab_spec))
    assert spec["name"] == name and spec["num_classes"] == NUM_CLASSES
    assert set(spec["options"]) == set(model_options(name)) - {"pretrained", "backbone_weights"}
    rebuilt = build_model(spec["name"], spec["num_classes"], **spec["options"]).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


# --------------------------------------------------------------------------------------------- registry & CLI
def test_models_command_prints_every_parameter_count(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in MODEL_NAMES:
        params = count_parameters(build_model(name, 19))  # a real (not meta) build at 19 classes
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert f"{params:,}" in line
    assert {row.name: row.params for row in list_models()}["unet"] == count_parameters(build_model("unet", 19))


def test_unknown_model_or_option_is_a_one_line_error():
    with pytest.raises(SeglabError, match="unknown model 'segformer'.*unet, unet_vgg13"):
        build_model("segformer", 19)
    with pytest.raises(SeglabError, match="unknown option 'widht' for model 'unet'.*base_width=16"):
        build_model("unet", 19, widht=8)
    with pytest.raises(SeglabError, match="unknown option 'pretrained'"):
        build_model("r2unet", 19, pretrained=True)  # no backbone, so no weights to download
    bad = [("deeplabv3plus", {"output_stride": 32}), ("deeplabv3plus", {"backbone": "vgg16"}),
           ("fcn8s", {"backbone": "resnet50"}), ("unet", {"upsample": "nearest"}), ("unet", {"depth": 0}),
           ("ddunet", {"dilations": "124"}), ("r2unet", {"t": True})]
    for name, options in bad:
        with pytest.raises(SeglabError) as info:
            build_model(name, 19, **options)
        assert "\n" not in str(info.value) and str(next(iter(options.values()))) in str(info.value)
    with pytest.raises(SeglabError, match="num_classes"):
        build_model("unet", 0)


# ----------------------------------------------------------------------------------------- backbone weights
@pytest.mark.parametrize(
    "name,options,arch",
    [("unet_vgg13", {}, "vgg13"), ("fcn8s", {}, "vgg11_bn"), ("deeplabv3plus", {}, "resnet18"),
     ("deeplabv3plus", {"backbone": "resnet50"}, "resnet50")],
)
def test_backbone_weights_file_loads_exactly(tmp_path, name, options, arch):
    torch.manual_seed(1234)
    reference = getattr(torchvision.models, arch)().state_dict()
    path = tmp_path / f"{arch}.pth"
    torch.save(reference, path)
    model = build_model(name, NUM_CLASSES, backbone_weights=str(path), **options)
    loaded = model.backbone.state_dict()
    # every tensor except the ImageNet classifier is used, and each equals the file's exactly
    assert set(loaded) == {k for k in reference if not k.startswith(("classifier.", "fc."))}
    for key, value in loaded.items():
        assert torch.equal(value, reference[key]), key
    assert "backbone_weights" not in model.seglab_spec["options"]


def test_bad_backbone_weights_are_one_line_errors(tmp_path):
    resnet_file = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), resnet_file)
    with pytest.raises(SeglabError, match="not a torchvision vgg11_bn state dict.*missing"):
        build_model("fcn8s", 19, backbone_weights=resnet_file)
    with pytest.raises(SeglabError, match="not a torchvision resnet50 state dict.*missing"):
        build_model("deeplabv3plus", 19, backbone="resnet50", backbone_weights=resnet_file)
    four_channel = torchvision.models.resnet18().state_dict()
    four_channel["conv1.weight"] = torch.zeros(64, 4, 7, 7)  # e.g. a network adapted to RGB-D input
    torch.save(four_channel, tmp_path / "rgbd.pth")
    with pytest.raises(SeglabError, match=r"wrong shape \(first: conv1.weight \(64, 4, 7, 7\), expected \(64, 3, 7, 7\)"):
        build_model("deeplabv3plus", 19, backbone_weights=tmp_path / "rgbd.pth")
    with pytest.raises(SeglabError, match="not found"):
        build_model("deeplabv3plus", 19, backbone_weights=tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SeglabError, match="cannot read backbone_weights"):
        build_model("deeplabv3plus", 19, backbone_weights=junk)
    with pytest.raises(SeglabError, match="not both"):
        build_model("deeplabv3plus", 19, pretrained=True, backbone_weights=resnet_file)


def test_pretrained_without_internet_is_a_one_line_error():
    weights = torchvision.models.get_model_weights("resnet18").DEFAULT
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    if os.path.exists(cached):
        pytest.skip(f"ImageNet weights are cached at {cached}; nothing to download")
    try:
        build_model("deeplabv3plus", 19, pretrained=True)
    except SeglabError as exc:
        message = str(exc)
    else:
        pytest.skip("the download succeeded: this machine has internet access")
    assert "\n" not in message
    assert "cannot download" in message and "backbone_weights=PATH" in message and "pretrained=False" in message


# ---------------------------------------------------------------------------------------- family specifics
@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
@pytest.mark.parametrize("output_stride,rates", [(16, (6, 12, 18)), (8, (12, 24, 36))])
def test_deeplab_output_stride_and_aspp_rates(backbone, output_stride, rates):
    model = _model("deeplabv3plus", backbone=backbone, output_stride=output_stride).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        low, high = model.features(x)
        assert low.shape[-2:] == (64 // 4, 96 // 4)
        assert high.shape[-2:] == (64 // output_stride, 96 // output_stride)
        assert model(x[..., :50, :75]).shape == (1, NUM_CLASSES, 50, 75)
    atrous = [branch[0].dilation for branch in model.aspp.convs[1:4]]
    assert atrous == [(r, r) for r in rates]
    assert model.project[0].out_channels == 48


@pytest.mark.parametrize("output_stride", [16, 8])
def test_resnet18_dilation_follows_torchvisions_schedule(output_stride):
    """BasicBlock ResNets are dilated by hand; strides and dilations must match what torchvision's
    replace_stride_with_dilation gives a Bottleneck ResNet, block by block."""
    ours = dilated_resnet("resnet18", output_stride)
    reference = torchvision.models.resnet50(replace_stride_with_dilation=[False, output_stride == 8, True])
    for name in ("layer2", "layer3", "layer4"):
        for block, ref in zip(getattr(ours, name), getattr(reference, name)):  # ref's 3x3 conv is conv2
            assert block.conv1.dilation == block.conv2.dilation == ref.conv2.dilation
            assert block.conv1.padding == ref.conv2.padding and block.conv1.stride == ref.conv2.stride
            if ref.downsample is not None:
                assert block.downsample[0].stride == ref.downsample[0].stride


def test_deeplab_refuses_a_single_image_batch_in_training():
    model = _model("deeplabv3plus").train()
    with pytest.raises(SeglabError, match="at least 2 images"):
        model(torch.randn(1, 3, 64, 64))


def test_fcn_upsamplers_start_as_bilinear_and_skip_scores_at_zero():
    x = torch.randn(1, 3, 12, 10)
    for factor in (2, 8):
        with torch.no_grad():
            up = bilinear_upsampler(3, factor)(x)
        expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        assert up.shape == expected.shape
        m = factor  # transposed-conv zero padding only differs from interpolation at the border
        torch.testing.assert_close(up[..., m:-m, m:-m], expected[..., m:-m, m:-m])
    model = _model("fcn8s")
    for layer in (model.score_pool3, model.score_pool4):
        assert not layer.weight.any() and not layer.bias.any()


def test_r2unet_recurrent_layer_reuses_one_conv_t_plus_one_times():
    layer = RecurrentConv(4, t=2)
    calls = []
    layer.conv.register_forward_hook(lambda *_: calls.append(1))
    layer(torch.randn(1, 4, 8, 8))
    assert len(calls) == 3 and sum(p.numel() for p in layer.parameters()) == 4 * 4 * 9 + 2 * 4


def test_unet_base_width_64_gives_the_paper_widths():
    with torch.device("meta"):
        model = build_model("unet", 2, base_width=64)
    widths = [[m for m in stage.modules() if isinstance(m, torch.nn.Conv2d)][-1].out_channels
              for stage in model.encoder]
    assert widths == [64, 128, 256, 512, 1024]


# ---------------------------------------------------------------------------------------------------- slow
@pytest.mark.slow
@pytest.mark.parametrize("name", NATIVE_MODEL_NAMES)
def test_full_resolution_forward_on_cpu(name, record_property):
    model = build_model(name, 19).eval()
    x = torch.randn(1, 3, 1024, 2048)
    with torch.inference_mode():
        start = time.perf_counter()
        logits = model(x)
        seconds = time.perf_counter() - start
    assert logits.shape == (1, 19, 1024, 2048)
    record_property("seconds", round(seconds, 2))
    print(f"{name}: {seconds:.2f} s for one 1024x2048 image on CPU")
