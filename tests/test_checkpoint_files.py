"""Older checkpoint formats load with today's option names (seglab.toolbox.checkpoint_files)."""
from __future__ import annotations

import torch

from seglab.checkpoint import FORMAT_VERSION, Checkpoint
from seglab.config import TrainConfig
from seglab.models import build_model


def _save_as_format_2(path, config: dict, labels: str) -> None:
    """A checkpoint as seglab wrote it before the scale options and the label source were renamed."""
    model = build_model("unet", 19, base_width=8, depth=3)
    Checkpoint(spec=model.seglab_spec, class_names=["c"] * 19, config=config, model=model.state_dict()).save(path)
    state = torch.load(path, weights_only=True)
    old = {"train_resize": "scale", "zoom_range": "scale_range", "val_resize": "val_scale"}
    state["config"] = {old.get(k, k): v for k, v in state["config"].items() if k != "mask_dir"}
    state["config"]["labels"] = labels
    state["config"]["channels_last"] = state["config"].pop("memory_format") == "channels_last"
    state["format_version"] = 2
    torch.save(state, path)


def test_format_2_options_are_read_with_their_new_names(tmp_path):
    config = TrainConfig(train_resize=0.5, zoom_range=(0.75, 1.5), val_resize=0.25, data="data/city",
                         memory_format="contiguous").to_dict()
    for labels, mask_dir in (("provided", ""), ("generated", "data/city/generated_gt"), ("my/masks", "my/masks")):
        path = tmp_path / f"{labels.replace('/', '_')}.pt"
        _save_as_format_2(path, config, labels)
        record = Checkpoint.load(path)
        assert record.format_version == FORMAT_VERSION
        run = record.run_config
        assert (run.train_resize, run.zoom_range, run.val_resize, run.mask_dir) == (0.5, (0.75, 1.5), 0.25, mask_dir)
        assert run.memory_format == "contiguous"


def test_format_1_record_is_upgraded_through_format_2(tmp_path):
    """A version-1 record (model name, options and dataset beside the config) loads with today's names."""
    model = build_model("unet", 19, base_width=8, depth=3)
    config = {"model": "unet", "data": "data/city", "scale": 0.5, "val_scale": 0.25, "labels": "generated",
              "channels_last": False, "class_weights": None, "retired_option": 1}
    state = {"format_version": 1, "model_name": "unet", "num_classes": 19, "model_options": model.seglab_spec["options"],
             "class_names": ["c"] * 19, "config": config, "dataset": "cityscapes", "model": model.state_dict(),
             "epoch": 3, "history": {}, "best_miou": 0.25}
    torch.save(state, tmp_path / "v1.pt")
    record = Checkpoint.load(tmp_path / "v1.pt")
    run = record.run_config
    assert (record.spec["name"], record.epoch, record.format_version) == ("unet", 3, FORMAT_VERSION)
    assert (run.train_resize, run.val_resize, run.mask_dir) == (0.5, 0.25, "data/city/generated_gt")
    assert (run.memory_format, run.class_weights) == ("contiguous", "none")
