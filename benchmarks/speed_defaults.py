"""Which speed settings pay for training on this machine: seglab's real ``Trainer.train_step`` in each arm of
(precision, memory format) — fp32 / bf16 x contiguous / channels_last — for one model and shape, against
fp32 + contiguous. The trainer's "auto" precision and memory format follow what this measures
(``seglab.toolbox.runtime.training_speed``; docs/training.md#speed-defaults).

Arms alternate step by step (A B C D A B ...) after warm-up steps, so slow phases of a shared machine hit every arm
alike; the ratio of each round is fp32 + contiguous time / arm time, and its median is reported. To see a CPU
without bf16 instructions on one that has them, cap oneDNN: ``ONEDNN_MAX_CPU_ISA=AVX512_CORE``.

    .venv/bin/python benchmarks/speed_defaults.py unet --batch 4 --crop 128,256
    ONEDNN_MAX_CPU_ISA=AVX512_CORE .venv/bin/python benchmarks/speed_defaults.py unet --arms fp32:contiguous,fp32:channels_last
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout even before `pip install -e .`
from benchmarks.common import comma_separated, load_average, machine  # noqa: E402

import torch  # noqa: E402

from seglab.config import TrainConfig  # noqa: E402
from seglab.engine import Trainer  # noqa: E402
from seglab.toolbox.synth import generate_minicity  # noqa: E402

ARMS = "fp32:contiguous,fp32:channels_last,bf16:contiguous,bf16:channels_last"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=comma_separated(int, 2), default=(128, 256), help="H,W")
    parser.add_argument("--arms", type=comma_separated(), default=ARMS.split(","), help="PRECISION:FORMAT,...")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    print(f"{machine()}; oneDNN ISA cap {os.environ.get('ONEDNN_MAX_CPU_ISA', 'none')}; load {load_average():.1f}")
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
        data = Path(tmp) / "minicity"
        generate_minicity(data, train=args.batch, val=1, test=0, height=args.crop[0], width=args.crop[1], workers=1)
        trainers = {}
        for arm in args.arms:
            precision, memory_format = arm.split(":")
            config = TrainConfig.preset("minicity_brief", model=args.model, data=str(data), out=f"{tmp}/{arm}",
                                        precision=precision, memory_format=memory_format, crop=tuple(args.crop),
                                        train_resize=1.0, zoom_range=(1.0, 1.0), batch_size=args.batch, workers=0,
                                        progress=False, tensorboard=False, device="cpu")
            trainers[arm] = Trainer(config, overwrite=True)
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(args.batch, 3, *args.crop, generator=generator)
        targets = torch.randint(0, 19, (args.batch, *args.crop), generator=generator)
        for trainer in trainers.values():
            for _ in range(args.warmup):
                float(trainer.train_step(images, targets))
        times: dict[str, list[float]] = {arm: [] for arm in trainers}
        for _ in range(args.steps):
            for arm, trainer in trainers.items():
                started = time.perf_counter()
                float(trainer.train_step(images, targets))  # reading the loss waits for the step
                times[arm].append(time.perf_counter() - started)
    base = times[args.arms[0]]
    print(f"{args.model}, batch {args.batch}, crop {args.crop[0]}x{args.crop[1]}; load {load_average():.1f}")
    for arm, values in times.items():
        ratios = [b / v for b, v in zip(base, values)]
        print(f"  {arm:22s} median {statistics.median(values) * 1e3:8.1f} ms   x{statistics.median(ratios):.2f} "
              f"(rounds {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
