"""Latency, peak memory and FLOPs of a model at a given input size, measured properly on CPU and CUDA.

Latency: the median of timed forward passes after warm-up ones, CUDA synchronised before each clock reading.
Memory: on CUDA the peak allocated bytes of the timed runs (cuDNN's autotuning in the warm-up is reported apart); on
CPU the peak resident size of a fresh child process minus its size before the first forward.
"""
from __future__ import annotations

import copy
import multiprocessing as mp
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch.utils.flop_counter import FlopCounterMode

from seglab.errors import SeglabError
from seglab.toolbox.runtime import (autocast, resolve_device, resolve_precision, synchronize,
                                    tune_kernels_for_fixed_shapes)

if TYPE_CHECKING:
    import pandas as pd


def count_flops(model: torch.nn.Module, height: int, width: int) -> int:
    """Floating-point operations of one forward pass at batch 1 (multiply-add = 2 FLOPs), via FlopCounterMode; shapes
    only, so a model built on the ``meta`` device is counted without computing anything."""
    model.eval()
    device = next(model.parameters(), torch.zeros(())).device
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, height, width, device=device))
    return int(counter.get_total_flops())


def step_flops(model: torch.nn.Module, batch: int, crop: tuple[int, int]) -> int:
    """FLOPs of one training step's forward and backward (multiply-add = 2) at ``batch`` x ``crop``, counted by
    FlopCounterMode on a ``meta``-device copy of ``model``: shapes only, nothing computed."""
    meta = copy.deepcopy(model).to("meta").train()
    images = torch.zeros(batch, 3, *crop, device="meta")
    targets = torch.zeros(batch, *crop, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(meta(images), targets, ignore_index=255).backward()
    return int(counter.get_total_flops())


def time_forward(model: torch.nn.Module, inputs: torch.Tensor, precision: str, warmup: int = 2,
                 runs: int = 5) -> list[float]:
    """Seconds of each of ``runs`` forward passes after ``warmup`` untimed ones."""
    device = inputs.device
    times = []
    with torch.inference_mode():
        for index in range(warmup + runs):
            synchronize(device)
            start = time.perf_counter()
            with autocast(device, precision):
                model(inputs)
            synchronize(device)
            if index >= warmup:
                times.append(time.perf_counter() - start)
    return times


class MemorySource(Protocol):
    """Where allocated bytes are read: ``allocated()`` now, ``peak()`` since the last ``reset_peak()``."""

    def allocated(self) -> int: ...
    def peak(self) -> int: ...
    def reset_peak(self) -> None: ...


class CudaMemory:
    """The CUDA caching allocator's counters of one device (tensors only: cached, unused blocks do not count)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def allocated(self) -> int:
        return torch.cuda.memory_allocated(self.device)

    def peak(self) -> int:
        return torch.cuda.max_memory_allocated(self.device)

    def reset_peak(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)


def time_forward_with_memory(model: torch.nn.Module, inputs: torch.Tensor, precision: str, memory: MemorySource,
                             warmup: int = 2, runs: int = 5) -> tuple[list[float], int, int]:
    """``time_forward`` with the peak bytes above the starting allocation: (times, peak of the timed runs, peak of
    the warm-up). The peak counter is reset between the two, so kernel autotuning in the warm-up does not count."""
    memory.reset_peak()
    before = memory.allocated()
    time_forward(model, inputs, precision, warmup, runs=0)
    warmup_peak = memory.peak() - before
    synchronize(inputs.device)
    memory.reset_peak()
    before = memory.allocated()
    times = time_forward(model, inputs, precision, warmup=0, runs=runs)
    return times, max(0, memory.peak() - before), max(0, warmup_peak)


def _rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; falls back to the peak on other systems)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure(name: str, num_classes: int, options: dict, height: int, width: int, device_name: str,
             precision: str, warmup: int, runs: int, channels_last: bool, flops: bool,
             builder: Callable[..., torch.nn.Module] | None = None) -> dict:
    """Build and measure one model in this process."""
    from seglab.models import build_model

    make = builder or partial(build_model, name)
    torch.manual_seed(0)
    device = resolve_device(device_name)
    precision = resolve_precision(precision, device)
    gflops = None
    if flops:
        with torch.device("meta"):  # shapes only: no memory, no time (a real fp32 forward at 1024x2048 takes seconds)
            gflops = count_flops(make(num_classes=num_classes, **options), height, width) / 1e9
    model = make(num_classes=num_classes, **options).eval()
    params = sum(p.numel() for p in model.parameters())
    tune_kernels_for_fixed_shapes(device)  # the warm-up runs pick cuDNN's fastest kernels for this input size
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    inputs = torch.randn(1, 3, height, width, device=device).contiguous(memory_format=memory_format)
    warmup_peak = cpu_ms = None
    if device.type == "cuda":
        times, peak, warmup_peak = time_forward_with_memory(model, inputs, precision, CudaMemory(device), warmup, runs)
    else:  # the process's peak resident size over warm-up and timed runs (no autotuning on CPU)
        baseline = _rss_bytes()
        time_forward(model, inputs, precision, warmup, runs=0)
        cpu_start = time.process_time()
        times = time_forward(model, inputs, precision, warmup=0, runs=runs)
        cpu_ms = (time.process_time() - cpu_start) / runs * 1e3
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    median = statistics.median(times)
    return {
        "model": name, "device": device.type, "precision": precision, "height": height, "width": width,
        "params_m": params / 1e6, "gflops": gflops,
        "latency_ms": median * 1e3, "latency_min_ms": min(times) * 1e3,
        # CPU time of all threads per forward: on a shared machine hardly changed by other processes' load (as long
        # as idle OpenMP threads sleep rather than spin, OMP_WAIT_POLICY=PASSIVE), unlike the wall-clock latency
        "cpu_ms": cpu_ms,
        "achieved_gflops_per_s": None if gflops is None else gflops / median,
        "peak_memory_mb": max(0, peak) / 2**20, "runs": runs,
        # CUDA: the warm-up's peak, cuDNN's autotuner trying kernels with large workspaces included
        "warmup_peak_memory_mb": None if warmup_peak is None else warmup_peak / 2**20,
    }


def _child(queue: mp.Queue, job: Callable[[], dict]) -> None:
    """Run ``job`` in a fresh process and send its result, or its error as one line, to the parent."""
    try:
        queue.put(("ok", job()))
    except SeglabError as exc:  # already a user-facing line
        queue.put(("error", str(exc)))
    except BaseException as exc:  # reported to the parent, which raises it as a clear error
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def profile_model(name: str, *, num_classes: int = 19, options: dict | None = None, height: int = 1024,
                  width: int = 2048, device: str = "auto", precision: str = "fp32", warmup: int = 2, runs: int = 5,
                  channels_last: bool = True, flops: bool = True, isolate: bool | None = None,
                  builder: Callable[..., torch.nn.Module] | None = None) -> dict:
    """Median latency, peak memory, parameters and FLOPs of one model; CPU runs in a fresh process by default.

    ``builder`` (a picklable function called as ``builder(num_classes=..., **options)``, e.g.
    ``torchvision.models.segmentation.deeplabv3_resnet50``) replaces the seglab registry, to measure a peer model
    the same way; ``name`` then only labels the row.
    """
    if min(height, width) <= 0 or runs <= 0 or warmup < 0:
        raise SeglabError("height, width and runs must be positive (warmup zero or more)")
    job = partial(_measure, name, num_classes, options or {}, height, width, device, precision, warmup, runs,
                  channels_last, flops, builder)
    if isolate is None:
        isolate = resolve_device(device).type == "cpu"
    if not isolate:
        return job()
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, job))
    process.start()
    status, payload = queue.get()
    process.join()
    if status != "ok":
        raise SeglabError(f"profiling {name} failed: {payload}")
    return payload


def profile_models(names: Sequence[str], **kwargs: Any) -> pd.DataFrame:
    """``profile_model`` for each name, as a table (one row per model)."""
    import pandas as pd

    if kwargs.get("builder") is None:
        from seglab.models import model_options

        for name in names:  # every name is checked before the first (slow) measurement
            model_options(name)
    return pd.DataFrame([profile_model(name, **kwargs) for name in names])


def compare_runtimes(names: Sequence[str], *, onnx_dir: str | os.PathLike, num_classes: int = 19, height: int = 512,
                     width: int = 1024, warmup: int = 1, runs: int = 3) -> pd.DataFrame:
    """Median CPU latency (ms) of each model at batch 1 in PyTorch fp32, PyTorch bf16 (autocast) and onnxruntime
    (the model exported to ``onnx_dir/<name>.onnx``), side by side in one process."""
    import pandas as pd

    from seglab.models import build_model
    from seglab.toolbox.onnx_export import export_onnx, onnx_latency_ms

    rows = []
    for name in names:
        torch.manual_seed(0)
        model = build_model(name, num_classes).eval()
        row = {"model": name, "height": height, "width": width}
        inputs = torch.randn(1, 3, height, width).contiguous(memory_format=torch.channels_last)
        with_layout = copy.deepcopy(model).to(memory_format=torch.channels_last)
        for precision in ("fp32", "bf16"):
            row[f"pytorch_{precision}_ms"] = 1000 * statistics.median(
                time_forward(with_layout, inputs, precision, warmup, runs))
        path = export_onnx(model, Path(onnx_dir) / f"{name}.onnx", height, width)
        row["onnxruntime_ms"] = onnx_latency_ms(path, warmup, runs)
        rows.append(row)
    return pd.DataFrame(rows)
