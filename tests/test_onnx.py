"""ONNX export: every registry architecture runs in onnxruntime with PyTorch fp32's argmax; the CLI's bad input."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from seglab.checkpoint import model_from_checkpoint
from seglab.toolbox.cli import main
from seglab.models import NATIVE_MODEL_NAMES, build_model
from seglab.errors import SeglabError
from seglab.toolbox.onnx_export import check_onnx, export_onnx, onnx_latency_ms, onnx_logits, onnx_session
from conftest import save_untrained

SMALL = {"unet": {"base_width": 8, "depth": 3}, "r2unet": {"base_width": 8, "t": 1},
         "ddunet": {"base_width": 8, "dilations": (1, 2)}, "fcn8s": {"fc_channels": 64}}


@pytest.mark.parametrize("name", [*NATIVE_MODEL_NAMES, "tv_lraspp_mobilenet_v3_large"])
def test_onnxruntime_gives_the_pytorch_argmax(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(name, 5, **SMALL.get(name, {})).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", 48, 80)  # not a multiple of the models' strides
    images = torch.randn(1, 3, 48, 80)
    with torch.inference_mode():
        expected = model(images)
    logits = onnx_logits(onnx_session(path), images)
    assert logits.shape == expected.shape
    assert torch.equal(logits.argmax(1), expected.argmax(1))
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_export_command_and_its_bad_input(tmp_path, capsys):
    checkpoint = tmp_path / "unet.pt"
    save_untrained(build_model("unet", 19, **SMALL["unet"]), "cityscapes", checkpoint)
    out = tmp_path / "unet.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out),
                 "--height", "32", "--width", "64"]) == 0
    out_text = capsys.readouterr().out
    assert "same class on 100.0000%" in out_text and "classes predicted" in out_text
    assert onnx_session(out).get_inputs()[0].shape == [1, 3, 32, 64]
    assert onnx_latency_ms(out, warmup=1, runs=2) > 0
    model, _ = model_from_checkpoint(checkpoint)
    assert check_onnx(model, out).agreement == 1.0
    before = out.read_bytes()
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(checkpoint.read_bytes()[:1000])
    folder = tmp_path / "a_folder"
    folder.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = [(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(out)], "not found"),
           (["--checkpoint", str(corrupt), "--out", str(out)], "truncated or corrupt"),
           (["--checkpoint", str(checkpoint), "--out", str(folder)], "is a folder; give a file name"),
           (["--checkpoint", str(checkpoint), "--out", str(blocker / "x.onnx")], "file is a file; give a folder path"),
           (["--checkpoint", str(checkpoint), "--out", str(out), "--format", "tflite"], "invalid choice"),
           (["--checkpoint", str(checkpoint), "--out", str(out), "--height", "0"], "positive integer"),
           (["--model", "segformer", "--out", str(out)], "unknown model 'segformer'")]
    for arguments, message in bad:
        assert main(["export", *arguments]) == 2, arguments
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert out.read_bytes() == before  # nothing already written was touched


def _several_classes(model: nn.Module) -> nn.Module:
    """``model`` with a final layer that spreads its predictions over several classes (an untrained U-Net predicts
    one class everywhere, where 'the same class on 100 % of the pixels' says nothing)."""
    torch.manual_seed(1)
    last = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    nn.init.normal_(last.weight, std=2.0)
    return model.eval()


def test_the_onnx_check_compares_logits_and_fails_for_another_model(tmp_path):
    torch.manual_seed(0)
    model = _several_classes(build_model("unet", 5, **SMALL["unet"]))
    path = export_onnx(model, tmp_path / "unet.onnx", 32, 48)
    check = check_onnx(model, path)
    assert check.classes >= 3 and check.agreement == 1.0 and check.max_difference < 1e-4
    other = copy.deepcopy(model)
    with torch.no_grad():  # one class's bias 0.05 higher: the same architecture, almost the same predictions
        [m for m in other.modules() if isinstance(m, nn.Conv2d)][-1].bias[0] += 0.05
    with pytest.raises(SeglabError, match="does not compute what the PyTorch model does"):
        check_onnx(other, path)
    with pytest.raises(SeglabError, match="another model"):
        check_onnx(build_model("unet", 3, **SMALL["unet"]), path)
