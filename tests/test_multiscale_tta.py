"""Multi-scale (+ flip) test-time augmentation: the plain result at --tta-scales 1.0, the mmsegmentation aug-test average
otherwise, through evaluate, predict and the comparison app."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seglab.toolbox.cli import main
from seglab.errors import SeglabError
from seglab.infer import predict_logits
from seglab.models import build_model
from seglab.toolbox.widgets import CompareApp
from conftest import save_untrained


class Ramp(nn.Module):
    """A model whose logits depend on the position and size of its input (so scaling and flipping both matter)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        ramp = torch.linspace(0, 1, x.shape[-1]).expand(*x.shape[-2:])
        return self.conv(x) + ramp * x.shape[-2] / 10


def test_scales_one_is_exactly_the_plain_result_and_others_average_resized_logits():
    torch.manual_seed(0)
    model, x = Ramp().eval(), torch.randn(2, 3, 30, 44)
    with torch.inference_mode():
        for options in ({}, {"flip": True}, {"window": (16, 20)}):
            assert torch.equal(predict_logits(model, x, tta_scales=(1.0,), **options), predict_logits(model, x, **options))
        expected = 0
        for scale in (0.5, 1.0, 1.5):
            size = (round(30 * scale), round(44 * scale))
            scaled = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            logits = (model(scaled) + model(scaled.flip(-1)).flip(-1)) / 2
            expected = expected + F.interpolate(logits, size=(30, 44), mode="bilinear", align_corners=False)
        got = predict_logits(model, x, tta_scales=(0.5, 1.0, 1.5), flip=True)
        torch.testing.assert_close(got, expected / 3)
        assert not torch.allclose(got, predict_logits(model, x, flip=True))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tta") / "unet.pt"
    save_untrained(build_model("unet", 19, base_width=8, depth=3), "cityscapes", path)
    return path


def test_evaluate_scales_flag(minicity, checkpoint, tmp_path, capsys):
    common = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(minicity), "--workers", "0",
              "--precision", "fp32"]
    results = {}
    for name, extra in {"plain": [], "one": ["--tta-scales", "1.0"], "multi": ["--tta-scales", "0.5,1,1.5", "--flip"]}.items():
        assert main([*common, *extra, "--json", str(tmp_path / f"{name}.json")]) == 0
        results[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert results["one"] == results["plain"]
    assert results["multi"] != results["plain"]
    capsys.readouterr()
    for bad in ("0", "-1", "nan", "inf", "a,b", ""):
        assert main([*common, "--tta-scales", bad]) == 2
        err = capsys.readouterr().err
        assert "expected positive numbers like 0.75,1.0,1.25" in err and err.count("\n") == 1


def test_compare_app_takes_tta_options(minicity, checkpoint):
    plain = CompareApp([checkpoint], minicity)
    tta = CompareApp([checkpoint], minicity, tta_scales=(0.75, 1.25), flip=True)
    name = plain.names[0]
    assert tta.tta == {"tta_scales": (0.75, 1.25), "flip": True}
    assert (plain.predict(name, 0) != tta.predict(name, 0)).any()
    with pytest.raises(SeglabError, match="test-time scales must be positive"):
        CompareApp([checkpoint], minicity, tta_scales=())
