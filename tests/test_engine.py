"""Trainer, checkpoints, resume, evaluation/export/predict through the CLI, and NaN handling, on tiny MiniCity."""
from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from seglab.checkpoint import Checkpoint, model_from_checkpoint
from seglab.cli import main
from seglab.config import TrainConfig
from seglab.engine import HISTORY_COLUMNS, Trainer, fit
from seglab.errors import SeglabError

TINY_UNET = {"base_width": 8, "depth": 3}


def tiny_config(data, out, **overrides) -> TrainConfig:
    values = dict(model="unet", model_options=TINY_UNET, data=str(data), out=str(out), epochs=2, batch_size=2,
                  crop=(64, 128), max_steps=2, workers=0, precision="fp32", progress=False, seed=3)
    values.update(overrides)
    return TrainConfig(**values)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fit_writes_run_directory(minicity, tmp_path):
    history = fit(tiny_config(minicity, tmp_path / "run"))
    run = tmp_path / "run"
    names = {p.name for p in run.iterdir()}
    events = {name for name in names if name.startswith("events.out.tfevents.")}  # TensorBoard (tests/test_tensorboard.py)
    assert names - events == {"history.csv", "last.pt", "best.pt", "config.json"} and len(events) == 1
    table = pd.read_csv(run / "history.csv")
    assert list(table.columns) == HISTORY_COLUMNS and list(table["epoch"]) == [1, 2]
    assert table["train_loss"].notna().all() and table["miou"].between(0, 1).all()
    record = Checkpoint.load(run / "last.pt")
    assert record.spec["name"] == "unet" and record.spec["num_classes"] == 19 and record.epoch == 2
    assert record.class_names[0] == "road" and record.run_config.seed == 3
    assert json.loads((run / "config.json").read_text())["model_options"] == TINY_UNET
    assert len(history) == 2


def test_resume_after_epoch_one_equals_uninterrupted_run(minicity, tmp_path, monkeypatch):
    fit(tiny_config(minicity, tmp_path / "full", epochs=3))
    original = Trainer.train_one_epoch

    def killed_in_epoch_two(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt  # what Ctrl-C / SIGTERM does in the middle of epoch 2
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_one_epoch", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(minicity, tmp_path / "split", epochs=3))
    monkeypatch.setattr(Trainer, "train_one_epoch", original)
    assert Checkpoint.load(tmp_path / "split/last.pt").epoch == 1
    fit(tiny_config(minicity, tmp_path / "split", epochs=3), resume=True)
    full, split = Checkpoint.load(tmp_path / "full/last.pt"), Checkpoint.load(tmp_path / "split/last.pt")
    for name, tensor in full.model.items():
        assert torch.equal(tensor, split.model[name]), name
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full/history.csv")[columns],
                                  pd.read_csv(tmp_path / "split/history.csv")[columns])


def test_refuses_to_overwrite_a_run_without_resume(minicity, tmp_path):
    fit(tiny_config(minicity, tmp_path / "run", epochs=1))
    before = _digest(tmp_path / "run/last.pt")
    with pytest.raises(SeglabError, match="--resume"):
        fit(tiny_config(minicity, tmp_path / "run", epochs=1))
    assert _digest(tmp_path / "run/last.pt") == before


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(minicity, tmp_path):
    fit(tiny_config(minicity, tmp_path / "run", epochs=1))
    good = _digest(tmp_path / "run/last.pt")
    trainer = Trainer(tiny_config(minicity, tmp_path / "run", epochs=2), resume=True)
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(SeglabError, match="loss became nan .* last good checkpoint"):
        trainer.run()
    assert _digest(tmp_path / "run/last.pt") == good


def test_bf16_channels_last_training_runs(minicity, tmp_path):
    history = fit(tiny_config(minicity, tmp_path / "run", epochs=1, precision="bf16", dice_weight=0.5,
                              class_weights="median_frequency", optimizer="sgd", schedule="cosine", lr=0.01))
    assert np.isfinite(history["train_loss"]).all()


def test_cudnn_kernel_tuning_only_on_cuda(monkeypatch):
    from seglab.runtime import tune_kernels_for_fixed_shapes

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    tune_kernels_for_fixed_shapes(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    tune_kernels_for_fixed_shapes(torch.device("cuda"))  # only sets a flag: no GPU needed
    assert torch.backends.cudnn.benchmark is True


def test_cli_train_evaluate_export_predict(minicity, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "unet", "--model-options", "base_width=8", "--model-options", "depth=3", "--data",
                 str(minicity), "--out", str(run), "--epochs", "1", "--batch-size", "2", "--crop", "64,128",
                 "--max-steps", "2", "--workers", "0", "--precision", "fp32", "--no-progress"]) == 0
    export, metrics_json = tmp_path / "export", tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(minicity), "--export",
                 str(export), "--json", str(metrics_json), "--precision", "fp32", "--workers", "0"]) == 0
    summary = json.loads(metrics_json.read_text())
    assert {"pixel_accuracy", "mean_accuracy", "miou", "mdice", "fwiou", "sensitivity", "specificity",
            "per_class_iou", "per_class_dice", "category_iou"} <= set(summary)
    assert len(summary["per_class_iou"]) == 19 and "vehicle" in summary["category_iou"]
    images = sorted((minicity / "leftImg8bit/val").glob("*/*_leftImg8bit.png"))
    exported = sorted(export.glob("*/*_leftImg8bit.png"))
    assert [p.relative_to(export) for p in exported] == [p.relative_to(minicity / "leftImg8bit/val") for p in images]
    with zipfile.ZipFile(f"{export}.zip") as archive:
        assert len([n for n in archive.namelist() if n.endswith(".png")]) == len(images)
    # a window and flip TTA give a valid evaluation too
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(minicity), "--window", "64,96",
                 "--flip", "--precision", "fp32", "--workers", "0"]) == 0
    assert "mIoU" in capsys.readouterr().out
    # predict on a folder with an image, a grayscale image and a non-image file
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.png").write_bytes(images[0].read_bytes())
    import cv2

    cv2.imwrite(str(folder / "gray.png"), np.full((50, 70), 128, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--images", str(folder), "--out",
                 str(tmp_path / "pred"), "--precision", "fp32"]) == 0
    label = cv2.imread(str(tmp_path / "pred/gray_label.png"), cv2.IMREAD_UNCHANGED)
    assert label.shape == (50, 70) and label.max() < 19
    assert (tmp_path / "pred/a_overlay.png").is_file()
    assert "skipped" in capsys.readouterr().out


def test_model_from_checkpoint_checks_expectations(minicity, tmp_path):
    fit(tiny_config(minicity, tmp_path / "run", epochs=1))
    model, state = model_from_checkpoint(tmp_path / "run/last.pt", expect_model="unet", expect_num_classes=19)
    assert sum(p.numel() for p in model.parameters()) > 0
    with pytest.raises(SeglabError, match="holds a 'unet' model"):
        model_from_checkpoint(tmp_path / "run/last.pt", expect_model="fcn8s")
    with pytest.raises(SeglabError, match="21 are needed"):
        model_from_checkpoint(tmp_path / "run/last.pt", expect_num_classes=21)
