"""torchvision's segmentation models in the registry: shapes, weights from torchvision's own state dicts (offline),
the one-line errors, and evaluate / predict / train working on them unchanged."""
from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from conftest import save_untrained
from seglab.checkpoint import model_from_checkpoint
from seglab.toolbox.cli import main
from seglab.errors import SeglabError
from seglab.models import MODEL_NAMES, build_model, model_options
from seglab.models.torchvision_seg import TORCHVISION_MODELS


@pytest.mark.parametrize("name", ["tv_fcn_resnet50", "tv_deeplabv3_mobilenet_v3_large", "tv_lraspp_mobilenet_v3_large"])
def test_logits_have_input_size_and_the_spec_leaves_weights_out(name):
    torch.manual_seed(0)
    model = build_model(name, 5).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 45, 71)).shape == (2, 5, 45, 71)
    assert model_options(name) == {"weights": None}
    assert model.seglab_spec == {"name": name, "num_classes": 5, "options": {}}


def _torchvision_file(arch, tmp_path, aux_loss=False):
    torch.manual_seed(1)
    reference = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=21,
                                             aux_loss=aux_loss).eval()
    path = tmp_path / f"{arch}.pth"
    torch.save(reference.state_dict(), path)
    return reference, path


@pytest.mark.parametrize("arch,aux_loss", [("lraspp_mobilenet_v3_large", False), ("fcn_resnet50", True)])
def test_a_saved_torchvision_state_dict_reproduces_torchvision_exactly(arch, aux_loss, tmp_path):
    reference, path = _torchvision_file(arch, tmp_path, aux_loss)  # the auxiliary head's keys are accepted
    model = build_model(f"tv_{arch}", 21, weights=str(path)).eval()
    x = torch.randn(1, 3, 67, 93)
    with torch.inference_mode():
        assert torch.equal(model(x), reference(x)["out"])


def test_other_class_counts_load_everything_but_the_class_layers(tmp_path):
    reference, path = _torchvision_file("lraspp_mobilenet_v3_large", tmp_path)
    model = build_model("tv_lraspp_mobilenet_v3_large", 19, weights=str(path))
    own, theirs = model.net.state_dict(), reference.state_dict()
    fresh = {k for k in own if own[k].shape != theirs[k].shape}
    assert fresh == {f"classifier.{layer}.{p}" for layer in ("low_classifier", "high_classifier")
                     for p in ("weight", "bias")}
    assert all(torch.equal(own[k], theirs[k]) for k in own if k not in fresh)


def test_weights_errors_are_one_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(SeglabError, match=r"cannot download torchvision's lraspp_mobilenet_v3_large weights .*"
                                          r"offline, pass weights=PATH") as caught:
        build_model("tv_lraspp_mobilenet_v3_large", 21, weights="DEFAULT")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    with pytest.raises(SeglabError, match="weights file not found"):
        build_model("tv_lraspp_mobilenet_v3_large", 21, weights=str(tmp_path / "missing.pth"))
    _, fcn_file = _torchvision_file("fcn_resnet50", tmp_path)
    with pytest.raises(SeglabError, match="not a torchvision lraspp_mobilenet_v3_large state dict"):
        build_model("tv_lraspp_mobilenet_v3_large", 21, weights=str(fcn_file))


def test_evaluate_predict_and_fine_tune_work_unchanged(minivoc, tmp_path, capsys):
    reference, path = _torchvision_file("lraspp_mobilenet_v3_large", tmp_path)
    model_args = ["--model", "tv_lraspp_mobilenet_v3_large", "--model-options", f"weights={path}", "--dataset", "voc"]
    json_path = tmp_path / "metrics.json"
    assert main(["evaluate", *model_args, "--data", str(minivoc), "--json", str(json_path), "--workers", "0",
                 "--device", "cpu"]) == 0
    assert "miou" in json_path.read_text()
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(next((minivoc / "VOCdevkit").rglob("*.jpg")).read_bytes())
    assert main(["predict", *model_args, "--images", str(images), "--out", str(tmp_path / "pred")]) == 0
    assert (tmp_path / "pred" / "a_label.png").is_file()
    # a registry model saved as a checkpoint rebuilds without the weights file
    save_untrained(build_model("tv_lraspp_mobilenet_v3_large", 21, weights=str(path)), "voc", tmp_path / "tv.pt")
    path.unlink()
    rebuilt, _ = model_from_checkpoint(tmp_path / "tv.pt")
    x = torch.randn(1, 3, 40, 56)
    with torch.inference_mode():
        assert torch.equal(rebuilt.eval()(x), reference(x)["out"])
    out = tmp_path / "run"
    assert main(["train", "--model", "tv_lraspp_mobilenet_v3_large", "--dataset", "voc", "--data", str(minivoc),
                 "--out", str(out), "--epochs", "1", "--max-steps", "1", "--batch-size", "2", "--crop", "64,64",
                 "--workers", "0", "--no-progress", "--no-tensorboard", "--precision", "fp32"]) == 0
    assert (out / "best.pt").is_file()
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--model-options", "weights=DEFAULT",
                 "--data", str(minivoc)]) == 2
    assert "--model-options goes with --model" in capsys.readouterr().err


def test_every_torchvision_model_is_registered():
    assert set(TORCHVISION_MODELS) <= set(MODEL_NAMES)
    for name, arch in TORCHVISION_MODELS.items():
        assert torchvision.models.get_model_builder(arch)  # each name is a torchvision builder
        with torch.device("meta"):
            assert build_model(name, 21).net.__class__.__name__ in ("FCN", "DeepLabV3", "LRASPP")
