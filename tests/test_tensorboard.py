"""TensorBoard: tensorboard's own event reader finds the run's history, per-step loss and LR, per-class IoU and
prediction images; --no-tensorboard writes nothing; a resumed run continues the curves without repeating steps."""
from __future__ import annotations

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seglab.config import TrainConfig
from seglab import engine
from seglab.engine import Trainer, fit, panel_epochs
from seglab.toolbox.jobs import evaluate_checkpoint

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
    per_class = evaluate_checkpoint(tmp_path / "run" / "last.pt", minicity, precision="fp32", workers=0,
                                    progress=False).summary["per_class_iou"]
    logged = {tag.removeprefix("val_iou/"): events.Scalars(tag) for tag in events.Tags()["scalars"]
              if tag.startswith("val_iou/")}
    assert set(logged) == {name for name, iou in per_class.items() if iou is not None}  # absent classes left out
    for name, scalars in logged.items():  # the last epoch's per-class IoU is the final model's on the val split
        assert [e.step for e in scalars] == [STEPS, 2 * STEPS]
        assert scalars[-1].value == pytest.approx(per_class[name], rel=1e-6), name
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


def test_resume_mid_epoch_replaces_the_interrupted_steps(minicity, tmp_path, monkeypatch):
    """Interrupted after logging step 1 of epoch 2 (its loss read at once, read_every 1), the resumed run logs that
    epoch again: every step once, with the values of an uninterrupted run; image panels only at the panel epochs."""
    monkeypatch.setattr(Trainer, "read_every", 1)
    monkeypatch.setattr(engine, "PANEL_EPOCHS", 2)
    fit(_config(minicity, tmp_path / "full", epochs=3))
    original = Trainer.train_step

    def killed(self, images, targets):
        if divmod(self.scheduler.last_epoch, self.steps_per_epoch) == (1, 1):  # epoch 2, step 1
            raise KeyboardInterrupt
        return original(self, images, targets)
    monkeypatch.setattr(Trainer, "train_step", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(_config(minicity, tmp_path / "split", epochs=3))
    assert [e.step for e in _events(tmp_path / "split").Scalars("train/loss")] == [1, 2, 3]  # step 3 was logged
    monkeypatch.setattr(Trainer, "train_step", original)
    fit(_config(minicity, tmp_path / "split", epochs=3), resume=True)
    full, split = _events(tmp_path / "full"), _events(tmp_path / "split")
    for tag in ("train/loss", "train/lr", "val/miou"):
        assert [e.step for e in split.Scalars(tag)] == [e.step for e in full.Scalars(tag)], tag
        assert [e.value for e in split.Scalars(tag)] == pytest.approx([e.value for e in full.Scalars(tag)]), tag
    assert [e.step for e in full.Scalars("train/loss")] == list(range(1, 3 * STEPS + 1))
    for events in (full, split):
        assert [e.step for e in events.Images("val_prediction/0")] == [STEPS, 3 * STEPS]


def test_image_panels_at_a_few_epochs_of_a_long_run():
    """A 40-epoch run shows predictions at five epochs, the first and the last among them, evenly spread."""
    assert panel_epochs(40) == {1, 11, 21, 30, 40} and panel_epochs(3) == {1, 2, 3}
