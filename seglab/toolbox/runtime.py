"""Device, precision, seeding and distributed set-up shared by training, inference and profiling."""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, RandomSampler, Sampler

from seglab.config import PRECISIONS
from seglab.errors import SeglabError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an explicit device that is not available is a clear error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SeglabError("device 'cuda' requested but no CUDA GPU is available; use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SeglabError("device 'mps' requested but MPS is not available; use --device cpu or auto")
    return device


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 instructions (AVX512-BF16 / AMX), so bf16 autocast pays off."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe and probe()) or bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 on CUDA with bf16 support or on a bf16-capable CPU, fp16 on other CUDA GPUs, else fp32."""
    if precision not in PRECISIONS:
        raise SeglabError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_supports_bf16():
        return "bf16"
    return "fp32"


# Pixels per training step (batch x crop area) from which bf16 + channels_last pay on a CUDA GPU: on an NVIDIA H200
# they gave 1.24-1.75x plain fp32 at batch 8 of 256x512 crops but 0.93-0.98x at batch 2 (docs/performance.md).
LARGE_STEP_PIXELS = 8 * 256 * 512


def training_speed(precision: str, memory_format: str, device: torch.device, step_pixels: int) -> tuple[str, bool]:
    """The training step's autocast precision and whether it runs channels_last. "auto" picks what bench_train
    measured to pay: on CUDA, bf16 (fp16 without bf16) + channels_last for steps of LARGE_STEP_PIXELS or more, fp32 +
    contiguous below; on a CPU, channels_last, with bf16 where the CPU has bf16 instructions."""
    pays = device.type != "cuda" or step_pixels >= LARGE_STEP_PIXELS
    if precision == "auto" and not pays:
        precision = "fp32"
    precision = resolve_precision(precision, device)  # checks the name; "auto" -> bf16 or fp16 where it pays
    channels_last = pays if memory_format == "auto" else memory_format == "channels_last"
    return precision, channels_last


def tune_kernels_for_fixed_shapes(device: torch.device) -> None:
    """On CUDA, let cuDNN time its convolution kernels on the first batch of each shape and keep the fastest
    (``cudnn.benchmark``): it pays when shapes repeat, as with fixed training crops or a profiled input size."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def autocast(device: torch.device, precision: str):
    """An autocast context for ``precision`` ('fp32' gives a no-op context)."""
    return contextlib.nullcontext() if precision == "fp32" else torch.autocast(device.type, dtype=_DTYPES[precision])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes in the environment (nccl on GPU, gloo on CPU), else run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(), resolve_device(device_name)
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info, device


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def wrap_for_training(model: nn.Module, dist_info: DistInfo, device: torch.device, sync_bn: bool,
                      compile_model: bool) -> nn.Module:
    """The module the training step calls: ``model`` (already on ``device``) with SyncBatchNorm and
    DistributedDataParallel under torchrun, and torch.compile when asked. The plain ``model`` shares its weights."""
    if dist_info.enabled:
        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if compile_model else model


def epoch_order(dataset_size: int, dist_info: DistInfo, seed: int, epoch: int, count: int,
                generator: torch.Generator) -> Sampler | list[int]:
    """The ``count`` sample indices this process trains on in ``epoch``: a seeded shuffle, split across processes
    under torchrun, so a resumed run and every process agree on it."""
    if not dist_info.enabled:
        return RandomSampler(range(dataset_size), num_samples=count, generator=generator)
    sampler = DistributedSampler(range(dataset_size), dist_info.world_size, dist_info.rank, shuffle=True, seed=seed,
                                 drop_last=True)
    sampler.set_epoch(epoch)
    return list(sampler)[:count]
