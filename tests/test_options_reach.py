"""Each training option reaches the code that uses it: from a TrainConfig (what the CLI flags and notebook parameters
build) to the training transform, the dataset's memory, the loss and the trainer's schedule. Every value is set
away from its default and the result is compared with the option's own definition."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from seglab.config import TrainConfig
from seglab.data import class_frequencies, train_dataset, val_dataset
from seglab.engine import Trainer
from seglab.labels import IGNORE_INDEX
from seglab.losses import SegmentationLoss
from seglab.transforms import RandomScaleRotateCrop

from conftest import TINY_TRAIN, TINY_UNET


def _config(data, out, **overrides) -> TrainConfig:
    values = dict(model="unet", model_options=TINY_UNET, data=str(data), out=str(out), crop=(64, 128),
                  progress=False, tensorboard=False, **TINY_TRAIN)
    return TrainConfig(**{**values, **overrides})


def _crop_step(dataset) -> RandomScaleRotateCrop:
    (step,) = [t for t in dataset.transforms.transforms if isinstance(t, RandomScaleRotateCrop)]
    return step


def test_crop_sampling_options_reach_the_trainers_transform(minicity, tmp_path):
    trainer = Trainer(_config(minicity, tmp_path / "run", class_uniform=0.6, cat_max_ratio=0.55))
    step = _crop_step(trainer.train_set)
    assert (step.sampler.class_uniform, step.sampler.cat_max_ratio) == (0.6, 0.55)
    assert step.crop_size == (64, 128)


def test_in_memory_frames_and_labels_are_served_without_the_files(minicity, tmp_path):
    """With in_memory the files can vanish after start-up: the seeded samples, and the class frequencies the class
    weights come from, are the ones read from the files before."""
    data = tmp_path / "minicity"
    shutil.copytree(minicity, data)
    from_files = train_dataset(_config(data, tmp_path / "run"))
    counts = class_frequencies(from_files)
    expected = []
    for index in range(len(from_files)):
        torch.manual_seed(index)
        expected.append(from_files[index])
    config = _config(data, tmp_path / "run", in_memory=True)
    kept, kept_val = train_dataset(config), val_dataset(config)
    val_sample = val_dataset(_config(data, tmp_path / "run"))[0]
    for folder in ("leftImg8bit", "gtFine"):
        shutil.rmtree(data / folder)
    np.testing.assert_array_equal(class_frequencies(kept), counts)
    for index, (image, mask) in enumerate(expected):
        torch.manual_seed(index)
        got_image, got_mask = kept[index]
        assert torch.equal(got_image, image) and torch.equal(got_mask, mask)
    assert all(torch.equal(a, b) for a, b in zip(kept_val[0], val_sample))


def _ohem_by_definition(logits, target, thresh, min_kept, weight):
    """Cross-entropy (weighted) averaged over the valid pixels whose true-class probability is below
    max(thresh, the min_kept-th smallest such probability), written out from the definition."""
    log_p = logits.log_softmax(1)
    valid = target != IGNORE_INDEX
    safe = torch.where(valid, target, 0)
    log_p_true = log_p.gather(1, safe[:, None])[:, 0]
    ce = -weight[safe] * log_p_true
    p_true = log_p_true.exp()
    ranked = p_true[valid].sort().values
    threshold = max(thresh, float(ranked[min(min_kept, len(ranked) - 1)]))
    keep = valid & (p_true < threshold)
    return ce[keep].mean()


def test_ohem_threshold_min_kept_and_class_weights_reach_the_loss():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 12, 16, generator=generator) * 2
    target = torch.randint(0, 4, (2, 12, 16), generator=generator)
    target[:, :2] = IGNORE_INDEX
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0])
    config = TrainConfig(loss="ohem", ohem_thresh=0.3, ohem_min_kept=40)
    expected = _ohem_by_definition(logits, target, 0.3, 40, weight)
    torch.testing.assert_close(SegmentationLoss(config, weight)(logits, target), expected)
    # the options matter here: the defaults, or no weights, give another value
    default = _ohem_by_definition(logits, target, TrainConfig().ohem_thresh, TrainConfig().ohem_min_kept, weight)
    unweighted = _ohem_by_definition(logits, target, 0.3, 40, torch.ones(4))
    assert not torch.allclose(expected, default) and not torch.allclose(expected, unweighted)


def test_focal_gamma_reaches_the_loss():
    generator = torch.Generator().manual_seed(1)
    logits, target = torch.randn(1, 3, 8, 8, generator=generator), torch.randint(0, 3, (1, 8, 8), generator=generator)
    p_true = logits.softmax(1).gather(1, target[:, None])[:, 0]
    expected = ((1 - p_true) ** 0.5 * -p_true.log()).mean()  # focal loss (Lin et al. 2017) with gamma 0.5
    torch.testing.assert_close(SegmentationLoss(TrainConfig(loss="focal", focal_gamma=0.5))(logits, target), expected)


def test_class_weights_reach_the_trainers_loss(minicity, tmp_path):
    trainer = Trainer(_config(minicity, tmp_path / "run", class_weights="enet", in_memory=True))
    freq = class_frequencies(trainer.train_set) / class_frequencies(trainer.train_set).sum()
    expected = np.where(freq > 0, 1 / np.log(1.02 + freq), 0)  # ENet (Paszke et al. 2016): 1 / ln(1.02 + p)
    np.testing.assert_allclose(trainer.criterion.weight.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("compile_model", [True, False])
def test_compile_reaches_the_model_the_trainer_steps(minicity, tmp_path, compile_model):
    """--compile wraps the stepped model in torch.compile (compiled lazily, at the first step); the weights the
    trainer saves stay the plain model's."""
    trainer = Trainer(_config(minicity, tmp_path / "run", compile=compile_model))
    compiled = isinstance(trainer.train_model, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled is compile_model
    assert getattr(trainer.train_model, "_orig_mod", trainer.train_model) is trainer.model


@pytest.mark.parametrize("warmup_epochs", [1.5, 0.0])
def test_warmup_epochs_reach_the_trainers_schedule(minicity, tmp_path, warmup_epochs):
    """The LR of each step: linear warm-up over warmup_epochs x steps_per_epoch steps to the peak, then poly decay."""
    trainer = Trainer(_config(minicity, tmp_path / "run", epochs=4, lr=0.01, warmup_epochs=warmup_epochs))
    total, warmup = trainer.steps_per_epoch * 4, round(warmup_epochs * trainer.steps_per_epoch)
    seen = []
    for _ in range(total):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.scheduler.step()
    expected = [0.01 * (s + 1) / warmup if s < warmup else 0.01 * (1 - (s - warmup) / (total - warmup)) ** 0.9
                for s in range(total)]
    assert seen == pytest.approx(expected)


def test_command_line_options_reach_the_run(minicity, tmp_path):
    """`seglab train` flags end up in the run's config.json and act: the first epoch's LR is the warm-up's first
    step (lr / (warmup_epochs x steps per epoch)), and a Trainer from the saved config samples crops as asked."""
    import json

    import pandas as pd

    from seglab.toolbox.cli import main

    run = tmp_path / "run"
    assert main(["train", "--model", "unet", "--model-options", "base_width=8", "--model-options", "depth=3",
                 "--data", str(minicity), "--out", str(run), "--epochs", "2", "--max-steps", "2", "--batch-size", "2",
                 "--crop", "64,128", "--workers", "0", "--precision", "fp32", "--no-progress", "--no-tensorboard",
                 "--lr", "0.01", "--warmup-epochs", "1.5", "--class-uniform", "0.6", "--cat-max-ratio", "0.55",
                 "--loss", "ohem", "--ohem-thresh", "0.3", "--ohem-min-kept", "40", "--class-weights", "enet",
                 "--in-memory"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert {k: saved[k] for k in ("warmup_epochs", "class_uniform", "cat_max_ratio", "loss", "ohem_thresh",
                                  "ohem_min_kept", "class_weights", "in_memory", "tensorboard")} == {
        "warmup_epochs": 1.5, "class_uniform": 0.6, "cat_max_ratio": 0.55, "loss": "ohem", "ohem_thresh": 0.3,
        "ohem_min_kept": 40, "class_weights": "enet", "in_memory": True, "tensorboard": False}
    warmup = 1.5 * 2  # steps
    assert pd.read_csv(run / "history.csv")["lr"].tolist() == pytest.approx([0.01 * 1 / warmup, 0.01 * 3 / warmup])
    assert not list(run.glob("events.out.tfevents.*"))
    step = _crop_step(train_dataset(TrainConfig.from_dict(saved)))
    assert (step.sampler.class_uniform, step.sampler.cat_max_ratio) == (0.6, 0.55)


@pytest.mark.parametrize("precision, memory_format, expected", [
    ("auto", "auto", (None, True)), ("fp32", "contiguous", ("fp32", False)), ("bf16", "channels_last", ("bf16", True))])
def test_precision_and_memory_format_reach_the_trainers_step(minicity, tmp_path, precision, memory_format, expected):
    trainer = Trainer(_config(minicity, tmp_path / "run", precision=precision, memory_format=memory_format))
    want_precision, channels_last = expected
    if want_precision is None:  # auto on a CPU: bf16 where the CPU has bf16 instructions
        from seglab.toolbox.runtime import resolve_precision

        want_precision = resolve_precision("auto", torch.device("cpu"))
    assert (trainer.precision, trainer.channels_last) == (want_precision, channels_last)
    weight = next(p for p in trainer.model.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_auto_speed_settings_follow_the_measured_rule():
    """On CUDA, bf16 + channels_last only for large steps (they do not pay at small batches); on a CPU always
    channels_last."""
    from seglab.toolbox.runtime import LARGE_STEP_PIXELS, training_speed

    cuda = torch.device("cuda")
    assert training_speed("auto", "auto", cuda, LARGE_STEP_PIXELS // 4) == ("fp32", False)
    assert training_speed("bf16", "auto", cuda, LARGE_STEP_PIXELS) == ("bf16", True)
    assert training_speed("fp16", "contiguous", cuda, LARGE_STEP_PIXELS) == ("fp16", False)
    assert training_speed("fp32", "auto", torch.device("cpu"), 1)[1] is True
