"""Training throughput of every model with seglab's trainer defaults against a plain fp32 loop, and a learning curve
showing that the faster step learns as well.

Both arms start from the same weights (same seed), use the same optimizer, learning-rate schedule, gradient clipping,
loss, crop, batch and the very same batches (drawn once from the MiniCity train pipeline and kept in memory, so data
loading, measured by bench_data.py, does not blur the comparison):

* plain: the textbook loop (fp32, contiguous tensors): ``loss = cross_entropy(model(x), y); zero_grad; backward;
  clip; step``;
* seglab: ``Trainer.train_step`` with the trainer's "auto" precision and memory format (what
  ``seglab.toolbox.runtime.training_speed`` picks for the device and the step's size).

Steps of the two arms alternate (plain, seglab, plain, ...) after one warm-up step each, so load from other processes
hits both alike; images/s = batch / fastest step (the one least disturbed by other processes, as timeit reports). The
CPU seconds of each step (all threads of the process) are recorded too (CSV): on a shared machine they barely move
with other processes' load. Each step's FLOPs (forward + backward, counted once on the ``meta`` device) over its
seconds give the achieved GFLOP/s of each arm, next to the fp32 and bf16 matmul peaks measured before and after in
the same run: a model whose plain fp32 step already runs near the fp32 peak cannot gain more from bf16 than the
ratio of the two peaks (the ``ceiling_speedup`` column: seglab's step at its precision's peak). Every model is
measured at each batch size of ``--batch`` (default 2 and 8: bf16's gain grows with the batch, as fp32 falls out of
the caches). Then one model trains ``--curve-steps`` steps in both arms on
the same batches, and both are validated. Writes ``outputs/benchmarks/train.csv``, ``train_curve.csv``, ``train.png``.

    .venv/bin/python benchmarks/bench_train.py [--models unet,fcn8s] [--crop 256,512 --batch 2,8] [--curve-steps 80]

A short GPU run at 1024x2048 (make gpu-check, about a minute): ``--device cuda --models unet,fcn8s --crop 1024,2048
--data-size 1024,2048 --train-frames 8 --val-frames 2 --batch 2 --steps 5 --curve-steps 20``.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout even before `pip install -e .`
from benchmarks.common import (DEFAULT_OUT, barh, comma_separated, machine, matmul_peaks, ratio_row,  # noqa: E402,I001
                               record_ratios, save_plot, write_csv)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from seglab.labels import IGNORE_INDEX  # noqa: E402
from seglab.toolbox.profiling import step_flops  # noqa: E402

TARGET = 2.5  # the goal for images/s, seglab defaults over the plain fp32 loop


def plain_step(trainer, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The textbook fp32 step on the plain trainer's model, optimizer and schedule (no autocast, no channels_last)."""
    model, optimizer = trainer.model, trainer.optimizer
    images, targets = images.to(trainer.device), targets.to(trainer.device)
    loss = F.cross_entropy(model(images), targets, ignore_index=IGNORE_INDEX)
    optimizer.zero_grad()
    loss.backward()
    if trainer.config.grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), trainer.config.grad_clip)
    optimizer.step()
    trainer.scheduler.step()
    return loss.detach()


def make_trainers(config, out: Path):
    """(plain, seglab) Trainers built from the same config and seed; plain is fp32 with contiguous tensors."""
    from seglab.engine import Trainer

    plain = Trainer(dataclasses.replace(config, precision="fp32", memory_format="contiguous", out=str(out / "plain")))
    seglab = Trainer(dataclasses.replace(config, out=str(out / "seglab")))
    plain.model.train()
    seglab.model.train()
    return plain, seglab


def draw_batches(dataset, batch: int, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` augmented batches from the train pipeline, deterministic for ``seed`` (cycling over the data)."""
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    batches: list = []
    epoch = 0
    while len(batches) < count:
        loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=0,
                            generator=torch.Generator().manual_seed(seed + epoch))
        for pair in loader:
            batches.append(pair)
            if len(batches) == count:
                break
        epoch += 1
    return batches


def alternate_steps(plain, seglab, batches, seed: int, warmup: int) -> dict[str, list]:
    """Run both arms over ``batches`` step by step, alternating; returns per-step wall seconds, CPU seconds (all
    threads of this process) and losses of each."""
    from seglab.toolbox.runtime import synchronize

    record: dict[str, list] = {f"{arm}_{what}": [] for arm in ("plain", "seglab") for what in ("s", "cpu", "loss")}
    for step, (images, targets) in enumerate(batches):
        for arm, work in (("plain", lambda: plain_step(plain, images, targets)),
                          ("seglab", lambda: seglab.train_step(images, targets))):
            torch.manual_seed(seed + step)  # same dropout / random state in both arms
            synchronize(seglab.device)
            start, cpu = time.perf_counter(), time.process_time()
            loss = work()
            synchronize(seglab.device)
            if step >= warmup:
                record[f"{arm}_s"].append(time.perf_counter() - start)
                record[f"{arm}_cpu"].append(time.process_time() - cpu)
            record[f"{arm}_loss"].append(float(loss))
    return record


def schedule_epochs(frames: int, batch: int, steps: int) -> int:
    """Epochs whose LR schedule (warm-up, then decay to zero) spans ``steps`` steps of ``batch`` over ``frames``."""
    return math.ceil(steps / max(1, frames // batch))


def throughput(config, model: str, batch: int, frames: int, args, work: Path) -> dict:
    """images/s of both arms for one model at the benchmark crop and ``batch``."""
    plain, seglab = make_trainers(dataclasses.replace(config, model=model, crop=args.crop, batch_size=batch,
                                                      epochs=schedule_epochs(frames, batch, args.warmup + args.steps)),
                                  work / f"{model}_{batch}")
    batches = draw_batches(seglab.train_set, batch, args.warmup + args.steps, args.seed)
    record = alternate_steps(plain, seglab, batches, args.seed, args.warmup)
    plain_s, seglab_s = min(record["plain_s"]), min(record["seglab_s"])
    plain_cpu, seglab_cpu = min(record["plain_cpu"]), min(record["seglab_cpu"])
    gflop = step_flops(plain.model, batch, args.crop) / 1e9
    row = {"model": model, "crop": f"{args.crop[0]}x{args.crop[1]}", "batch": batch, "device": str(seglab.device),
           "seglab_precision": seglab.precision,
           "seglab_layout": "channels_last" if seglab.channels_last else "contiguous", "timed_steps": args.steps,
           "plain_images_per_s": batch / plain_s, "seglab_images_per_s": batch / seglab_s,
           "speedup": plain_s / seglab_s, "plain_cpu_s_per_image": plain_cpu / batch,
           "seglab_cpu_s_per_image": seglab_cpu / batch, "cpu_speedup": plain_cpu / seglab_cpu,
           "step_gflop": gflop, "plain_gflops_per_s": gflop / plain_s, "seglab_gflops_per_s": gflop / seglab_s}
    print(f"  {model:<14} batch {batch:<3} plain fp32 {row['plain_images_per_s']:6.2f} img/s   seglab {seglab.precision} + "
          f"{row['seglab_layout']} {row['seglab_images_per_s']:6.2f} img/s   x{row['speedup']:.2f}   GFLOP/s "
          f"{row['plain_gflops_per_s']:.0f} vs {row['seglab_gflops_per_s']:.0f}   CPU s/image "
          f"{row['plain_cpu_s_per_image']:.2f} vs {row['seglab_cpu_s_per_image']:.2f}", flush=True)
    return row


def add_ceilings(table, peaks: dict[str, float]) -> None:
    """Columns relating each arm's achieved GFLOP/s to the matmul peak of its precision, and the speedup seglab's
    step would have at its precision's peak (its ceiling, given how close the plain step already is to fp32's)."""
    table["plain_peak_gflops_per_s"] = peaks["fp32"]
    table["seglab_peak_gflops_per_s"] = table["seglab_precision"].map(peaks)
    table["plain_fraction_of_peak"] = table["plain_gflops_per_s"] / table["plain_peak_gflops_per_s"]
    table["seglab_fraction_of_peak"] = table["seglab_gflops_per_s"] / table["seglab_peak_gflops_per_s"]
    table["ceiling_speedup"] = table["seglab_peak_gflops_per_s"] / table["plain_gflops_per_s"]
    for row in table.itertuples():
        print(f"  {row.model:<14} batch {row.batch:<3} plain at {row.plain_fraction_of_peak:4.0%} of the fp32 peak, "
              f"seglab at {row.seglab_fraction_of_peak:4.0%} of the {row.seglab_precision} peak: x{row.speedup:.2f} "
              f"of at most x{row.ceiling_speedup:.2f}", flush=True)


def learning_curve(config, frames: int, args, work: Path) -> tuple:
    """Both arms trained ``curve_steps`` steps on the same batches, then validated: (per-step table, summary)."""
    import pandas as pd

    # the LR schedule spans exactly the steps run (warm-up, then decay to zero), as in a real run of that length
    plain, seglab = make_trainers(dataclasses.replace(config, model=args.curve_model, crop=args.curve_crop,
                                                      batch_size=args.batch[0],
                                                      epochs=schedule_epochs(frames, args.batch[0], args.curve_steps)),
                                  work / "curve")
    batches = draw_batches(seglab.train_set, args.batch[0], args.curve_steps, args.seed + 1)
    record = alternate_steps(plain, seglab, batches, args.seed, warmup=0)
    curve = pd.DataFrame({"step": range(1, args.curve_steps + 1), "plain_loss": record["plain_loss"],
                          "seglab_loss": record["seglab_loss"]})
    plain_metrics, plain_val_loss = plain.validate()
    seglab_metrics, seglab_val_loss = seglab.validate()
    summary = {"model": args.curve_model, "steps": args.curve_steps, "crop": f"{args.curve_crop[0]}x{args.curve_crop[1]}",
               "plain_miou": plain_metrics["miou"], "seglab_miou": seglab_metrics["miou"],
               "plain_val_loss": plain_val_loss, "seglab_val_loss": seglab_val_loss,
               "plain_seconds": sum(record["plain_s"]), "seglab_seconds": sum(record["seglab_s"])}
    print(f"  {args.curve_model} after {args.curve_steps} steps: val mIoU plain fp32 {summary['plain_miou']:.4f}, "
          f"seglab {seglab.precision} {summary['seglab_miou']:.4f}; training time {summary['plain_seconds']:.0f} s vs "
          f"{summary['seglab_seconds']:.0f} s", flush=True)
    return curve, summary


def plot(table, curve, summary: dict, device: str, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(17, max(3.2, 0.55 * len(table) + 1.4)), layout="constrained")
    ax_speed, ax_peak, ax_curve = fig.subplots(1, 3, width_ratios=[1.1, 0.6, 1])
    labels, values, fractions, colors = [], [], [], []
    for row in table.itertuples():
        labels += [f"{row.model} b{row.batch} plain fp32", f"{row.model} b{row.batch} seglab"]
        values += [row.plain_images_per_s, row.seglab_images_per_s]
        fractions += [100 * row.plain_fraction_of_peak, 100 * row.seglab_fraction_of_peak]
        colors += ["tab:gray", "tab:green"]
    barh(ax_speed, labels, values, "{:.2f}", colors)
    barh(ax_peak, labels, fractions, "{:.0f}%", colors)
    ax_peak.set_yticks([])
    ax_peak.set_xlabel("% of the matmul peak of the arm's precision")
    ax_peak.set_title("how close each step is to the machine's ceiling", fontsize=10)
    row = table.iloc[0]
    ax_speed.set_xlabel(f"training images/s, crop {row['crop']}, batch b (higher is better)")
    ax_speed.set_title(f"seglab ({row['seglab_precision']} + {row['seglab_layout']}) vs plain fp32 loop: "
                       f"x{table['speedup'].min():.1f}-{table['speedup'].max():.1f}", fontsize=10)
    window = max(1, len(curve) // 10)
    # plain drawn last and dashed: the two curves often coincide, and both must stay visible
    for arm, color, style in (("seglab", "tab:green", "-"), ("plain", "tab:gray", "--")):
        ax_curve.plot(curve["step"], curve[f"{arm}_loss"], color=color, alpha=0.3, linewidth=1, linestyle=style)
        label = f"{arm}: val mIoU {summary[f'{arm}_miou']:.3f} ({summary[f'{arm}_seconds']:.0f} s)"
        ax_curve.plot(curve["step"], curve[f"{arm}_loss"].rolling(window, min_periods=1).mean(), color=color,
                      linewidth=2, linestyle=style, label=label)
    ax_curve.set_xlabel(f"step ({summary['model']}, crop {summary['crop']}, same batches in both arms)")
    ax_curve.set_ylabel("training loss")
    ax_curve.legend(fontsize=9)
    ax_curve.set_title(f"learning curves after {summary['steps']} steps", fontsize=10)
    fig.suptitle(f"training on {machine(device)}", fontsize=10)
    save_plot(fig, path)


def prepare_data(args, tmp: Path) -> Path:
    """The dataset to train on: ``--data`` as given, else a fresh MiniCity in a temporary folder."""
    if args.data is not None:
        return args.data
    from seglab.toolbox.synth import generate_minicity

    root = tmp / "minicity"
    generate_minicity(root, train=args.train_frames, val=args.val_frames, test=0, height=args.data_size[0],
                      width=args.data_size[1], seed=args.seed)
    return root


def run(args) -> tuple:
    import pandas as pd

    from seglab.config import TrainConfig
    from seglab.data import build_dataset
    from seglab.models import NATIVE_MODEL_NAMES
    from seglab.toolbox.runtime import resolve_device, resolve_precision

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        data = prepare_data(args, Path(tmp))
        frames = len(build_dataset("cityscapes", data, "train"))
        config = TrainConfig(data=str(data), device=args.device, seed=args.seed, workers=0, progress=False)
        precisions = list(dict.fromkeys(["fp32", resolve_precision(config.precision, resolve_device(args.device))]))
        before = matmul_peaks(precisions, args.device, args.matmul_size)

        print(f"training throughput, crop {args.crop[0]}x{args.crop[1]}, batch {args.batch}:", flush=True)
        table = pd.DataFrame([throughput(config, model, batch, frames, args, Path(tmp)) for batch in args.batch
                              for model in args.models or NATIVE_MODEL_NAMES])
        after = matmul_peaks(precisions, args.device, args.matmul_size)
        add_ceilings(table, {p: max(before[p], after[p]) for p in precisions})
        curve, summary = learning_curve(config, frames, args, Path(tmp))
    table["machine"] = machine(args.device)
    suffix = "" if args.device == "cpu" else "_gpu"
    write_csv(table, args.out / f"train{suffix}.csv")
    curve["plain_val_miou"], curve["seglab_val_miou"] = summary["plain_miou"], summary["seglab_miou"]
    write_csv(curve, args.out / f"train_curve{suffix}.csv")
    plot(table, curve, summary, args.device, args.out / f"train{suffix}.png")
    rows = [ratio_row("training", f"{row.model} images/s, crop {row.crop}, batch {row.batch}", row.seglab_images_per_s,
                      row.plain_images_per_s, "img/s", higher_is_better=True, peer_name="plain fp32 loop",
                      target=TARGET, device=args.device,
                      detail=f"plain {row.plain_fraction_of_peak:.0%} of the fp32 matmul peak, seglab "
                      f"{row.seglab_fraction_of_peak:.0%} of the {row.seglab_precision} peak; ceiling "
                      f"x{row.ceiling_speedup:.2f}") for row in table.itertuples()]
    rows.append(ratio_row("training", f"{summary['model']} val mIoU after {summary['steps']} steps, crop "
                          f"{summary['crop']}", summary["seglab_miou"], summary["plain_miou"], "mIoU",
                          higher_is_better=True, peer_name="plain fp32 loop", device=args.device,
                          detail=f"training seconds {summary['seglab_seconds']:.0f} vs {summary['plain_seconds']:.0f}"))
    record_ratios(args.out, rows)
    print(f"wrote train CSV/PNG under {args.out} in {time.perf_counter() - started:.0f} s")
    return table, curve, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--models", type=comma_separated(), default=None,
                        help="comma-separated registry names (default: all)")
    parser.add_argument("--crop", type=comma_separated(int, 2), default=(256, 512), help="H,W of the throughput crops")
    parser.add_argument("--batch", type=comma_separated(int), default=[2, 8],
                        help="batch sizes of the throughput runs, comma-separated (the learning curve uses the first)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per arm and model")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per arm and model")
    parser.add_argument("--curve-model", default="unet")
    parser.add_argument("--curve-steps", type=int, default=80)
    parser.add_argument("--curve-crop", type=comma_separated(int, 2), default=(128, 256), help="H,W of the learning-curve crops")
    parser.add_argument("--data", type=Path, default=None, help="a Cityscapes-layout root (default: a fresh MiniCity)")
    parser.add_argument("--data-size", type=comma_separated(int, 2), default=(256, 512), help="H,W of the generated MiniCity")
    parser.add_argument("--train-frames", type=int, default=16)
    parser.add_argument("--val-frames", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--matmul-size", type=int, default=None, help="n of the n x n peak-measuring matmul (default "
                        "4096 CPU, 8192 CUDA)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
