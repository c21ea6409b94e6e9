"""`torchrun --nproc_per_node 2` (gloo, CPU) trains with DDP: each process reads its own half of the training set,
takes half the steps, ends with the same weights as the other process, and the run differs from a one-process run;
the metrics it records are those a single process measures on its checkpoint."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from seglab.checkpoint import Checkpoint
from seglab.toolbox.jobs import evaluate_checkpoint

# Run under torchrun (or alone): record which training images this process read and how many steps it took, then
# save its final weights; files are named by torchrun's RANK so that two processes never write the same file.
DRIVER = '''
import json, os, sys
from pathlib import Path
import torch
from seglab.toolbox.cli import main
from seglab.data import CityscapesSegmentation
from seglab.engine import Trainer

record, trainers = {"train_indices": [], "steps": 0}, []
getitem, train_step = CityscapesSegmentation.__getitem__, Trainer.train_step

def recording_getitem(self, index):
    if self.split == "train":
        record["train_indices"].append(int(index))
    return getitem(self, index)

def counting_step(self, *args, **kwargs):
    record["steps"] += 1
    trainers[:] = [self]
    return train_step(self, *args, **kwargs)

CityscapesSegmentation.__getitem__, Trainer.train_step = recording_getitem, counting_step
status = main(sys.argv[2:])
trainer, name = trainers[0], os.environ.get("RANK", "alone")
record.update(rank=trainer.dist.rank, world_size=trainer.dist.world_size)
torch.save(trainer.model.state_dict(), Path(sys.argv[1]) / f"weights_{name}.pt")
(Path(sys.argv[1]) / f"record_{name}.json").write_text(json.dumps(record))
raise SystemExit(status)
'''


def test_torchrun_two_processes_shard_the_data_and_agree(minicity, tmp_path):
    driver, records = tmp_path / "driver.py", tmp_path / "records"
    driver.write_text(DRIVER)
    records.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    train = ["train", "--model", "unet", "--model-options", "base_width=8", "--model-options", "depth=3",
             "--data", str(minicity), "--epochs", "1", "--batch-size", "1", "--crop", "64,128", "--workers", "0",
             "--precision", "fp32", "--no-progress"]  # 6 training images: 3 steps per process, 6 alone
    runs = {"ddp": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
            "alone": [sys.executable]}
    for name, launcher in runs.items():
        result = subprocess.run([*launcher, str(driver), str(records), *train, "--out", str(tmp_path / name)],
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    rank = [json.loads((records / f"record_{r}.json").read_text()) for r in ("0", "1")]
    alone = json.loads((records / "record_alone.json").read_text())
    assert [(r["rank"], r["world_size"]) for r in rank] == [(0, 2), (1, 2)]
    assert (alone["rank"], alone["world_size"], alone["steps"]) == (0, 1, 6)
    assert sorted(alone["train_indices"]) == list(range(6))
    # disjoint shards that together cover the training set, and half the steps per process
    shards = [set(r["train_indices"]) for r in rank]
    assert [len(r["train_indices"]) for r in rank] == [3, 3] and not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(range(6))
    assert [r["steps"] for r in rank] == [3, 3]
    # both processes end with the same weights (and BN statistics), which rank 0 saved; one process ends elsewhere
    weights = [torch.load(records / f"weights_{r}.pt") for r in ("0", "1", "alone")]
    saved = Checkpoint.load(tmp_path / "ddp/last.pt").model
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]) and torch.equal(tensor, saved[name]), name
    assert any(not torch.allclose(tensor, weights[2][name]) for name, tensor in weights[0].items()
               if tensor.is_floating_point())
    # the validation metrics merged across the two processes are those one process measures on the checkpoint
    history = pd.read_csv(tmp_path / "ddp/history.csv")
    assert len(history) == 1
    report = evaluate_checkpoint(tmp_path / "ddp/last.pt", minicity, device="cpu", precision="fp32", workers=0,
                                 progress=False)
    assert report.summary["miou"] == pytest.approx(history["miou"][0], abs=1e-6)
    assert report.summary["mean_accuracy"] == pytest.approx(history["mean_accuracy"][0], abs=1e-6)
    # only rank 0 writes TensorBoard events: one event file, with one training-loss point per rank-0 step
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert len(list((tmp_path / "ddp").glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(tmp_path / "ddp"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
