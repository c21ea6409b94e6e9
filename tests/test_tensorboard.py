"""TensorBoard: tensorboard's own event reader finds the run's history, per-step loss and LR, per-class IoU and
prediction images; --no-tensorboard writes nothing; a resumed run continues the curves without repeating steps."""
from __future__ import annotations

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seglab.config import TrainConfig
from seglab.engine import Trainer, fit

STEPS = 2


def _config(data, out, **overrides) -> TrainConfig:
    values = dict(model="unet", model_options={"base_width": 8, "depth": 3}, data=str(data), out=str(out), epochs=2,
                  batch_size=2, crop=(64, 128), max_steps=STEPS, workers=0, precision="fp32", progress=False, seed=3)
    return TrainConfig(**{**values, **overrides})


def _events(run) -> EventAccumulator:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_event_files_hold_the_history(minicity, tmp_path):
    history = fit(_config(minicity, tmp_path / "run"))
    events = _events(tmp_path / "run")
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 2 * STEPS + 1))
    lrs = [e.value for e in events.Scalars("train/lr")]
    assert lrs[0] == pytest.approx(history["lr"][0]) and lrs[STEPS] == pytest.approx(history["lr"][1])
    for tag, column in [("val/miou", "miou"), ("val/mdice", "mdice"), ("val/mean_accuracy", "mean_accuracy"),
                        ("val/loss", "val_loss"), ("train/epoch_loss", "train_loss")]:
        scalars = events.Scalars(tag)
        assert [e.step for e in scalars] == [STEPS, 2 * STEPS]
        assert [e.value for e in scalars] == pytest.approx(list(history[column]), rel=1e-6)
    assert "val_iou/road" in events.Tags()["scalars"]
    image = events.Images("val_prediction/0")[-1]
    assert (image.height, image.width) == (128, 3 * 256 + 8)  # image | ground truth | prediction at native size


def test_no_tensorboard_writes_no_event_file(minicity, tmp_path):
    fit(_config(minicity, tmp_path / "run", epochs=1, tensorboard=False))
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_resumed_run_continues_the_curves(minicity, tmp_path):
    fit(_config(minicity, tmp_path / "run", epochs=1))
    history = Trainer(_config(minicity, tmp_path / "run"), resume=True).run()
    events = _events(tmp_path / "run")
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 2 * STEPS + 1))
    assert [e.value for e in events.Scalars("val/miou")] == pytest.approx(list(history["miou"]), rel=1e-6)
    assert len(pd.read_csv(tmp_path / "run" / "history.csv")) == 2
