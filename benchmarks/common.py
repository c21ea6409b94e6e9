"""What every benchmark script shares: timing peers side by side, the machine's description, CSV + PNG writing,
and the headline ratios collected in ``<out>/ratios.csv`` (one row per measured figure, replaced on each run).

``python benchmarks/common.py [outputs/benchmarks]`` prints those ratios as the Markdown table the README shows
and writes it to ``<out>/summary.md``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning (set before torch is imported; child processes inherit it): on a
# machine shared with other jobs a spinning thread steals the core the other arm needs, and the CPU seconds the
# scripts report then count work only. A value set by the user is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout even before `pip install -e .`
    sys.path.insert(0, str(ROOT))

from seglab.files import atomic_write  # noqa: E402

DEFAULT_OUT = Path("outputs/benchmarks")
RATIO_COLUMNS = ["benchmark", "figure", "seglab", "peer", "unit", "ratio", "target", "met", "peer_name", "detail",
                 "date", "machine", "load"]


# ------------------------------------------------------------------------------------------------ arguments
def comma_separated(cast: Callable = str, length: int | None = None) -> Callable[[str], list | tuple]:
    """argparse type for "a,b,c": a list of ``cast`` values (empty items dropped), or with ``length`` a tuple of
    exactly that many (e.g. ``comma_separated(int, 2)`` for "H,W")."""
    def parse(text: str) -> list | tuple:
        values = [cast(item.strip()) for item in text.split(",") if item.strip()]
        if length is None:
            return values
        if len(values) != length:
            raise argparse.ArgumentTypeError(f"expected {length} comma-separated values, got {text!r}")
        return tuple(values)
    return parse


# ------------------------------------------------------------------------------------------------ the machine
def load_average() -> float:
    """1-minute load average (0.0 where the OS does not report one): how busy the shared CPU was."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() as a fallback)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine(device: str = "cpu") -> str:
    """One line naming what ran the benchmark, e.g. ``AMD EPYC, 2 cores, torch 2.x`` or the GPU's name."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}, torch {torch.__version__.split('+')[0]}"
    return f"{cpu_name()}, {cores()} cores, torch {torch.__version__.split('+')[0]}"


def today() -> str:
    return datetime.date.today().isoformat()


# ------------------------------------------------------------------------------------------------ timing
def best_of(repeat: int, work: Callable[[], object]) -> tuple[object, float]:
    """(result of the last call, fewest seconds over ``repeat`` calls): the usual timeit guard against noise."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return result, best


def alternate(arms: dict[str, Callable[[], object]], repeat: int) -> tuple[dict[str, object], dict[str, list[float]]]:
    """Run every arm once per round, ``repeat`` rounds, so that load from other processes hits all arms alike.

    Returns (last result of each arm, seconds of each call of each arm).
    """
    results: dict[str, object] = {}
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeat):
        for name, work in arms.items():
            start = time.perf_counter()
            results[name] = work()
            seconds[name].append(time.perf_counter() - start)
    return results, seconds


# ------------------------------------------------------------------------------------------------ ceilings
def matmul_gflops(dtype_name: str, device: str, size: int, repeat: int = 3) -> float:
    """Best GFLOP/s of an (n x n) @ (n x n) torch.matmul in ``dtype_name``: the dense-math ceiling of the machine."""
    import torch

    from seglab.runtime import synchronize

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    dev = torch.device(device)
    a = torch.randn(size, size, device=dev).to(dtype)
    b = torch.randn(size, size, device=dev).to(dtype)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        synchronize(dev)
        start = time.perf_counter()
        torch.matmul(a, b)
        synchronize(dev)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def matmul_size(device: str, size: int | None = None) -> int:
    """n of the peak-measuring matmul: ``size`` if given, else 4096 on CPU (about a second in fp32) and 8192 on CUDA."""
    return size or (8192 if device.startswith("cuda") else 4096)


def matmul_peaks(dtype_names: Sequence[str], device: str, size: int | None = None) -> dict[str, float]:
    """``matmul_gflops`` of each dtype at ``matmul_size(device, size)``, printed as one line."""
    size = matmul_size(device, size)
    peaks = {name: matmul_gflops(name, device, size) for name in dtype_names}
    print("matmul peak (GFLOP/s): " + ", ".join(f"{p} {v:.0f}" for p, v in peaks.items()), flush=True)
    return peaks


# ------------------------------------------------------------------------------------------------ writing
def write_csv(table, path: Path) -> Path:
    """A pandas table as CSV, atomically; returns the path."""
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return path


def save_plot(figure, path: Path) -> Path:
    """A matplotlib Figure as PNG, atomically (no pyplot: scripts need no GUI backend)."""
    from seglab.viz import save_figure

    return save_figure(figure, path)


def barh(ax, labels: Sequence[str], values: Sequence[float], fmt: str = "{:.1f}", colors=None) -> None:
    """Horizontal bars, first label on top, each with its value written at the bar's end."""
    ax.barh(list(labels), list(values), color=colors)
    top = max([v for v in values if v == v] or [1.0])
    for y, value in enumerate(values):
        if value == value:  # skip NaN
            ax.text(value, y, " " + fmt.format(value), va="center", fontsize=9)
    ax.set_xlim(0, top * 1.25)
    ax.invert_yaxis()


def ratio_row(benchmark: str, figure: str, seglab: float, peer: float, unit: str, *, higher_is_better: bool,
              peer_name: str, target: float | None = None, detail: str = "", device: str = "cpu") -> dict:
    """One headline figure: seglab's value, the peer's, and seglab's advantage as a ratio (> 1 means faster)."""
    ratio = seglab / peer if higher_is_better else peer / seglab
    return {"benchmark": benchmark, "figure": figure, "seglab": seglab, "peer": peer, "unit": unit,
            "ratio": ratio, "target": target, "met": None if target is None else bool(ratio >= target),
            "peer_name": peer_name, "detail": detail, "date": today(), "machine": machine(device),
            "load": round(load_average(), 1)}


def record_ratios(out: Path, rows: list[dict]) -> None:
    """Print each ratio and store the rows in ``<out>/ratios.csv``, replacing this benchmark's previous rows."""
    import pandas as pd

    for row in rows:
        target = "" if row["target"] is None else (f"  (target >= {row['target']:g}x: "
                                                   f"{'met' if row['met'] else 'NOT met'})")
        print(f"RATIO {row['benchmark']}: {row['figure']}: seglab {row['seglab']:.4g} vs {row['peer']:.4g} "
              f"{row['unit']} -> {row['ratio']:.2f}x{target}", flush=True)
    path = out / "ratios.csv"
    new = pd.DataFrame(rows, columns=RATIO_COLUMNS)
    if path.is_file():
        old = pd.read_csv(path)
        keep = ~old.set_index(["benchmark", "figure"]).index.isin(new.set_index(["benchmark", "figure"]).index)
        new = pd.concat([old[keep], new], ignore_index=True) if keep.any() else new
    write_csv(new, path)


def summary_markdown(out: Path) -> str:
    """The ratios of ``<out>/ratios.csv`` as a Markdown table (the README's performance table)."""
    import pandas as pd

    path = out / "ratios.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; run `make bench` (or a benchmarks/bench_*.py script) first")
    table = pd.read_csv(path)
    lines = ["| benchmark | figure | seglab | peer | ratio | target | notes |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for row in table.itertuples():
        target = "" if pd.isna(row.target) else f"≥ {row.target:g}× ({'met' if row.met else 'not met'})"
        notes = "" if pd.isna(row.detail) else row.detail
        lines.append(f"| {row.benchmark} | {row.figure} | {row.seglab:.3g} | {row.peer:.3g} {row.peer_name} "
                     f"| **{row.ratio:.2f}×** | {target} | {notes} |")
    lines.append("")
    for name, rows in table.groupby("machine", sort=False):
        when = ", ".join(sorted(set(rows["date"].astype(str))))
        lines.append(f"Taken {when} on {name}; 1-minute load average during the runs "
                     f"{rows['load'].min():.1f}–{rows['load'].max():.1f}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Print the benchmarks' ratios as a Markdown table")
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    text = summary_markdown(args.out)
    atomic_write(args.out / "summary.md", lambda tmp: Path(tmp).write_text(text))
    print(text, end="")


if __name__ == "__main__":
    main()
