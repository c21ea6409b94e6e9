"""Samples/s of the Cityscapes training pipeline at full resolution (1024x2048 frames) with the default workers:
seglab's (CityscapesSegmentation: OpenCV decoding, label lookup table; train_transforms: scale, rotation and crop as
one warp of the crop window) against the usual torchvision one (torchvision.datasets.Cityscapes with PIL decoding,
then transforms.v2 RandomResize -> RandomRotation -> RandomCrop on the whole frame, the same flip and jitter), both
through a DataLoader as the trainer builds it.

Each round iterates one epoch of each pipeline (worker start-up included, as every training epoch pays it), the
pipelines alternating; samples/s = frames / fastest epoch (the least disturbed by other processes, as timeit
reports). More rows time seglab's dataset with the usual v2 chain instead of its one warp (the same decoding, so the
difference is the warp's alone: seglab.transforms.warp_crop is a speed trick, kept while this row shows it pays), in
the main process (0 workers), to show what the worker pool adds, and with its frames decoded once and kept in memory
(``--in-memory``). Every sample also reports the CPU seconds its loading took (in its worker), a cost that, unlike
samples/s, other processes' load does not change. Writes ``outputs/benchmarks/data.csv`` and ``data.png``.

    .venv/bin/python benchmarks/bench_data.py [--data ROOT] [--frames 16] [--crop 512,1024] [--workers 2] [--repeat 3]
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout even before `pip install -e .`
from benchmarks.common import (DEFAULT_OUT, alternate, barh, comma_separated, machine, ratio_row,  # noqa: E402
                               record_ratios, save_plot, write_csv)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms.v2.functional import pil_to_tensor  # noqa: E402

from seglab.labels import ID_TO_TRAINID  # noqa: E402


class PeerTransforms:
    """PIL image + labelIds target from torchvision's Cityscapes -> the same tensors seglab's dataset returns."""

    def __init__(self, transforms) -> None:
        self.transforms = transforms

    def __call__(self, image, target) -> tuple[torch.Tensor, torch.Tensor]:
        image_t = tv_tensors.Image(pil_to_tensor(image.convert("RGB")))
        mask_t = tv_tensors.Mask(torch.from_numpy(ID_TO_TRAINID[np.asarray(target)]))
        image_t, mask_t = self.transforms(image_t, mask_t)
        return image_t.as_subclass(torch.Tensor), mask_t.as_subclass(torch.Tensor).long()


def conventional_transforms(crop: tuple[int, int], base_size: int, zoom_range: tuple[float, float],
                            rotation: float = 10.0):
    """seglab's training chain with its one-warp geometry replaced by the usual transforms.v2 steps on the whole
    frame (resize, rotate, then crop); flip, jitter and normalisation are seglab's own, so only the geometry differs."""
    from torchvision.transforms import v2

    from seglab.transforms import RandomScaleRotateCrop, train_transforms

    ours = train_transforms(crop, base_size, zoom_range, rotation)
    warp, rest = ours.transforms[0], ours.transforms[1:]
    assert isinstance(warp, RandomScaleRotateCrop), "train_transforms no longer starts with its one-warp geometry"
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: 255}
    return v2.Compose([v2.RandomResize(*warp.size_range),
                       v2.RandomRotation(rotation, interpolation=v2.InterpolationMode.BILINEAR, fill=fill),
                       v2.RandomCrop(crop, pad_if_needed=True, fill=fill), *rest])


def pipelines(root: Path, crop: tuple[int, int], zoom_range: tuple[float, float]):
    """(seglab dataset with the trainer's training transforms, the same with the usual v2 chain instead, torchvision
    dataset with the usual v2 chain)."""
    from torchvision.datasets import Cityscapes

    from seglab.data import CityscapesSegmentation, native_size
    from seglab.transforms import train_transforms

    ours = CityscapesSegmentation(root, "train")
    base = min(native_size(ours))
    ours.transforms = train_transforms(crop, base, zoom_range)
    peer = Cityscapes(str(root), split="train", mode="fine", target_type="semantic",
                      transforms=PeerTransforms(conventional_transforms(crop, base, zoom_range)))
    if len(peer) != len(ours):
        raise SystemExit(f"error: torchvision finds {len(peer)} frames, seglab {len(ours)}, under {root}")
    chain = copy.copy(ours)
    chain.transforms = conventional_transforms(crop, base, zoom_range)
    return ours, chain, peer


class CpuTimed(torch.utils.data.Dataset):
    """``dataset`` whose samples also carry the CPU seconds their loading took in the process (worker) that loaded
    them: a figure that other processes' load does not change, unlike wall-clock samples/s."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        start = time.process_time()
        image, target = self.dataset[index]
        return image, target, time.process_time() - start


def epoch(dataset, batch: int, workers: int, seed: int) -> tuple[int, float]:
    """Iterate one shuffled epoch as the trainer's DataLoader does; returns (samples, CPU seconds spent on them)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(CpuTimed(dataset), batch_size=batch, shuffle=True, num_workers=workers, drop_last=False,
                        generator=torch.Generator().manual_seed(seed), persistent_workers=False)
    count, cpu = 0, 0.0
    for images, _, seconds in loader:
        count += images.shape[0]
        cpu += float(seconds.sum())
    return count, cpu


def plot(table, args, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 2.8), layout="constrained")
    ax = fig.subplots()
    colours = ["tab:gray", "tab:green", "tab:blue", "tab:olive", "tab:cyan"]
    barh(ax, table["pipeline"], table["samples_per_s"], "{:.2f}", colours[:len(table)])
    row = table.iloc[0]
    ax.set_xlabel(f"samples/s (higher is better): {row['frames']} frames of {row['height']}x{row['width']}, "
                  f"random scale {args.zoom_range[0]}-{args.zoom_range[1]}, rotation, crop {args.crop[0]}x"
                  f"{args.crop[1]}, flip, jitter")
    ax.set_title(f"Cityscapes train pipeline on {machine()}", fontsize=10)
    save_plot(fig, path)


def run(args) -> object:
    import pandas as pd
    from PIL import Image

    from seglab.toolbox.synth import generate_minicity

    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = args.data
        if root is None:
            root = Path(tmp) / "minicity"
            print(f"generating {args.frames} MiniCity frames at {args.height}x{args.width} ...", flush=True)
            generate_minicity(root, train=args.frames, val=0, test=0, height=args.height, width=args.width, seed=0)
        ours, chain, peer = pipelines(Path(root), args.crop, args.zoom_range)
        with Image.open(ours.image_path(0)) as img:
            width, height = img.size
        with_workers = f"seglab CityscapesSegmentation + one warp, {args.workers} workers"
        from_files = "seglab CityscapesSegmentation, main process (0 workers)" if args.workers else with_workers
        with_chain = f"seglab CityscapesSegmentation + v2 resize/rotate/crop, {args.workers} workers"
        arms = {
            f"torchvision Cityscapes (PIL) + v2 resize/rotate/crop, {args.workers} workers":
                lambda: epoch(peer, args.batch, args.workers, 0),
            with_workers: lambda: epoch(ours, args.batch, args.workers, 0),
            with_chain: lambda: epoch(chain, args.batch, args.workers, 0),
        }
        if args.workers:
            arms[from_files] = lambda: epoch(ours, args.batch, 0, 0)
        kept = copy.copy(ours)  # the same dataset with its frames decoded once (TrainConfig.in_memory)
        kept.keep_in_memory()
        in_memory = "seglab, frames kept in memory (--in-memory), main process (0 workers)"
        arms[in_memory] = lambda: epoch(kept, args.batch, 0, 0)
        results, seconds = alternate(arms, args.repeat)
    table = pd.DataFrame([{"pipeline": name, "workers": args.workers if "0 workers" not in name else 0,
                           "frames": results[name][0], "height": height, "width": width,
                           "crop": f"{args.crop[0]}x{args.crop[1]}", "batch": args.batch,
                           "epoch_seconds": min(seconds[name]), "samples_per_s": results[name][0] / min(seconds[name]),
                           "cpu_s_per_sample": results[name][1] / results[name][0],
                           "repeat": args.repeat, "machine": machine()} for name in arms])
    table["vs_torchvision"] = table["samples_per_s"] / table["samples_per_s"].iloc[0]
    write_csv(table, args.out / "data.csv")
    plot(table, args, args.out / "data.png")
    for row in table.itertuples():
        print(f"  {row.pipeline:<66} {row.samples_per_s:6.2f} samples/s  x{row.vs_torchvision:.2f}  "
              f"{row.cpu_s_per_sample:.3f} CPU s/sample")
    pipeline = f"{height}x{width} frames, crop {args.crop[0]}x{args.crop[1]}"
    ours, peer = table.iloc[1], table.iloc[0]
    cpu_per_sample = table.set_index("pipeline")["cpu_s_per_sample"]
    record_ratios(args.out, [
        ratio_row("data", f"train pipeline samples/s, {pipeline}, {args.workers} workers", ours["samples_per_s"],
                  peer["samples_per_s"], "samples/s", higher_is_better=True,
                  peer_name="torchvision Cityscapes + v2 chain"),
        ratio_row("data", f"train pipeline CPU seconds per sample, {pipeline}", ours["cpu_s_per_sample"],
                  peer["cpu_s_per_sample"], "s", higher_is_better=False, peer_name="torchvision Cityscapes + v2 chain",
                  detail="measured inside the loading process: independent of other processes' load"),
        ratio_row("data", f"train pipeline CPU seconds per sample, {pipeline}, frames kept in memory",
                  cpu_per_sample[in_memory], cpu_per_sample[from_files], "s", higher_is_better=False,
                  peer_name="frames decoded from their files at every step"),
        ratio_row("data", f"train transform geometry CPU seconds per sample, {pipeline}", cpu_per_sample[with_workers],
                  cpu_per_sample[with_chain], "s", higher_is_better=False,
                  peer_name="the same dataset with v2 RandomResize -> RandomRotation -> RandomCrop",
                  detail="one warp of the crop window (seglab.transforms.warp_crop) against the whole-frame chain")])
    return table


def main() -> None:
    from seglab.config import TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a Cityscapes-layout root (default: fresh MiniCity)")
    parser.add_argument("--frames", type=int, default=16, help="frames to generate when --data is not given")
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--crop", type=comma_separated(int, 2), default=(512, 1024), help="H,W")
    parser.add_argument("--zoom-range", type=comma_separated(float, 2), default=defaults.zoom_range)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="DataLoader workers (trainer default)")
    parser.add_argument("--repeat", type=int, default=3, help="epochs of each pipeline, alternating; best kept")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    started = time.perf_counter()
    args = parser.parse_args()
    run(args)
    print(f"wrote {args.out / 'data.csv'} and {args.out / 'data.png'} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
