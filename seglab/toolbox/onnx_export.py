"""ONNX export of any seglab model, and running the file with onnxruntime (the same logits as PyTorch fp32)."""
from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.toolbox.files import atomic_write


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


@dataclass
class OnnxCheck:
    """How an exported file's logits compare with PyTorch fp32 on one random image."""

    agreement: float  # share of pixels where the two predict the same class
    max_difference: float  # largest |logit difference|, relative to the largest |PyTorch logit|
    classes: int  # distinct classes PyTorch predicts on the image (1 says little about the agreement)


@torch.inference_mode()
def check_onnx(model: nn.Module, path: str | Path, seed: int = 0, tolerance: float = 1e-3) -> OnnxCheck:
    """Run ``path`` in onnxruntime and ``model`` in PyTorch fp32 on a random image; a one-line SeglabError when their
    logits differ by more than ``tolerance`` (relative to the logits' magnitude)."""
    session = onnx_session(path)
    images = torch.randn(session.get_inputs()[0].shape, generator=torch.Generator().manual_seed(seed))
    reference = model.float().cpu().eval()(images)
    logits = onnx_logits(session, images)
    if logits.shape != reference.shape:
        raise SeglabError(f"{path} gives logits of shape {tuple(logits.shape)}, PyTorch {tuple(reference.shape)}; "
                          "it was exported from another model")
    difference = float((logits - reference).abs().max() / reference.abs().max().clamp(min=1e-12))
    check = OnnxCheck(agreement=float((logits.argmax(1) == reference.argmax(1)).float().mean()),
                      max_difference=difference, classes=len(reference.argmax(1).unique()))
    if not difference <= tolerance:
        raise SeglabError(f"{path} does not compute what the PyTorch model does (logits differ by {difference:.2%} of "
                          f"their size, same class on {check.agreement:.2%} of the pixels); export it again")
    return check


def onnx_latency_ms(path: str | Path, warmup: int = 2, runs: int = 5) -> float:
    """Median wall time of one onnxruntime forward pass of the exported input size, in milliseconds."""
    session = onnx_session(path)
    inputs = {"images": np.zeros(session.get_inputs()[0].shape, dtype=np.float32)}
    times = []
    for _ in range(warmup + runs):
        start = time.perf_counter()
        session.run(None, inputs)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[warmup:]))
