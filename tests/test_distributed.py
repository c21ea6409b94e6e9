"""`torchrun --nproc_per_node 2` (gloo, CPU) trains with DDP and reports the metrics a single process measures."""
from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from seglab.infer import evaluate_checkpoint


def test_torchrun_two_processes_matches_single_process_evaluation(minicity, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "seglab", "train", "--model", "unet", "--model-options", "base_width=8", "--model-options", "depth=3",
               "--data", str(minicity), "--out", str(run), "--epochs", "1", "--batch-size", "1", "--crop", "64,128",
               "--max-steps", "2", "--workers", "0", "--precision", "fp32", "--no-progress"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 1
    report = evaluate_checkpoint(run / "last.pt", minicity, device="cpu", precision="fp32", workers=0, progress=False)
    assert report.summary["miou"] == pytest.approx(history["miou"][0], abs=1e-6)
    assert report.summary["mean_accuracy"] == pytest.approx(history["mean_accuracy"][0], abs=1e-6)
