"""Bad input tried on purpose: one row per case (what is broken, how it is used, the expected message fragment).

Every case must give a one-line error naming the problem (exit status 2 and no traceback for the CLI) and leave the
files that existed before untouched.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from seglab import checkpoint as ckpt
from seglab.toolbox.cli import main
from seglab.config import TrainConfig
from seglab.data import CityscapesSegmentation, VOCSegmentation, read_image
from seglab.engine import Trainer, fit
from seglab.toolbox.interrupts import CleanStop
from seglab.errors import SeglabError
from seglab.masks import generate_masks
from seglab.models import build_model
from seglab.toolbox.nb import begin, declare, parameters
from conftest import save_untrained

TINY = ["--model-options", "base_width=8", "--model-options", "depth=3"]


def train_args(data, out, *extra) -> list[str]:
    return ["train", "--model", "unet", *TINY, "--data", str(data), "--out", str(out), "--epochs", "1",
            "--batch-size", "2", "--crop", "64,128", "--max-steps", "1", "--workers", "0", "--precision", "fp32",
            "--no-progress", *extra]


@dataclass
class World:
    """Fresh copies of the tiny datasets for one case, plus a saved checkpoint."""

    tmp: Path
    city: Path
    voc: Path
    checkpoint: Path

    def first(self, pattern: str, root: Path | None = None) -> Path:
        return sorted((root or self.city).glob(pattern))[0]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "unet.pt"
    model = build_model("unet", 19, base_width=8, depth=3)
    ckpt.Checkpoint(spec=model.seglab_spec, class_names=[str(i) for i in range(19)], config=TrainConfig().to_dict(),
                    model=model.state_dict(), epoch=1).save(path)
    return path


@pytest.fixture
def world(tmp_path, minicity, minivoc, saved_checkpoint) -> World:
    shutil.copytree(minicity, tmp_path / "city")
    shutil.copytree(minivoc, tmp_path / "voc")
    shutil.copy(saved_checkpoint, tmp_path / "unet.pt")
    return World(tmp_path, tmp_path / "city", tmp_path / "voc", tmp_path / "unet.pt")


# ------------------------------------------------------------------------------------------------ case builders
def nest_one_level(w: World) -> list[str]:
    inner = w.tmp / "outer" / "cityscapes"
    shutil.move(str(w.city), inner)
    return train_args(w.tmp / "outer", w.tmp / "run")


def empty_split(w: World) -> list[str]:
    for folder in ("leftImg8bit/val", "gtFine/val"):
        shutil.rmtree(w.city / folder)
        (w.city / folder).mkdir()
    return train_args(w.city, w.tmp / "run")


def drop_label(w: World) -> list[str]:
    w.first("gtFine/train/*/*_gtFine_labelIds.png").unlink()
    return train_args(w.city, w.tmp / "run")


def drop_image(w: World) -> list[str]:
    w.first("leftImg8bit/train/*/*.png").unlink()
    return train_args(w.city, w.tmp / "run")


def corrupt_png(w: World) -> Callable:
    path = w.first("leftImg8bit/val/*/*.png")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    return lambda: CityscapesSegmentation(w.city, "val")[0]


def truncated_jpeg(w: World) -> Callable:
    dataset = VOCSegmentation(w.voc, "val")
    path = dataset.image_path(0)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return lambda: dataset[0]


def size_mismatch(w: World) -> Callable:
    path = w.first("gtFine/val/*/*_gtFine_labelIds.png")
    cv2.imwrite(str(path), np.zeros((10, 20), np.uint8))
    return lambda: CityscapesSegmentation(w.city, "val")[0]


def values_out_of_range(w: World) -> Callable:
    dataset = VOCSegmentation(w.voc, "val")
    label = dataset.pairs[0][1]
    with Image.open(label) as img:
        array = np.asarray(img).copy()
        palette = img.getpalette()
    array[:5, :5] = 42
    out = Image.fromarray(array, mode="P")
    out.putpalette(palette)
    out.save(label)
    return lambda: dataset[0]


def sixteen_bit_label(w: World) -> Callable:
    path = w.first("gtFine/val/*/*_gtFine_labelIds.png")
    cv2.imwrite(str(path), cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.uint16) * 256)
    return lambda: CityscapesSegmentation(w.city, "val")[0]


def rgb_label(w: World) -> Callable:
    path = w.first("gtFine/val/*/*_gtFine_labelIds.png")
    color = path.with_name(path.name.replace("labelIds", "color"))
    shutil.copy(color, path)
    return lambda: CityscapesSegmentation(w.city, "val")[0]


def edit_json(w: World, change: Callable[[dict], None] | None = None, text: str | None = None) -> Callable:
    path = w.first("gtFine/train/*/*_gtFine_polygons.json")
    if text is not None:
        path.write_text(text)
    else:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return lambda: generate_masks(w.city, out=w.tmp / "gen", splits=("train",), workers=1)


def _set_label(data: dict, label: str) -> None:
    data["objects"][-1]["label"] = label


def _set_point(data: dict) -> None:
    data["objects"][-1]["polygon"][0] = ["ten", 5]


def truncated_checkpoint(w: World) -> list[str]:
    w.checkpoint.write_bytes(w.checkpoint.read_bytes()[: w.checkpoint.stat().st_size // 2])
    return ["evaluate", "--checkpoint", str(w.checkpoint), "--data", str(w.city), "--workers", "0"]


class RunsCode:
    """Unpickling this calls os.system: exactly what weights_only=True must refuse."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def code_checkpoint(w: World) -> list[str]:
    state = torch.load(w.checkpoint, weights_only=True)
    state["payload"] = RunsCode()
    torch.save(state, w.checkpoint)
    return ["evaluate", "--checkpoint", str(w.checkpoint), "--data", str(w.city), "--workers", "0"]


def newer_checkpoint(w: World) -> list[str]:
    state = torch.load(w.checkpoint, weights_only=True)
    state["format_version"] = ckpt.FORMAT_VERSION + 1
    torch.save(state, w.checkpoint)
    return ["predict", "--checkpoint", str(w.checkpoint), "--images", str(w.city), "--out", str(w.tmp / "p")]


def plain_state_dict(w: World) -> list[str]:
    torch.save(build_model("unet", 19, base_width=8, depth=3).state_dict(), w.checkpoint)
    return ["predict", "--checkpoint", str(w.checkpoint), "--images", str(w.city), "--out", str(w.tmp / "p")]


def only_image_unreadable(w: World) -> list[str]:
    folder = w.tmp / "photos"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG \xff\xd9")
    return ["predict", "--checkpoint", str(w.checkpoint), "--images", str(folder), "--out", str(w.tmp / "p")]


def text_checkpoint(w: World) -> list[str]:
    w.checkpoint.write_text("these are my notes, not a model\n")
    return ["evaluate", "--checkpoint", str(w.checkpoint), "--data", str(w.city), "--workers", "0"]


def voc_checkpoint(w: World) -> Path:
    path = w.tmp / "voc.pt"
    save_untrained(build_model("unet", 21, base_width=8, depth=3), "voc", path)
    return path


def notebook_parameters(injected: dict) -> Callable:
    def run():
        namespace: dict = {"In": [], "Out": {}}
        begin(namespace)
        namespace.update(data_root="data/minicity", epochs=3)
        declare(namespace)
        namespace.update(injected)
        parameters(namespace)
    return run


# (case id, builder returning CLI arguments or a callable, expected message fragment)
CASES: list[tuple[str, Callable[[World], list[str] | Callable], str]] = [
    ("data: missing root", lambda w: train_args(w.tmp / "nowhere", w.tmp / "run"), "synth minicity"),
    ("data: zip extracted one level too deep", nest_one_level, "one level too deep"),
    ("data: pointed at a sub-folder", lambda w: train_args(w.city / "leftImg8bit", w.tmp / "run"),
     "is inside the dataset"),
    ("data: empty split", empty_split, "has no samples"),
    ("data: image without label", drop_label, "have no label"),
    ("data: label without image", drop_image, "have no image"),
    ("data: corrupt PNG", corrupt_png, "cannot read image"),
    ("data: truncated JPEG", truncated_jpeg, "truncated JPEG"),
    ("data: image/label size mismatch", size_mismatch, "must match"),
    ("data: label values outside the class range", values_out_of_range, "outside 0..20"),
    ("data: 16-bit label", sixteen_bit_label, "8-bit index/palette PNG is expected"),
    ("data: RGB label", rgb_label, "colour (RGB) rendering"),
    ("data: VOC root missing", lambda w: lambda: VOCSegmentation(w.tmp / "novoc", "train"), "synth minivoc"),
    ("annotations: invalid JSON", lambda w: edit_json(w, text="{not json"), "_gtFine_polygons.json"),
    ("annotations: missing imgHeight", lambda w: edit_json(w, lambda d: d.pop("imgHeight")), "imgHeight"),
    ("annotations: non-numeric coordinates", lambda w: edit_json(w, _set_point), "_gtFine_polygons.json"),
    ("annotations: unknown label", lambda w: edit_json(w, lambda d: _set_label(d, "flying saucer")),
     "flying saucer"),
    ("checkpoint: truncated file", truncated_checkpoint, "truncated or corrupt"),
    ("checkpoint: needs code to unpickle", code_checkpoint, "refused for safety"),
    ("checkpoint: newer format version", newer_checkpoint, "upgrade seglab"),
    ("checkpoint: plain state dict", plain_state_dict, "not a seglab checkpoint"),
    ("checkpoint: different model", lambda w: lambda: ckpt.model_from_checkpoint(w.checkpoint, expect_model="fcn8s"),
     "pass --model unet"),
    ("checkpoint: different num_classes",
     lambda w: lambda: ckpt.model_from_checkpoint(w.checkpoint, expect_num_classes=21), "21 are needed"),
    ("checkpoint: a text file", text_checkpoint, "is not a checkpoint"),
    ("checkpoint: a run folder", lambda w: ["evaluate", "--checkpoint", str(w.tmp), "--data", str(w.city)],
     "is a folder; pass the checkpoint file inside it (best.pt or last.pt of a run)"),
    ("checkpoint: VOC checkpoint on Cityscapes data",
     lambda w: ["evaluate", "--checkpoint", str(voc_checkpoint(w)), "--data", str(w.city), "--workers", "0"],
     "this checkpoint was trained on Pascal VOC (21 classes) but"),
    ("checkpoint: --dataset other than the checkpoint's",
     lambda w: ["evaluate", "--checkpoint", str(voc_checkpoint(w)), "--dataset", "cityscapes", "--data", str(w.city)],
     "this checkpoint was trained on Pascal VOC (21 classes), not Cityscapes"),
    ("cli: evaluate a downloadable model on missing data (before any download)",
     lambda w: ["evaluate", "--model", "tv_lraspp_mobilenet_v3_large", "--model-options", "weights=DEFAULT",
                "--data", str(w.tmp / "novoc")], "Pascal VOC root not found"),
    ("cli: predict with a downloadable model on a missing folder (before any download)",
     lambda w: ["predict", "--model", "tv_lraspp_mobilenet_v3_large", "--model-options", "weights=DEFAULT",
                "--images", str(w.tmp / "none"), "--out", str(w.tmp / "p")], "does not exist"),
    ("cli: predict on a folder whose only image is unreadable", only_image_unreadable,
     "none of the 1 image(s)"),
    ("cli: predict on a text file", lambda w: ["predict", "--checkpoint", str(w.checkpoint), "--images",
                                              str(w.checkpoint), "--out", str(w.tmp / "p")], "unet.pt is not an image file"),
    ("data: --dataset voc on Cityscapes data", lambda w: train_args(w.city, w.tmp / "run", "--dataset", "voc"),
     "holds Cityscapes data, not Pascal VOC; pass --dataset cityscapes"),
    ("checkpoint: missing file", lambda w: ["evaluate", "--checkpoint", str(w.tmp / "none.pt"), "--data",
                                            str(w.city)], "not found"),
    ("cli: unknown model", lambda w: ["train", "--model", "segformer", "--data", str(w.city), "--out",
                                      str(w.tmp / "run")], "unknown model"),
    ("cli: zero epochs", lambda w: train_args(w.city, w.tmp / "run", "--epochs", "0"), "positive integer"),
    ("cli: negative batch size", lambda w: train_args(w.city, w.tmp / "run", "--batch-size", "-2"),
     "positive integer"),
    ("cli: crop larger than the image", lambda w: train_args(w.city, w.tmp / "run", "--crop", "512,1024"),
     "larger than the training images"),
    ("cli: batch larger than the data", lambda w: train_args(w.city, w.tmp / "run", "--batch-size", "64"),
     "lower --batch-size"),
    ("cli: predict into a missing image folder", lambda w: ["predict", "--checkpoint", str(w.checkpoint),
                                                            "--images", str(w.tmp / "none"), "--out",
                                                            str(w.tmp / "p")], "does not exist"),
    ("cli: resume without a run", lambda w: train_args(w.city, w.tmp / "run", "--resume"), "does not exist"),
    ("cli: synth into a non-empty folder", lambda w: ["synth", "minicity", "--out", str(w.city)], "--overwrite"),
    ("notebook: unknown parameter", lambda w: notebook_parameters({"epochz": 5}), "unknown notebook parameter"),
    ("notebook: wrong parameter type", lambda w: notebook_parameters({"epochs": "many"}), "must be int"),
]


@pytest.mark.parametrize("name, build, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(name, build, fragment, world, capsys):
    action = build(world)
    before = snapshot(world.tmp)
    if isinstance(action, list):
        assert main(action) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
        assert fragment in err, err
    else:
        with pytest.raises(SeglabError) as caught:
            action()
        message = str(caught.value)
        assert "\n" not in message and fragment in message, message
    after = snapshot(world.tmp)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed was changed
    assert not [k for k in after if k.endswith(".tmp")]  # nothing half-written left behind


def test_dataloader_worker_errors_reach_the_cli_as_one_line(world, capsys):
    corrupt_png(world)
    assert main(train_args(world.city, world.tmp / "run", "--workers", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot read image" in err


def test_predict_skips_what_it_cannot_read_and_handles_odd_images(world, capsys):
    folder = world.tmp / "mine"
    folder.mkdir()
    rgb = read_image(world.first("leftImg8bit/val/*/*.png"))
    cv2.imwrite(str(folder / "gray.png"), rgb[:, :, 0])
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]))
    cv2.imwrite(str(folder / "deep.png"), rgb.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "tiny.jpg"), rgb[:5, :7])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder / "readme.txt").write_text("notes")
    assert main(["predict", "--checkpoint", str(world.checkpoint), "--images", str(folder), "--out",
                 str(world.tmp / "pred"), "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "wrote 4 prediction(s)" in out and "skipped" in out and "broken.png" in out and "readme.txt" in out
    for stem, shape in [("gray", rgb.shape[:2]), ("rgba", rgb.shape[:2]), ("deep", rgb.shape[:2]), ("tiny", (5, 7))]:
        label = cv2.imread(str(world.tmp / "pred" / f"{stem}_label.png"), cv2.IMREAD_UNCHANGED)
        assert label.shape == shape and label.max() < 19


def test_large_images_use_bounded_tiles(world):
    from seglab import infer

    seen = []
    model = build_model("unet", 19, base_width=8, depth=3).eval()
    recording = torch.nn.Sequential()
    recording.forward = lambda x: (seen.append(tuple(x.shape[-2:])), model(x))[1]
    image = torch.randn(1, 3, 300, 700)
    with torch.inference_mode():
        tiled = infer.predict_logits(recording, image, window=(128, 256))
    assert tiled.shape == (1, 19, 300, 700)
    assert max(h for h, _ in seen) <= 128 and max(w for _, w in seen) <= 256 and len(seen) > 4


def test_full_disk_while_checkpointing_keeps_previous_checkpoint(world, monkeypatch):
    config = TrainConfig(model="unet", model_options={"base_width": 8, "depth": 3}, data=str(world.city),
                         out=str(world.tmp / "run"), epochs=1, batch_size=2, crop=(64, 128), max_steps=1, workers=0,
                         precision="fp32", progress=False)
    fit(config)
    before = snapshot(world.tmp / "run")

    def disk_full(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", disk_full)
    config.epochs = 2
    with pytest.raises(SeglabError, match="No space left on device.*previous file is kept"):
        fit(config, resume=True)
    after = snapshot(world.tmp / "run")  # config.json is rewritten on resume (it records the new epochs)
    assert {k: after[k] for k in ("last.pt", "best.pt", "history.csv")} == \
        {k: before[k] for k in ("last.pt", "best.pt", "history.csv")}
    files = [{k for k in files if not k.startswith("events.out.tfevents.")} for files in (before, after)]
    assert files[0] == files[1]  # no temp file left (the resumed run's TensorBoard events aside)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_signal_that_python_drops_still_stops_training_after_the_epoch():
    """A signal handled where Python drops exceptions (a fork hook as a DataLoader starts its workers, a __del__)
    must still stop the run once the epoch's files are written, instead of training on."""
    class SignalledWhileDeleted:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(10_000))  # the handler runs here and its KeyboardInterrupt is dropped ("Exception ignored")

    with CleanStop() as signals:
        SignalledWhileDeleted()
        with pytest.raises(KeyboardInterrupt), signals.hold():
            pass


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_training_leaves_complete_epochs_and_resumes(world, sig, monkeypatch):
    """A signal while a run with a DataLoader worker trains leaves last.pt and history.csv at the same epoch; the
    resumed run trains only the one epoch asked for and keeps the earlier history rows byte for byte."""
    run = world.tmp / "run"
    args = train_args(world.city, run)
    args[args.index("--epochs") + 1] = "200"
    args[args.index("--workers") + 1] = "1"
    process = subprocess.Popen([sys.executable, "-m", "seglab", *args], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "history.csv").is_file():
        time.sleep(0.2)
    assert (run / "history.csv").is_file(), "training did not finish an epoch in time"
    time.sleep(0.5)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0 and "--resume" in err
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))
    done = ckpt.Checkpoint.load(run / "last.pt").epoch
    before = (run / "history.csv").read_bytes()
    assert len(before.splitlines()) - 1 == done >= 1
    ran: list[int] = []
    original = Trainer.train_one_epoch
    monkeypatch.setattr(Trainer, "train_one_epoch", lambda self, epoch: ran.append(epoch) or original(self, epoch))
    args[args.index("--epochs") + 1] = str(done + 1)
    assert main([*args, "--resume"]) == 0
    assert ran == [done + 1]  # only the remaining epoch ran
    after = (run / "history.csv").read_bytes()
    assert after.splitlines()[:done + 1] == before.splitlines() and len(after.splitlines()) == done + 2
    assert ckpt.Checkpoint.load(run / "last.pt").epoch == done + 1
