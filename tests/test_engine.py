"""Trainer, checkpoints, resume, evaluation/export/predict through the CLI, and NaN handling, on tiny MiniCity."""
from __future__ import annotations

import hashlib
import json
import math
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from seglab.checkpoint import Checkpoint, model_from_checkpoint
from seglab.toolbox.cli import main
from seglab.config import TrainConfig
from seglab.engine import HISTORY_COLUMNS, Trainer, fit, lr_lambda
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


@pytest.mark.parametrize("precision, workers", [("fp32", 0), ("fp16", 1)], ids=["fp32-inline", "fp16-scaler-worker"])
def test_resume_mid_epoch_two_runs_only_the_remaining_epochs(minicity, tmp_path, monkeypatch, precision, workers):
    """Killed in the middle of epoch 2 (after one of its two steps), the run resumes from last.pt (epoch 1): it runs
    epochs 2 and 3 only (4 steps), keeps history row 1 byte for byte (its ``seconds`` included), restores the
    fp16 GradScaler's state, and ends with the weights, optimiser, scaler and history of an uninterrupted run."""
    config = dict(epochs=3, precision=precision, workers=workers)
    original_step = Trainer.train_step
    ran: list[tuple[int, int]] = []  # (epoch, step) of every train_step call
    kill = False

    def counted_step(self, images, targets):
        done, step = divmod(self.scheduler.last_epoch, self.steps_per_epoch)  # optimiser steps so far
        if (done + 1, step) == (2, 1) and kill:
            raise KeyboardInterrupt  # what Ctrl-C / SIGTERM does in the middle of epoch 2
        ran.append((done + 1, step))
        return original_step(self, images, targets)

    monkeypatch.setattr(Trainer, "train_step", counted_step)
    fit(tiny_config(minicity, tmp_path / "full", **config))
    assert ran == [(e, s) for e in (1, 2, 3) for s in (0, 1)]
    kill, ran[:] = True, []
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(minicity, tmp_path / "split", **config))
    assert ran == [(1, 0), (1, 1), (2, 0)]
    interrupted = Checkpoint.load(tmp_path / "split/last.pt")
    before = (tmp_path / "split/history.csv").read_bytes()
    assert interrupted.epoch == 1 and len(before.splitlines()) == 2  # header + epoch 1
    if precision == "fp16":  # the scaler is enabled (CPU autocast + GradScaler) and its state is not the initial one
        fresh = torch.amp.GradScaler("cpu").state_dict()
        assert interrupted.scaler and interrupted.scaler != fresh, interrupted.scaler
        resumed = Trainer(tiny_config(minicity, tmp_path / "split", **config), resume=True)
        assert resumed.scaler.is_enabled() and resumed.scaler.state_dict() == interrupted.scaler
        assert resumed.start_epoch == 2
    else:
        assert interrupted.scaler == {}  # a disabled scaler has no state

    kill, ran[:] = False, []
    fit(tiny_config(minicity, tmp_path / "split", **config), resume=True)
    assert ran == [(e, s) for e in (2, 3) for s in (0, 1)]  # only the remaining epochs ran
    after = (tmp_path / "split/history.csv").read_bytes()
    assert after.splitlines()[:2] == before.splitlines() and len(after.splitlines()) == 4
    full, split = Checkpoint.load(tmp_path / "full/last.pt"), Checkpoint.load(tmp_path / "split/last.pt")
    assert split.history["seconds"][0] == interrupted.history["seconds"][0]
    for name, tensor in full.model.items():
        assert torch.equal(tensor, split.model[name]), name
    assert full.scaler == split.scaler and full.scheduler == split.scheduler
    for a, b in zip(full.optimizer["state"].values(), split.optimizer["state"].values()):
        assert all(torch.equal(a[key], b[key]) for key in a)
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full/history.csv")[columns],
                                  pd.read_csv(tmp_path / "split/history.csv")[columns])


def test_refuses_to_overwrite_a_run_without_resume(minicity, tmp_path, capsys):
    fit(tiny_config(minicity, tmp_path / "run", epochs=1))
    before = _digest(tmp_path / "run/last.pt")
    with pytest.raises(SeglabError, match="--resume"):
        fit(tiny_config(minicity, tmp_path / "run", epochs=1))
    capsys.readouterr()
    assert len(fit(tiny_config(minicity, tmp_path / "run", epochs=1), resume=True)) == 1  # a finished run
    assert capsys.readouterr().out == (f"nothing to train: {tmp_path / 'run'} already holds all 1 epochs; pass a "
                                       "larger --epochs with --resume to train on\n")
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
    from seglab.toolbox.runtime import tune_kernels_for_fixed_shapes

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
    trained = len(list((minicity / "leftImg8bit/train").glob("*/*.png")))
    assert capsys.readouterr().out.splitlines()[0] == (
        f"training unet on cpu in fp32, channels_last: {trained} training and 3 validation images, 2 steps per epoch of batch 2, "
        f"1 epoch(s); run folder {run}")
    best, last = Checkpoint.load(run / "best.pt"), Checkpoint.load(run / "last.pt")
    assert best.optimizer is None and best.scheduler is None and best.scaler is None  # inference needs none of it
    assert last.optimizer["state"] and last.scheduler and last.scaler is not None  # resume needs all of it
    assert all(torch.equal(best.model[k], last.model[k]) for k in last.model)
    export, metrics_json = tmp_path / "export", tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(minicity), "--export",
                 str(export), "--json", str(metrics_json), "--precision", "fp32", "--workers", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [f"metrics JSON: {metrics_json}",
                                                         f"benchmark export: {export}.zip"]
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
    # one image file instead of a folder
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--images", str(folder / "gray.png"), "--out",
                 str(tmp_path / "one"), "--precision", "fp32"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote 1 prediction(s) to {tmp_path / 'one'}")
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["gray_label.png", "gray_overlay.png"]


def test_model_from_checkpoint_checks_expectations(minicity, tmp_path):
    fit(tiny_config(minicity, tmp_path / "run", epochs=1))
    model, state = model_from_checkpoint(tmp_path / "run/last.pt", expect_model="unet", expect_num_classes=19)
    assert sum(p.numel() for p in model.parameters()) > 0
    with pytest.raises(SeglabError, match="holds a 'unet' model"):
        model_from_checkpoint(tmp_path / "run/last.pt", expect_model="fcn8s")
    with pytest.raises(SeglabError, match="21 are needed"):
        model_from_checkpoint(tmp_path / "run/last.pt", expect_num_classes=21)


# ---------------------------------------------------------------------------------- schedule, clipping, scaler
@pytest.mark.parametrize("schedule", ["poly", "cosine"])
def test_lr_lambda_follows_the_warmup_and_decay_formulas(schedule):
    """Linear warm-up (step+1)/W reaching 1 at its last step; then t = (step-W)/(T-W) and (1-t)^0.9 or
    (1+cos(pi t))/2, down to 0 at the end (and after it)."""
    total, warmup = 110, 10
    decay = (lambda t: (1 - t) ** 0.9) if schedule == "poly" else (lambda t: 0.5 * (1 + math.cos(math.pi * t)))
    factor = lr_lambda(total, warmup, schedule)
    assert factor(0) == pytest.approx(1 / warmup)  # warm-up start
    assert factor(4) == pytest.approx(5 / warmup)
    assert factor(warmup - 1) == pytest.approx(1.0)  # last warm-up step: the peak
    assert factor(warmup) == pytest.approx(1.0)  # end of the warm-up, t = 0
    assert factor(warmup + 50) == pytest.approx({"poly": 0.5 ** 0.9, "cosine": 0.5}[schedule])  # midpoint
    assert factor(warmup + 25) == pytest.approx(decay(0.25))
    assert factor(total) == pytest.approx(0.0, abs=1e-12) and factor(total + 5) == pytest.approx(0.0, abs=1e-12)
    no_warmup = lr_lambda(100, 0, schedule)
    assert no_warmup(0) == pytest.approx(1.0) and no_warmup(50) == pytest.approx(decay(0.5))
    # the LR the optimiser actually gets, step by step, through LambdaLR
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.2 * (s + 1) / warmup if s < warmup else 0.2 * decay((s - warmup) / (total - warmup))
                for s in range(total)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12, atol=1e-15)


def _one_step_trainer(minicity, tmp_path, **overrides) -> tuple[Trainer, torch.Tensor, torch.Tensor]:
    """A Trainer (same seed, so the same initial weights) and a fixed random batch."""
    config = tiny_config(minicity, tmp_path / "run", **overrides)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 32, 64, generator=generator)
    targets = torch.randint(0, 19, (2, 32, 64), generator=generator)
    return Trainer(config, overwrite=True), images, targets


def _grad_norm(model) -> float:
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()
                                                       if p.grad is not None])))


def test_gradient_clipping_clips_the_global_norm(minicity, tmp_path):
    """After train_step with grad_clip, the gradients (left in .grad, unscaled) have global norm == clip when the
    unclipped norm is larger; with clipping off they keep their norm."""
    free, images, targets = _one_step_trainer(minicity, tmp_path, grad_clip=0.0)
    free.train_model.train()
    free.train_step(images, targets)
    unclipped = _grad_norm(free.model)
    clip = unclipped / 10
    for precision in ("fp32", "fp16"):  # fp16: the GradScaler must unscale before clipping
        clipped, _, _ = _one_step_trainer(minicity, tmp_path, grad_clip=clip, precision=precision)
        assert clipped.scaler.is_enabled() == (precision == "fp16")
        clipped.train_model.train()
        clipped.train_step(images, targets)
        assert _grad_norm(clipped.model) == pytest.approx(clip, rel=1e-3), precision


def test_fp16_grad_scaler_scales_the_loss_and_unscales_the_gradients(minicity, tmp_path):
    """precision fp16 on CPU: the enabled GradScaler counts a good step, and the gradients the optimiser used are
    the true ones (about the fp32 gradients), not the loss-scaled ones; the weights moved."""
    reference, images, targets = _one_step_trainer(minicity, tmp_path, grad_clip=0.0)
    reference.train_model.train()
    reference.train_step(images, targets)
    trainer, _, _ = _one_step_trainer(minicity, tmp_path, grad_clip=0.0, precision="fp16")
    assert trainer.precision == "fp16" and trainer.scaler.is_enabled()
    before = [p.detach().clone() for p in trainer.model.parameters()]
    scale = trainer.scaler.get_scale()
    trainer.train_model.train()
    loss = trainer.train_step(images, targets)
    assert torch.isfinite(loss)
    assert trainer.scaler.state_dict()["_growth_tracker"] == 1 and trainer.scaler.get_scale() == scale
    assert _grad_norm(trainer.model) == pytest.approx(_grad_norm(reference.model), rel=0.05)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


@pytest.mark.parametrize("method", ["median_frequency", "enet"])
def test_class_weights_reach_the_training_loss(minicity, tmp_path, method):
    """--class-weights METHOD: the loss is cross-entropy weighted by weights_from_counts of the training split's
    pixel counts; 'none' leaves it unweighted."""
    from seglab.data import class_frequencies, weights_from_counts
    from seglab.labels import IGNORE_INDEX

    trainer = Trainer(tiny_config(minicity, tmp_path / "run", class_weights=method), overwrite=True)
    expected = weights_from_counts(class_frequencies(trainer.train_set), method)
    assert torch.equal(trainer.criterion.weight, expected) and expected.min() < expected.max()
    generator = torch.Generator().manual_seed(0)
    logits, target = torch.randn(2, 19, 8, 8, generator=generator), torch.randint(0, 19, (2, 8, 8), generator=generator)
    torch.testing.assert_close(trainer.criterion(logits, target),
                               torch.nn.functional.cross_entropy(logits, target, weight=expected,
                                                                 ignore_index=IGNORE_INDEX))
    plain = Trainer(tiny_config(minicity, tmp_path / "plain"))
    assert plain.criterion.weight is None


def test_a_capped_epoch_loads_exactly_its_batches_the_first_of_the_full_shuffle(minicity, tmp_path):
    """``max_steps`` makes the loader itself end after the epoch's batches (no worker left prefetching for a loop
    that broke off), and those batches are the first ones of the uncapped epoch."""
    capped = Trainer(tiny_config(minicity, tmp_path / "a", max_steps=1, workers=2), overwrite=True)
    full = Trainer(tiny_config(minicity, tmp_path / "b", max_steps=0, workers=2), overwrite=True)
    torch.manual_seed(0)
    capped_batches = list(capped._loader(epoch=1))
    torch.manual_seed(0)
    full_batches = list(full._loader(epoch=1))
    assert len(capped_batches) == 1 and len(full_batches) == full.steps_per_epoch > 1
    assert torch.equal(capped_batches[0][1], full_batches[0][1]) and torch.equal(capped_batches[0][0],
                                                                                   full_batches[0][0])
