"""Peak-memory bookkeeping of seglab.toolbox.profiling: the peak of the timed runs only, the warm-up's peak apart.

On CUDA the counters are the caching allocator's (``CudaMemory``); the bookkeeping around them is the same for any
source, so here it runs on the CPU against Python's tracemalloc, a real allocation counter that NumPy reports its
buffers to: a model whose first forward grabs a large workspace (as cuDNN's autotuner does in the warm-up) and whose
later forwards need a small one.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from seglab.toolbox.cli import main
from seglab.toolbox.profiling import time_forward_with_memory

WORKSPACE, ACTIVATIONS = 64 * 2**20, 2 * 2**20


class TracemallocMemory:
    """Bytes allocated through Python's allocators (NumPy buffers included), counted by tracemalloc."""

    def allocated(self) -> int:
        return tracemalloc.get_traced_memory()[0]

    def peak(self) -> int:
        return tracemalloc.get_traced_memory()[1]

    def reset_peak(self) -> None:
        tracemalloc.reset_peak()


class AutotunedOnce(nn.Module):
    """The first forward allocates a large scratch buffer (an autotuner trying algorithms), every forward a small
    one (its activations); both are freed on return."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            np.ones(WORKSPACE, dtype=np.uint8)
        np.ones(ACTIVATIONS, dtype=np.uint8)
        return x


@pytest.fixture
def traced():
    tracemalloc.start()
    yield TracemallocMemory()
    tracemalloc.stop()


def test_peak_is_the_timed_runs_and_the_warmup_peak_is_apart(traced):
    model = AutotunedOnce()
    times, peak, warmup_peak = time_forward_with_memory(model, torch.zeros(1), "fp32", traced, warmup=2, runs=3)
    assert len(times) == 3 and model.calls == 5
    assert ACTIVATIONS <= peak < ACTIVATIONS + 2**20  # the timed runs' own buffers, not the workspace
    assert WORKSPACE <= warmup_peak < WORKSPACE + ACTIVATIONS + 2**20


def test_memory_held_before_the_timed_runs_does_not_count(traced):
    """Bytes already allocated when the timing starts (the model, the input) are the baseline, not the peak."""
    held = np.ones(8 * 2**20, dtype=np.uint8)  # noqa: F841 (kept alive through the measurement)
    _, peak, _ = time_forward_with_memory(AutotunedOnce(), torch.zeros(1), "fp32", traced, warmup=1, runs=2)
    assert ACTIVATIONS <= peak < ACTIVATIONS + 2**20


def test_profile_checks_every_model_name_before_profiling(capsys):
    assert main(["profile", "--models", "unet,fcn8", "--height", "32", "--width", "32", "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing was profiled
    err = captured.err.strip()
    assert err.startswith("error: unknown model 'fcn8'") and "\n" not in err and "SeglabError" not in err


class CudaWorkspaceOnce(AutotunedOnce):
    """AutotunedOnce with its buffers on the GPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            torch.empty(WORKSPACE, dtype=torch.uint8, device=x.device)
        torch.empty(ACTIVATIONS, dtype=torch.uint8, device=x.device)
        return x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_is_the_timed_runs_and_the_warmup_peak_is_apart():
    """The same bookkeeping on the CUDA allocator's own counters (run by make gpu-check)."""
    from seglab.toolbox.profiling import CudaMemory

    device = torch.device("cuda")
    inputs = torch.zeros(1, device=device)
    _, peak, warmup_peak = time_forward_with_memory(CudaWorkspaceOnce(), inputs, "fp32", CudaMemory(device), 2, 3)
    assert ACTIVATIONS <= peak < ACTIVATIONS + 2**20
    assert WORKSPACE <= warmup_peak < WORKSPACE + ACTIVATIONS + 2**20
