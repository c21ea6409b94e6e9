"""Shared, session-scoped tiny datasets (generated once per test run) and small helpers."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def minicity(tmp_path_factory) -> Path:
    """A tiny MiniCity (6 train, 3 val, 1 test frames at 128x256)."""
    from seglab.toolbox import synth

    root = tmp_path_factory.mktemp("minicity")
    synth.generate_minicity(root, train=6, val=3, test=1, height=128, width=256, seed=0, workers=1)
    return root


@pytest.fixture(scope="session")
def minivoc(tmp_path_factory) -> Path:
    """A tiny MiniVOC (VOC + SBD layouts)."""
    from seglab.toolbox import synth

    root = tmp_path_factory.mktemp("minivoc")
    synth.generate_minivoc(root, train=6, val=4, height=96, width=128, seed=0, workers=1)
    return root


TINY_UNET = {"base_width": 8, "depth": 3}
TINY_TRAIN = {"epochs": 1, "max_steps": 2, "batch_size": 2, "workers": 0, "precision": "fp32"}


@pytest.fixture(scope="session")
def tiny_checkpoint(minicity, tmp_path_factory) -> Path:
    """A real checkpoint of a tiny UNet trained for two steps on the tiny MiniCity."""
    from seglab.config import TrainConfig
    from seglab.engine import fit

    run = tmp_path_factory.mktemp("tiny_run") / "unet"
    fit(TrainConfig(model="unet", model_options=TINY_UNET, data=str(minicity), out=str(run), crop=(64, 128),
                    progress=False, **{**TINY_TRAIN, "batch_size": 4}))
    return run / "best.pt"


def save_untrained(model, dataset: str, path: Path) -> Path:
    """A checkpoint file of a model seglab did not train (fresh or loaded weights), for tests of the loading paths."""
    from seglab.checkpoint import Checkpoint
    from seglab.config import TrainConfig
    from seglab.labels import get_label_set

    spec = model.seglab_spec
    config = TrainConfig(model=spec["name"], dataset=dataset, model_options=spec["options"]).to_dict()
    Checkpoint(spec=spec, class_names=list(get_label_set(dataset).classes), config=config,
               model=model.state_dict()).save(path)
    return path
