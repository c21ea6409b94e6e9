"""`make gpu-check`: everything that needs a CUDA GPU, in about 5 minutes on one GPU, with one log and one table.

1. the CUDA tests (pytest, the tests that skip without a GPU);
2. every command in each precision (fp32, bf16, fp16) on a small MiniCity: train, resume, evaluate with scales +
   flip and with a sliding window, predict, profile at 1024x2048; export to ONNX once (it runs in fp32);
3. the demo preset (``--preset minicity_demo``) on the full MiniCity, timed, against its target (val mIoU >= 0.50 with
   19 of 19 classes);
4. short inference and training benchmarks at 1024x2048 (benchmarks/bench_infer.py, bench_train.py, few models).

Every command's output goes to ``<out>/gpu_check.log``; the table (step, status, seconds, result) is printed at the end
and written to ``<out>/gpu_check.md``. Without a CUDA GPU it stops at once with one line and exit status 2.

    .venv/bin/python benchmarks/gpu_check.py [--out outputs/gpu-check] [--skip-demo] [--skip-bench]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_TARGET = {"miou": 0.50, "classes": 19}  # the demo preset's goal on a GPU (19 of 19 classes learned)
PRECISIONS = ("fp32", "bf16", "fp16")


class Check:
    """Runs the steps, appending every command's output to one log, and keeps the table rows."""

    def __init__(self, out: Path) -> None:
        self.out, self.rows = out, []
        out.mkdir(parents=True, exist_ok=True)
        self.log = out / "gpu_check.log"
        self.log.write_text(f"gpu-check started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")

    def run(self, step: str, *args: str, result=lambda: "") -> bool:
        """Run ``python args...`` from the repository root; one table row with its status, time and ``result()``."""
        command = [sys.executable, *args]
        with open(self.log, "a") as log:
            log.write(f"\n== {step}\n$ {' '.join(command)}\n")
            log.flush()
            started = time.perf_counter()
            code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            seconds = time.perf_counter() - started
        try:
            detail = result() if code == 0 else f"exit {code}, see {self.log}"
        except (OSError, ValueError, KeyError) as exc:
            code, detail = 1, f"no result: {exc}"
        ok = code == 0 and not str(detail).startswith("FAIL")
        self.rows.append((step, "ok" if ok else "FAILED", f"{seconds:.1f}", str(detail)))
        print(f"{'ok    ' if ok else 'FAILED'} {step} ({seconds:.1f} s) {detail}", flush=True)
        return ok

    def table(self) -> str:
        lines = ["| step | status | seconds | result |", "|---|---|---|---|"]
        lines += [f"| {' | '.join(row)} |" for row in self.rows]
        return "\n".join(lines)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def demo_result(metrics: Path, seconds: float) -> str:
    """The demo's val mIoU, classes learned and training time (start-up included) against DEMO_TARGET."""
    summary = _json(metrics)
    classes = sum(1 for iou in summary["per_class_iou"].values() if iou)
    met = summary["miou"] >= DEMO_TARGET["miou"] and classes >= DEMO_TARGET["classes"]
    return (f"{'' if met else 'FAIL: '}val mIoU {summary['miou']:.3f} with {classes}/19 classes in "
            f"{seconds:.0f} s (target >= {DEMO_TARGET['miou']} with {DEMO_TARGET['classes']})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "gpu-check")
    parser.add_argument("--skip-demo", action="store_true", help="leave out the demo preset run")
    parser.add_argument("--demo-flags", default="--workers 4",
                        help="flags added to the demo preset's (default: %(default)s, loader processes so that the "
                             "crops keep up with the GPU; the preset's 0 suits a 2-core CPU)")
    parser.add_argument("--skip-bench", action="store_true", help="leave out the benchmarks")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("error: gpu-check needs a CUDA GPU and torch.cuda.is_available() is False here; run it on a machine "
              "with an NVIDIA GPU and a CUDA build of PyTorch", file=sys.stderr)
        return 2
    check, out = Check(args.out), args.out
    print(f"gpu-check on {torch.cuda.get_device_name()} (torch {torch.__version__}); log {check.log}", flush=True)
    started = time.perf_counter()
    seglab = ["-m", "seglab"]
    small = out / "minicity_small"
    check.run("CUDA tests", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_metrics.py",
              "tests/test_profiling.py", "-k", "cuda")
    check.run("synth small MiniCity", *seglab, "synth", "minicity", "--out", str(small), "--train", "16", "--val",
              "4", "--test", "0", "--overwrite")
    tiny = ["--model-options", "base_width=16", "--data", str(small), "--crop", "128,256", "--batch-size", "4",
            "--workers", "2", "--no-progress", "--device", "cuda"]
    for precision in PRECISIONS:
        run = out / f"run_{precision}"
        check.run(f"train {precision}", *seglab, "train", *tiny, "--out", str(run), "--epochs", "2", "--precision",
                  precision, "--overwrite")
        check.run(f"train --resume {precision}", *seglab, "train", *tiny, "--out", str(run), "--epochs", "3",
                  "--precision", precision, "--resume")
        ckpt, metrics = str(run / "best.pt"), run / "metrics.json"
        check.run(f"evaluate scales+flip {precision}", *seglab, "evaluate", "--checkpoint", ckpt, "--data", str(small),
                  "--tta-scales", "0.75,1,1.25", "--flip", "--precision", precision, "--json", str(metrics),
                  result=lambda m=metrics: f"mIoU {_json(m)['miou']:.3f}")
        check.run(f"evaluate window {precision}", *seglab, "evaluate", "--checkpoint", ckpt, "--data", str(small),
                  "--window", "128,256", "--precision", precision)
        check.run(f"predict {precision}", *seglab, "predict", "--checkpoint", ckpt, "--images",
                  str(small / "leftImg8bit" / "val"), "--out", str(run / "predictions"), "--precision", precision)
        table = out / f"profile_{precision}.csv"
        check.run(f"profile 1024x2048 {precision}", *seglab, "profile", "--models", "unet,fcn8s,deeplabv3plus",
                  "--device", "cuda", "--precision", precision, "--out", str(table),
                  result=lambda t=table: _profile_result(t))
    check.run("export ONNX", *seglab, "export", "--checkpoint", str(out / "run_fp32" / "best.pt"), "--out",
              str(out / "unet.onnx"), "--height", "256", "--width", "512")
    if not args.skip_demo:
        data = ROOT / "data" / "minicity"
        if not (data / "leftImg8bit").is_dir():
            check.run("synth MiniCity (demo data)", *seglab, "synth", "minicity", "--out", str(data))
        demo = out / "demo"
        if check.run(f"demo preset {args.demo_flags}: train", *seglab, "train", "--preset", "minicity_demo", "--out",
                     str(demo), "--device", "cuda", "--no-progress", "--overwrite", *args.demo_flags.split()):
            seconds = float(check.rows[-1][2])
            check.run("demo preset: evaluate", *seglab, "evaluate", "--checkpoint", str(demo / "best.pt"), "--data",
                      str(data), "--json", str(demo / "metrics.json"),
                      result=lambda: demo_result(demo / "metrics.json", seconds))
    if not args.skip_bench:
        bench = out / "benchmarks"
        check.run("bench_infer 1024x2048", "benchmarks/bench_infer.py", "--device", "cuda", "--models",
                  "unet,fcn8s,deeplabv3plus", "--precisions", "fp32,bf16", "--no-compare", "--warmup", "3", "--runs",
                  "5", "--out", str(bench), result=lambda: f"table {bench / 'infer_gpu.csv'}")
        check.run("bench_train 1024x2048", "benchmarks/bench_train.py", "--device", "cuda", "--models", "unet,fcn8s",
                  "--crop", "1024,2048", "--data-size", "1024,2048", "--train-frames", "8", "--val-frames", "2",
                  "--batch", "2", "--steps", "5", "--curve-steps", "20", "--out", str(bench),
                  result=lambda: f"table {bench / 'train_gpu.csv'}")
    table = check.table()
    (out / "gpu_check.md").write_text(table + "\n")
    failed = sum(row[1] != "ok" for row in check.rows)
    print(f"\n{table}\n\ngpu-check: {len(check.rows) - failed} of {len(check.rows)} steps ok in "
          f"{time.perf_counter() - started:.0f} s; log {check.log}, table {out / 'gpu_check.md'}")
    return 1 if failed else 0


def _profile_result(table: Path) -> str:
    """'model latency ms / peak MB' for each profiled model."""
    import pandas as pd

    rows = pd.read_csv(table)
    return ", ".join(f"{r.model} {r.latency_ms:.1f} ms {r.peak_memory_mb:.0f} MB" for r in rows.itertuples())


if __name__ == "__main__":
    sys.exit(main())
