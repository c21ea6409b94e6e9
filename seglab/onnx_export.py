"""ONNX export of any seglab model, and running the file with onnxruntime (the same logits as PyTorch fp32)."""
from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.files import atomic_write


def export_onnx(model: nn.Module, path: str | Path, height: int, width: int) -> Path:
    """Write ``model`` (eval mode, fp32, CPU) as an ONNX graph for 1x3xHxW images -> 1xCxHxW logits, atomically."""
    model = model.float().cpu().eval()
    example = torch.zeros(1, 3, height, width)

    def write(tmp: str) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates each stage on stdout
            program = torch.onnx.export(model, (example,), input_names=["images"], output_names=["logits"],
                                        dynamo=True, verbose=False)
        program.save(tmp)

    try:
        atomic_write(path, write)
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
        raise SeglabError(f"ONNX export failed at {height}x{width}: {str(exc).splitlines()[0][:160]}") from None
    return Path(path)


def onnx_session(path: str | Path):
    """An onnxruntime CPU session for an exported file."""
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for missing or corrupt files
        raise SeglabError(f"cannot load {path} with onnxruntime: {str(exc).splitlines()[0][:160]}") from None


def onnx_logits(session, images: torch.Tensor) -> torch.Tensor:
    """Logits of a batch of normalised images (N must be 1, the exported batch size) from an onnxruntime session."""
    (logits,) = session.run(None, {"images": images.float().cpu().numpy()})
    return torch.from_numpy(logits)


@torch.inference_mode()
def compare_with_pytorch(model: nn.Module, path: str | Path, seed: int = 0) -> float:
    """Share of pixels of a random input where onnxruntime and PyTorch fp32 predict the same class."""
    session = onnx_session(path)
    shape = session.get_inputs()[0].shape
    images = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    reference = model.float().cpu().eval()(images).argmax(1)
    return float((onnx_logits(session, images).argmax(1) == reference).float().mean())


def onnx_latency_ms(path: str | Path, warmup: int = 2, runs: int = 5) -> float:
    """Median wall time of one onnxruntime forward pass of the exported input size, in milliseconds."""
    session = onnx_session(path)
    images = np.zeros(session.get_inputs()[0].shape, dtype=np.float32)
    times = []
    for index in range(warmup + runs):
        start = time.perf_counter()
        session.run(None, {"images": images})
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))
