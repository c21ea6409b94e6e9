"""One tiny smoke run of each benchmarks/bench_*.py script, as a user runs it (a subprocess), checking what it writes.

The sizes are far too small for meaningful timings; these runs check that every script works end to end, that the
correctness checks it makes against its peer pass, and that the CSV / PNG / ratios.csv it promises are written.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _ratios(out: Path, benchmark: str) -> pd.DataFrame:
    table = pd.read_csv(out / "ratios.csv")
    rows = table[table["benchmark"] == benchmark]
    assert len(rows) and (rows["ratio"] > 0).all() and rows["machine"].notna().all()
    return rows


def test_bench_masks_smoke(minicity, tmp_path):
    stdout = _run("bench_masks.py", "--data", str(minicity), "--repeat", "1", "--workers", "1", "--out", str(tmp_path))
    table = pd.read_csv(tmp_path / "masks.csv")
    assert table["identical"].all() and table["frames"].eq(6).all()  # every output decoded equal to the official
    assert "RATIO masks" in stdout and (tmp_path / "masks.png").stat().st_size > 0
    assert _ratios(tmp_path, "masks")["target"].eq(4.0).all()


def test_bench_eval_smoke(tmp_path):
    stdout = _run("bench_eval.py", "--frames", "2", "--height", "64", "--width", "128", "--repeat", "1",
                  "--out", str(tmp_path))
    table = pd.read_csv(tmp_path / "eval.csv")
    mious = table["miou"].dropna()
    assert len(table) == 3 and len(mious) == 2 and mious.max() - mious.min() < 1e-9  # both tools: the same mIoU
    assert stdout.count("RATIO eval:") == 1 and (tmp_path / "eval.png").is_file()


def test_bench_data_smoke(minicity, tmp_path):
    stdout = _run("bench_data.py", "--data", str(minicity), "--crop", "64,128", "--workers", "0", "--repeat", "1",
                  "--out", str(tmp_path))
    table = pd.read_csv(tmp_path / "data.csv")
    assert table["frames"].eq(6).all() and (table["samples_per_s"] > 0).all() and len(table) == 4
    assert stdout.count("RATIO data") == 4 and (table["cpu_s_per_sample"] > 0).all()
    assert (tmp_path / "data.png").is_file()


def test_step_flops_counts_forward_and_backward():
    from torch import nn

    from seglab.toolbox.profiling import step_flops

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 1))
    batch, height, width = 2, 8, 16
    first, second = 2 * batch * height * width * 4 * 3 * 9, 2 * batch * height * width * 5 * 4  # multiply-adds x 2
    # forward of both convs; backward: both weight gradients, the input gradient of the second only (images need none)
    assert step_flops(model, batch, (height, width)) == 2 * first + 3 * second
    assert next(model.parameters()).device.type == "cpu"  # counted on a meta copy, the model itself is untouched


def test_bench_train_smoke(minicity, tmp_path):
    stdout = _run("bench_train.py", "--data", str(minicity), "--models", "unet", "--crop", "64,128", "--batch", "2,4",
                  "--steps", "1", "--curve-steps", "2", "--curve-crop", "64,128", "--matmul-size", "256",
                  "--out", str(tmp_path))
    table = pd.read_csv(tmp_path / "train.csv")
    assert table["model"].tolist() == ["unet", "unet"] and table["batch"].tolist() == [2, 4]
    assert (table["speedup"] > 0).all()
    curve = pd.read_csv(tmp_path / "train_curve.csv")
    assert len(curve) == 2 and curve[["plain_loss", "seglab_loss"]].notna().all().all()
    # the first step starts from the same weights on the same batch: the two losses differ only by precision
    assert curve["plain_loss"].iloc[0] == pytest.approx(curve["seglab_loss"].iloc[0], rel=0.05)
    rows = _ratios(tmp_path, "training")  # images/s at batch 2 and 4, val mIoU
    assert len(rows) == 3 and "RATIO training" in stdout and (tmp_path / "train.png").is_file()
    assert (table["cpu_speedup"] > 0).all() and (table["step_gflop"] > 0).all()
    assert (table["ceiling_speedup"] > 0).all() and "of the fp32 peak" in stdout


def test_bench_infer_smoke(tmp_path):
    stdout = _run("bench_infer.py", "--models", "unet", "--precisions", "fp32", "--no-compare", "--height", "64",
                  "--width", "128", "--warmup", "0", "--runs", "1", "--matmul-size", "256", "--out", str(tmp_path))
    table = pd.read_csv(tmp_path / "infer.csv")
    assert table["model"].tolist() == ["unet"] and table["precision"].tolist() == ["fp32"]
    assert (table["gflops"] > 0).all() and (table["matmul_peak_gflops_per_s"] > 0).all()
    assert pd.read_csv(tmp_path / "infer_peak.csv")["dtype"].tolist() == ["fp32"]
    assert "matmul peak" in stdout and (tmp_path / "infer.png").is_file()


def test_summary_table_lists_every_ratio_with_its_notes(tmp_path):
    _run("bench_eval.py", "--frames", "1", "--height", "32", "--width", "64", "--repeat", "1", "--out", str(tmp_path))
    printed = _run("common.py", str(tmp_path), "--page", str(tmp_path / "performance.md"))
    rows = [line for line in printed.splitlines() if line.startswith("| eval |")]
    assert len(rows) == len(_ratios(tmp_path, "eval")) and "identical confusion matrix" in rows[0]
    assert printed.startswith((tmp_path / "summary.md").read_text()) and "Measured " in printed
    assert (tmp_path / "performance.md").is_file()  # the page goes where --page says, never into the checkout


def test_bench_recipe_smoke(tmp_path):
    stdout = _run("bench_recipe.py", "--train-frames", "8", "--val-frames", "2", "--budget", "2", "--eval-every", "2",
                  "--ablation", "--ablation-budget", "1", "--ablation-seeds", "0,1", "--top", "1", "--out", str(tmp_path))
    table = pd.read_csv(tmp_path / "recipe.csv")
    assert set(table["arm"]) == {"seed-style", "seglab"} and table["miou"].between(0, 1).all()
    assert (table.groupby("arm")["cpu_seconds"].max() >= 2).all()  # each arm trained its whole budget
    ablation = pd.read_csv(tmp_path / "recipe_ablation.csv")
    assert ablation["recipe"].iloc[0] == "demo recipe (minicity_demo)" and ablation["recipe"].nunique() >= 8
    assert len(ablation) == ablation["recipe"].nunique() + 1  # the best row (--top 1) again with seed 1
    best = ablation.iloc[:-1].sort_values("miou", ascending=False).iloc[0]["recipe"]
    assert ablation.iloc[-1]["recipe"] == best and ablation.iloc[-1]["seed"] == 1
    assert stdout.strip().splitlines()[-1].startswith("time-to-accuracy: seglab reaches the seed-style best mIoU ")
    ratios = pd.read_csv(tmp_path / "ratios.csv")  # the ratio may be 0 here: 2 CPU-s need not reach the target
    assert (ratios["benchmark"] == "recipe").sum() == 1 and (tmp_path / "recipe.png").is_file()


def test_speed_defaults_smoke():
    """The study behind the trainer's "auto" speed settings times every arm against fp32 + contiguous."""
    stdout = _run("speed_defaults.py", "unet", "--batch", "1", "--crop", "64,128", "--steps", "1", "--warmup", "0")
    arms = [line.split()[0] for line in stdout.splitlines() if "median" in line]
    assert arms == ["fp32:contiguous", "fp32:channels_last", "bf16:contiguous", "bf16:channels_last"]
    assert "x1.00" in stdout
