"""What every benchmark script shares: timing peers side by side, the machine's description, CSV + PNG writing,
and the headline ratios collected in ``<out>/ratios.csv`` (one row per measured figure, replaced on each run).

``python benchmarks/common.py [outputs/benchmarks]`` writes those ratios as a Markdown table to ``<out>/summary.md``
and regenerates docs/performance.md, the one page that states benchmark figures: the ratios of this checkout's
``make bench`` / ``make bench-gpu`` and the GPU measurement logs committed in benchmarks/measurements/.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
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

from seglab.toolbox.files import atomic_write  # noqa: E402

DEFAULT_OUT = Path("outputs/benchmarks")
PERFORMANCE_PAGE = ROOT / "docs" / "performance.md"
MEASUREMENTS = ROOT / "benchmarks" / "measurements"  # logs of runs on machines this checkout does not have (GPUs)
RATIO_COLUMNS = ["benchmark", "figure", "seglab", "peer", "unit", "ratio", "target", "peer_name", "detail",
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

    from seglab.toolbox.runtime import synchronize

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
            "ratio": ratio, "target": target,
            "peer_name": peer_name, "detail": detail, "date": today(), "machine": machine(device),
            "load": round(load_average(), 1)}


def record_ratios(out: Path, rows: list[dict]) -> None:
    """Print each ratio and store the rows in ``<out>/ratios.csv``, replacing this benchmark's previous rows."""
    import pandas as pd

    for row in rows:
        target = "" if row["target"] is None else (f"  (target >= {row['target']:g}x: "
                                                   f"{'met' if row['ratio'] >= row['target'] else 'NOT met'})")
        print(f"RATIO {row['benchmark']}: {row['figure']}: seglab {row['seglab']:.4g} vs {row['peer']:.4g} "
              f"{row['unit']} -> {row['ratio']:.2f}x{target}", flush=True)
    path = out / "ratios.csv"
    new = pd.DataFrame(rows, columns=RATIO_COLUMNS)
    if path.is_file():
        old = pd.read_csv(path).drop(columns="met", errors="ignore")  # files of older versions stored it
        keep = ~old.set_index(["benchmark", "figure"]).index.isin(new.set_index(["benchmark", "figure"]).index)
        new = pd.concat([old[keep], new], ignore_index=True) if keep.any() else new
    write_csv(new, path)


def summary_markdown(out: Path) -> str:
    """The ratios of ``<out>/ratios.csv`` as Markdown tables, one per machine (the table of the performance page)."""
    import pandas as pd

    path = out / "ratios.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; run `make bench` (or a benchmarks/bench_*.py script) first")
    return "\n".join(_ratio_table(pd.read_csv(path)))


# ------------------------------------------------------------------------------------------------ the performance page
def _ratio_table(table) -> list[str]:
    """ratios.csv rows as Markdown, one table per machine, with that machine and the dates."""
    import pandas as pd

    lines = []
    for name, rows in table.groupby("machine", sort=False):
        when = ", ".join(sorted(set(rows["date"].astype(str))))
        lines += [f"Measured {when} on **{name}** (1-minute load average {rows['load'].min():.1f}-"
                  f"{rows['load'].max():.1f}):", "",
                  "| benchmark | figure | seglab | peer | ratio | target | notes |",
                  "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for row in rows.itertuples():
            met = "met" if row.ratio >= row.target else "not met"  # from the figures, never a stored copy
            target = "" if pd.isna(row.target) else f"≥ {row.target:g}× ({met})"
            notes = "" if pd.isna(row.detail) else row.detail
            lines.append(f"| {row.benchmark} | {row.figure} | {row.seglab:.3g} {row.unit} | {row.peer:.3g} "
                         f"{row.peer_name} | **{row.ratio:.2f}×** | {target} | {notes} |")
        lines.append("")
    return lines


def _bench_scripts() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py"))


def parse_gpu_log(text: str) -> dict:
    """The figures of a GPU measurement log (the format of benchmarks/measurements/gpu-*.txt): the machine line,
    bench_infer and bench_train rows, the matmul peaks, the demo recipe's run, and each step's exit status."""
    infer = [dict(zip(("model", "precision", "latency_ms", "peak_mb", "gflops"), m.groups())) for m in re.finditer(
        r"^  (\w+)\s+(fp32|bf16|fp16)\s+([\d.]+) ms\s+(\d+) MB\s+([\d.]+) GFLOP/s$", text, re.M)]
    train = [dict(zip(("model", "batch", "plain", "seglab", "ratio"), m.groups())) for m in re.finditer(
        r"^  (\w+)\s+batch (\d+)\s+plain fp32\s+([\d.]+) img/s\s+seglab .+?\s([\d.]+) img/s\s+x([\d.]+)",
        text, re.M)]
    steps = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in re.finditer(r"^=== (\w+) rc=(\d+) (\d+)s", text,
                                                                                  re.M)}
    recipe = text.split("=== recipe_train", 1)[-1].split("\n===", 1)[0] if "=== recipe_train" in text else ""
    best = re.search(r"best mIoU ([\d.]+) at epoch (\d+)", recipe)
    other = re.search(r"other-seed val mIoU ([\d.]+) classes>0 (\d+)", text)
    epochs = re.findall(r"^epoch (\d+):", recipe, re.M)
    return {"machine": (re.search(r"^# machine: (.+)$", text, re.M) or [None, "?"])[1],
            "title": text.splitlines()[0].lstrip("# ").split(":", 1)[0].strip(),
            "peaks": re.findall(r"^matmul peak \(GFLOP/s\): (.+)$", text, re.M),
            "infer": infer, "train": train, "steps": steps,
            "train_batches": (re.search(r"batch \[([\d, ]+)\]", text) or [None, ""])[1],
            "recipe": {"epochs": len(epochs), "seconds": steps.get("recipe_train", (0, 0))[1],
                       "best": best and best.group(1), "best_epoch": best and best.group(2),
                       "other_val": other and other.group(1), "other_classes": other and other.group(2)}}


def _gpu_section(path: Path) -> list[str]:
    """One measurement log as Markdown: what ran, the figures, and what is missing."""
    from benchmarks.bench_infer import OLDER_GPU_FIGURES

    older_figures = dict(OLDER_GPU_FIGURES)  # each model's older figure is shown once, on its first row
    log = parse_gpu_log(path.read_text())
    lines = [f"### {path.name}", "", f"{log['title']}. Machine: {log['machine']}. Source: "
             f"[`benchmarks/measurements/{path.name}`](../benchmarks/measurements/{path.name}).", ""]
    if log["peaks"]:
        lines += [f"Dense matmul peak (GFLOP/s), the ceiling of each precision: {log['peaks'][0]}.", ""]
    recipe = log["recipe"]
    if recipe["best"]:
        lines += ["**Demo preset** (`minicity_demo`, the recipe of notebook 07): "
                  f"{recipe['epochs']} epochs in {recipe['seconds']} s (the whole step, start-up included), best val "
                  f"mIoU {recipe['best']} (epoch {recipe['best_epoch']})" + (f"; on val frames generated with another "
                  f"seed mIoU {float(recipe['other_val']):.4f} with {recipe['other_classes']}/19 classes above IoU 0"
                  if recipe["other_val"] else "") + ".", ""]
    if log["infer"]:
        lines += ["**Inference** at 1024x2048, batch 1 (`bench_infer.py`): median latency and peak allocated memory.",
                  "", "| model | precision | latency | peak memory | achieved GFLOP/s | older repositories |",
                  "| --- | --- | ---: | ---: | ---: | --- |"]
        for row in log["infer"]:
            older = older_figures.pop(row["model"], None)
            memory = f"{int(row['peak_mb']):,} MB" if row["precision"] != "fp32" else "see note"
            lines.append(f"| `{row['model']}` | {row['precision']} | {row['latency_ms']} ms | {memory} | "
                         f"{float(row['gflops']):,.0f} | {f'{older[0]} s, {older[1]} GB' if older else ''} |")
        rc, seconds = log["steps"].get("bench_infer", (0, 0))
        lines += ["", "Note: the fp32 peaks this run printed (tens of GB) are those of cuDNN's algorithm search, "
                  "not of the model: the counter was reset before the warm-up. They are left out until "
                  "`make bench-gpu` measures again with the corrected counter. The older repositories' figures are "
                  "latency including file I/O and memory from `nvidia-smi`, as they reported them."]
        if rc:
            lines.append(f"This step stopped at its time limit after {seconds} s (exit status {rc}), so the other "
                         "models of `bench_infer.py` are missing: `make bench-gpu` measures them.")
        lines.append("")
    if log["train"]:
        lines += ["**Training throughput** (`bench_train.py`, crop 256x512): the plain fp32 loop against seglab's "
                  "trainer in bf16 + channels_last.", "", "| model | batch | plain fp32 | seglab | ratio |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| `{r['model']}` | {r['batch']} | {r['plain']} img/s | {r['seglab']} img/s | **{r['ratio']}×** |"
                  for r in log["train"]]
        rc, seconds = log["steps"].get("bench_train", (0, 0))
        models = list(dict.fromkeys(r["model"] for r in log["train"]))
        batches = [b.strip() for b in log["train_batches"].split(",") if b.strip()]
        missing = [f"{m} batch {b}" for b in batches for m in models
                   if not any(r["model"] == m and r["batch"] == b for r in log["train"])]
        if rc or missing:
            lines += ["", f"This step stopped at its time limit after {seconds} s (exit status {rc}); missing rows: "
                      f"{', '.join(missing) or 'none listed'} (`make bench-gpu` measures them)."]
        lines.append("")
    return lines


def performance_markdown(out: Path, measurements: Path = MEASUREMENTS) -> str:
    """docs/performance.md: every benchmark figure of the project, each with its machine and date."""
    import pandas as pd

    path = out / "ratios.csv"
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=RATIO_COLUMNS)
    lines = ["# Performance", "",
             "<!-- generated by benchmarks/common.py from outputs/benchmarks/ratios.csv and benchmarks/measurements/;"
             " `make bench` and `make bench-gpu` rewrite it -->", "",
             "Every benchmark figure of the project is on this page, and only here: README, the other pages and "
             "the notebooks link to it. A benchmark times seglab side by side with a peer on the same machine "
             "(alternating, best or median of several runs) and reports the **ratio**; absolute times depend on the "
             "machine and on its load, which each row names.", "",
             "## seglab against its peers (`make bench`, `make bench-gpu`)", ""]
    if len(table):
        lines += _ratio_table(table)
    measured = set(table["benchmark"].str.split("-").str[0]) if len(table) else set()
    missing = [name for name in _bench_scripts() if name not in measured]
    if missing:
        lines += [("No figures of " if len(table) == 0 else "Missing here: ") + ", ".join(f"`{m}`" for m in missing)
                  + " (this checkout's `outputs/benchmarks/ratios.csv` has no rows for them). `make bench` measures "
                  "them all on this machine's CPU (about 90 minutes on 2 cores), or one at a time: "
                  + ", ".join(f"`python benchmarks/bench_{m}.py --out outputs/benchmarks`" for m in missing)
                  + "; then `python benchmarks/common.py` rewrites this page.", ""]
    logs = sorted(measurements.glob("*.txt")) if measurements.is_dir() else []
    lines += ["## Measurement logs", "",
              "Runs on machines a checkout does not have (a GPU), kept as their full logs in "
              "`benchmarks/measurements/` and read from there. `make bench-gpu` adds this machine's GPU rows to "
              "the table above.", ""]
    for log in logs:
        lines += _gpu_section(log)
    if not logs:
        lines += ["No measurement logs.", ""]
    lines += ["## How peak GPU memory is measured", "",
              "On CUDA, `seglab.toolbox.profiling` reports the peak tensor memory of the timed runs only: the peak counter is "
              "reset after the warm-up, where cuDNN's autotuner (benchmark mode) tries algorithms with large "
              "workspaces; the warm-up's own peak is the separate column `warmup_peak_memory_mb`. The bookkeeping is "
              "tested on the CPU against Python's `tracemalloc` (`tests/test_profiling.py`: a model whose first "
              "forward grabs a large buffer must not raise the reported peak), and on a GPU's own counters by "
              "`make gpu-check`.", "",
              "## `make gpu-check`", "",
              "One command for a machine with a CUDA GPU (about 5 minutes on one GPU; without one it refuses in one "
              "line): the CUDA tests; on a 16-frame MiniCity in fp32, bf16 and fp16 every command (train, resume, "
              "evaluate with scales + flip and with a window, predict, profile at 1024x2048, export); the demo preset "
              "against its target (val mIoU >= 0.50 with 19/19 classes) with the time it took; short inference and "
              "training benchmarks at 1024x2048. It writes `outputs/gpu-check/gpu_check.log` and the table "
              "`outputs/gpu-check/gpu_check.md`; saved under `benchmarks/measurements/` in the same format, the log "
              "appears on this page.", ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the benchmarks' ratios as Markdown: <out>/summary.md and "
                                                 "docs/performance.md")
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--page", type=Path, default=PERFORMANCE_PAGE, help="the performance page to write")
    args = parser.parse_args()
    if (args.out / "ratios.csv").is_file():
        text = summary_markdown(args.out)
        atomic_write(args.out / "summary.md", lambda tmp: Path(tmp).write_text(text))
        print(text, end="")
    page = performance_markdown(args.out)
    atomic_write(args.page, lambda tmp: Path(tmp).write_text(page))
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
