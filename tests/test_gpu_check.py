"""`make gpu-check` without a CUDA GPU: one line saying why, a non-zero exit status, nothing run or written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_refuses_without_a_gpu_in_one_line(tmp_path):
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU visible, even on a machine that has one
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: gpu-check needs a CUDA GPU") and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
