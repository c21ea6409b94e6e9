"""Inference of every model at 1024x2048, batch 1: median latency, peak memory and achieved GFLOP/s, next to the
machine's own fp32 and bf16 matmul peak measured in the same run, and seglab's DeepLabV3+ ResNet-50 next to
torchvision's deeplabv3_resnet50 at the same precision and size.

Every (model, precision) is measured by ``seglab.toolbox.profiling.profile_model`` in a fresh process (warm-up, then the median
of the timed forwards under ``torch.inference_mode`` with channels_last; FLOPs counted on the meta device; CPU memory =
peak resident set size of that process above its size before the first forward; CUDA memory = peak allocated during
the timed runs, after the warm-up in which cuDNN's autotuner tries large workspaces, whose peak is the
``warmup_peak_memory_mb`` column). The
matmul peak (a large ``torch.matmul`` per dtype) is taken before and after the models; the higher value is the ceiling.
Writes ``outputs/benchmarks/infer.csv`` (one row per model and precision), ``infer_peak.csv`` and ``infer.png``.

    .venv/bin/python benchmarks/bench_infer.py [--device cpu|cuda] [--precisions fp32,bf16] [--warmup 1 --runs 3]

A short GPU run (make gpu-check, about a minute): ``--device cuda --models unet,fcn8s,deeplabv3plus --precisions
fp32,bf16 --no-compare --warmup 3 --runs 5``.

bf16 is measured by default only where ``precision="auto"`` would use it (a CPU with AVX512-BF16/AMX, a bf16 GPU):
elsewhere it is emulated, ten times slower than fp32, and says nothing about the models.

On a GPU (``--device cuda``) the rows of UNet, FCN-8s and DeepLabV3+ R50 OS8 / OS16 also carry the figures the older
repositories published for the same size (they timed file I/O too and read memory off nvidia-smi).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout even before `pip install -e .`
from benchmarks.common import (DEFAULT_OUT, barh, comma_separated, machine, matmul_peaks,  # noqa: E402,I001
                               matmul_size, ratio_row, record_ratios, save_plot, write_csv)

# The older repositories' GPU figures at 1024x2048, batch 1 (latency in s incl. file I/O, memory in GB from nvidia-smi)
OLDER_GPU_FIGURES = {"unet": (0.14, 5.1), "fcn8s": (0.11, 1.9), "deeplabv3plus_r50_os8": (0.20, 2.3),
                     "deeplabv3plus_r50_os16": (0.13, 1.5)}
TV_OPTIONS = {"weights": None, "weights_backbone": None, "aux_loss": False}  # random init: nothing is downloaded


class Config(NamedTuple):
    """One model to measure: the row label, the registry name (or a peer's builder) and its options."""

    label: str
    name: str
    options: dict
    peer: bool = False  # built by torchvision instead of the seglab registry


def registry_configs(names: list[str]) -> list[Config]:
    return [Config(name, name, {}) for name in names]


def comparison_configs() -> list[Config]:
    """DeepLabV3+ ResNet-50 at output stride 8, torchvision's DeepLabV3 ResNet-50 (output stride 8) right after it so
    that the pair sees the same machine load, then DeepLabV3+ ResNet-50 at output stride 16."""
    return [Config("deeplabv3plus_r50_os8", "deeplabv3plus", {"backbone": "resnet50", "output_stride": 8}),
            Config("torchvision_deeplabv3_resnet50", "deeplabv3_resnet50", TV_OPTIONS, peer=True),
            Config("deeplabv3plus_r50_os16", "deeplabv3plus", {"backbone": "resnet50", "output_stride": 16})]


def measure(config: Config, precision: str, args) -> dict:
    """profile_model for one config and precision (isolated process), with the config's label."""
    from seglab.toolbox.profiling import profile_model

    builder = None
    if config.peer:
        from torchvision.models import segmentation

        builder = getattr(segmentation, config.name)
    row = profile_model(config.name, options=config.options, height=args.height, width=args.width,
                        device=args.device, precision=precision, warmup=args.warmup, runs=args.runs,
                        isolate=True, builder=builder)
    row["model"] = config.label
    row["peer"] = "torchvision" if config.peer else "seglab"
    cpu = "" if row["cpu_ms"] is None else f"  {row['cpu_ms'] / 1000:7.2f} CPU s"
    print(f"  {config.label:<32} {precision}  {row['latency_ms']:9.1f} ms  {row['peak_memory_mb']:8.0f} MB  "
          f"{row['achieved_gflops_per_s']:7.1f} GFLOP/s{cpu}", flush=True)
    return row


def plot(table, peaks: dict[str, float], args, path: Path) -> None:
    from matplotlib.figure import Figure

    precisions = list(dict.fromkeys(table["precision"]))
    labels = list(dict.fromkeys(table["model"]))
    fig = Figure(figsize=(13, 0.45 * len(labels) * len(precisions) + 1.6), layout="constrained")
    ax_lat, ax_flops = fig.subplots(1, 2)
    rows = [table[(table["model"] == m) & (table["precision"] == p)] for m in labels for p in precisions]
    rows = [r.iloc[0] for r in rows if len(r)]
    names = [f"{r['model']} {r['precision']}" for r in rows]
    colors = ["tab:gray" if r["peer"] != "seglab" else ("tab:green" if r["precision"] != "fp32" else "tab:blue")
              for r in rows]
    barh(ax_lat, names, [r["latency_ms"] / 1000 for r in rows], "{:.2f} s", colors)
    ax_lat.set_xlabel(f"median latency, s (lower is better); {args.height}x{args.width}, batch 1, {args.device}")
    barh(ax_flops, names, [r["achieved_gflops_per_s"] for r in rows], "{:.0f}", colors)
    for (precision, peak), style in zip(peaks.items(), ["--", ":", "-."]):
        ax_flops.axvline(peak, color="black", linestyle=style, linewidth=1, label=f"{precision} matmul peak {peak:.0f}")
    ax_flops.set_xlim(0, max(max(peaks.values()), max(r["achieved_gflops_per_s"] for r in rows)) * 1.15)
    ax_flops.legend(loc="lower right", fontsize=8)
    ax_flops.set_xlabel("achieved GFLOP/s (higher is better)")
    fig.suptitle(f"inference on {machine(args.device)}: blue fp32, green {'/'.join(p for p in precisions if p != 'fp32')}"
                 " (seglab), grey torchvision", fontsize=10)
    save_plot(fig, path)


def ratios(table, peaks: dict[str, float], args) -> list[dict]:
    """Headline figures: low-precision speed-up per model and seglab DeepLabV3+ vs torchvision (on the CPU from the
    CPU seconds per forward, which other processes' load barely changes; on a GPU from the fastest run), and the
    older repositories' GPU figures (median latency, as they reported)."""
    rows = []
    by = {(r["model"], r["precision"]): r for r in table.to_dict("records")}
    cost, unit = ("cpu_ms", "CPU s") if args.device == "cpu" else ("latency_min_ms", "s")
    low = [p for p in args.precisions if p != "fp32"]
    for model in dict.fromkeys(table["model"]):
        if (model, "fp32") in by and low and (model, low[0]) in by:
            fast, slow = by[(model, low[0])], by[(model, "fp32")]
            rows.append(ratio_row("inference", f"{model} {low[0]} vs fp32, {unit} per forward, {args.height}x"
                                  f"{args.width}", fast[cost] / 1000, slow[cost] / 1000, unit, higher_is_better=False,
                                  peer_name="(fp32)", detail=f"{low[0]} {fast['achieved_gflops_per_s']:.0f} GFLOP/s "
                                  f"of {peaks.get(low[0], float('nan')):.0f} matmul peak", device=args.device))
    for precision in args.compare_precisions:
        ours, theirs = by.get(("deeplabv3plus_r50_os8", precision)), by.get(("torchvision_deeplabv3_resnet50",
                                                                             precision))
        if ours and theirs:
            rows.append(ratio_row("inference", f"DeepLabV3+ R50 OS8 vs torchvision deeplabv3_resnet50, {precision}, "
                                  f"{unit} per forward", ours[cost] / 1000, theirs[cost] / 1000, unit,
                                  higher_is_better=False,
                                  peer_name="torchvision", detail=f"peak memory {ours['peak_memory_mb']:.0f} vs "
                                  f"{theirs['peak_memory_mb']:.0f} MB", device=args.device))
    if args.device.startswith("cuda"):
        for (model, precision), row in by.items():
            if model in OLDER_GPU_FIGURES:
                old_s, old_gb = OLDER_GPU_FIGURES[model]
                rows.append(ratio_row("inference-gpu", f"{model} {precision} vs older repositories", row["latency_ms"]
                                      / 1000, old_s, "s", higher_is_better=False, peer_name="(older, incl. file I/O)",
                                      detail=f"peak allocated {row['peak_memory_mb'] / 1024:.2f} GB vs {old_gb} GB "
                                      "(nvidia-smi)", device=args.device))
    return rows


def run(args) -> tuple:
    import pandas as pd

    from seglab.models import NATIVE_MODEL_NAMES
    from seglab.toolbox.runtime import resolve_device, resolve_precision

    args.device = str(resolve_device(args.device))
    fast = resolve_precision("auto", resolve_device(args.device))  # bf16 only where the hardware runs it natively
    args.precisions = args.precisions or list(dict.fromkeys(["fp32", fast]))
    args.compare_precisions = args.compare_precisions or [fast]
    names = args.models or list(NATIVE_MODEL_NAMES)
    size = matmul_size(args.device, args.matmul_size)
    dtypes = list(dict.fromkeys(args.precisions + ([] if args.no_compare else args.compare_precisions)))
    before = matmul_peaks(dtypes, args.device, size)
    rows = [measure(config, precision, args) for config in registry_configs(names) for precision in args.precisions]
    if not args.no_compare:
        rows += [measure(config, precision, args) for config in comparison_configs()
                 for precision in args.compare_precisions]
    after = matmul_peaks(dtypes, args.device, size)
    peaks = {p: max(before[p], after[p]) for p in dtypes}
    table = pd.DataFrame(rows)
    table["matmul_peak_gflops_per_s"] = table["precision"].map(peaks)
    table["fraction_of_peak"] = table["achieved_gflops_per_s"] / table["matmul_peak_gflops_per_s"]
    if args.device.startswith("cuda"):
        table["older_latency_s"] = table["model"].map(lambda m: OLDER_GPU_FIGURES.get(m, (None, None))[0])
        table["older_memory_gb"] = table["model"].map(lambda m: OLDER_GPU_FIGURES.get(m, (None, None))[1])
    table["machine"] = machine(args.device)
    peak_table = pd.DataFrame([{"dtype": p, "size": size, "before_gflops_per_s": before[p],
                                "after_gflops_per_s": after[p], "peak_gflops_per_s": peaks[p]} for p in dtypes])
    suffix = "" if args.device == "cpu" else "_gpu"
    write_csv(table, args.out / f"infer{suffix}.csv")
    write_csv(peak_table, args.out / f"infer_peak{suffix}.csv")
    plot(table, peaks, args, args.out / f"infer{suffix}.png")
    record_ratios(args.out, ratios(table, peaks, args))
    return table, peak_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--models", type=comma_separated(), default=None, help="comma-separated registry names (default: all)")
    parser.add_argument("--precisions", type=comma_separated(), default=None,
                        help="for every model (default: fp32, plus bf16 where the CPU/GPU has native bf16)")
    parser.add_argument("--compare-precisions", type=comma_separated(), default=None,
                        help="for DeepLabV3+ R50 OS8/OS16 and torchvision deeplabv3_resnet50 (default: bf16 where "
                             "native, else fp32)")
    parser.add_argument("--no-compare", action="store_true", help="skip the ResNet-50 / torchvision comparison")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=None, help="n of the n x n matmul (default 4096 CPU, "
                        "8192 CUDA)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    run(args)
    print(f"wrote infer CSV/PNG under {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
