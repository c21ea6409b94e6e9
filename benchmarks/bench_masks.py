"""Time `seglab masks` against cityscapesscripts' json2labelImg on the same MiniCity polygon files.

Generates N MiniCity frames (default 1024x2048), then in one run:
  * official: json2labelImg for "ids", "trainIds" and "color", three calls per frame, one after another (how users
    run the official tool);
  * seglab: ``generate_masks`` (one rasterisation + lookup tables + fast PNG, default worker processes);
each timed ``--repeat`` times, alternating, best kept; checks that every output of both decodes to identical pixels
(PIL modes L, L, RGBA included), prints frames/s and the ratio, and writes
``outputs/benchmarks/masks.csv`` and ``masks.png``. ``--data ROOT`` uses the train split of an existing
Cityscapes-layout folder instead of generating frames.

    .venv/bin/python benchmarks/bench_masks.py [--frames 16] [--height 1024 --width 2048] [--workers N] [--repeat 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout even before `pip install -e .`
from benchmarks.common import (DEFAULT_OUT, alternate, barh, cores, machine, ratio_row, record_ratios,  # noqa: E402
                               save_plot, write_csv)
from seglab import masks  # noqa: E402
from seglab.toolbox.synth import generate_minicity  # noqa: E402

OFFICIAL_ENCODING = {"labelIds": "ids", "labelTrainIds": "trainIds", "color": "color"}


def run_official(frames: list[masks.Frame], out: Path) -> None:
    """json2labelImg three times per frame, sequentially (how users run the official tool)."""
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    for frame in frames:
        for encoding, path in frame.outputs(out).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            json2labelImg(str(frame.polygons), str(path), OFFICIAL_ENCODING[encoding])


def count_mismatches(frames: list[masks.Frame], ours: Path, official: Path) -> int:
    """Number of output files whose decoded pixels (or PNG mode) differ between the two tools."""
    mismatches = 0
    for frame in frames:
        for encoding, path in frame.outputs(ours).items():
            with Image.open(path) as a, Image.open(frame.outputs(official)[encoding]) as b:
                if a.mode != b.mode or not np.array_equal(np.array(a), np.array(b)):
                    mismatches += 1
                    print(f"MISMATCH {path.name}: {a.mode} vs {b.mode}", file=sys.stderr)
    return mismatches


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.png"))


def plot(table, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 2.4), layout="constrained")
    ax = figure.subplots()
    barh(ax, table["tool"], table["frames_per_s"], "{:.1f}", ["tab:gray", "tab:green"])
    row = table.iloc[-1]
    ax.set_xlabel(f"frames/s, 3 encodings per frame, {row['height']}x{row['width']} (higher is better)")
    ax.set_title(f"polygons -> masks on {machine()}: {row['speedup']:.1f}x faster with {row['workers']} workers, "
                 "identical pixels", fontsize=10)
    save_plot(figure, path)


def run(frames: int, height: int, width: int, workers: int | None, repeat: int, out: Path, data: Path | None = None):
    """Generate the frames (or use ``data``), time both tools ``repeat`` times alternating (best kept), check
    pixels, write CSV + PNG and the ratio."""
    import pandas as pd

    workers = workers or cores()
    with tempfile.TemporaryDirectory(prefix="bench_masks_") as tmp:
        root = data
        if root is None:
            root = Path(tmp) / "minicity"
            print(f"generating {frames} MiniCity frames at {height}x{width} ...", flush=True)
            generate_minicity(root, train=frames, val=0, test=0, height=height, width=width, seed=0)
        items = masks.find_frames(root, ["train"])
        first = masks.load_annotation(items[0].polygons)
        height, width = first["imgHeight"], first["imgWidth"]
        results, seconds = alternate({
            "official": lambda: run_official(items, Path(tmp) / "official"),
            "seglab": lambda: masks.generate_masks(root, Path(tmp) / "seglab", splits=["train"], workers=workers,
                                                   overwrite=True, progress=False)}, repeat)
        summary = results["seglab"]
        official_s, ours_s = min(seconds["official"]), min(seconds["seglab"])  # best of `repeat`, as timeit reports
        mismatches = count_mismatches(items, summary.out, Path(tmp) / "official")
        sizes = folder_bytes(Path(tmp) / "official"), folder_bytes(summary.out)

    common = {"frames": len(items), "height": height, "width": width, "cores": cores(),
              "repeat": repeat, "identical": mismatches == 0, "machine": machine()}
    table = pd.DataFrame([
        {"tool": "cityscapesscripts json2labelImg x3", "workers": 1, "seconds": official_s,
         "frames_per_s": len(items) / official_s, "speedup": 1.0, "mbytes": sizes[0] / 1e6, **common},
        {"tool": "seglab masks", "workers": summary.workers, "seconds": ours_s,
         "frames_per_s": len(items) / ours_s, "speedup": official_s / ours_s,
         "mbytes": sizes[1] / 1e6, **common},
    ])
    write_csv(table, out / "masks.csv")
    plot(table, out / "masks.png")
    record_ratios(out, [ratio_row(
        "masks", f"frames/s (3 encodings each), {len(items)} frames of {height}x{width}", len(items) / ours_s,
        len(items) / official_s, "frames/s", higher_is_better=True, peer_name="json2labelImg x3", target=4.0,
        detail=f"{summary.workers} workers; pixel-identical: {'yes' if mismatches == 0 else 'NO'}")])
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--data", type=Path, default=None, help="a Cityscapes-layout root whose train polygons to use")
    parser.add_argument("--workers", type=int, default=None, help="seglab worker processes (default: all cores)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each tool, alternating; best is kept")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    table = run(args.frames, args.height, args.width, args.workers, args.repeat, args.out, args.data)
    for row in table.itertuples():
        print(f"  {row.tool:<36} {row.workers} worker(s) {row.seconds:7.2f} s  {row.frames_per_s:6.2f} frames/s  "
              f"x{row.speedup:.2f}  {row.mbytes:.1f} MB of PNG")
    identical = bool(table["identical"].all())
    print(f"pixel-identical outputs: {'yes' if identical else 'NO'}; wrote {args.out / 'masks.csv'} and "
          f"{args.out / 'masks.png'} in {time.perf_counter() - started:.0f} s")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
