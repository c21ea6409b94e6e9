"""Time seglab's ConfusionMatrix against the official Cityscapes pixel-level evaluation on the same PNG files.

Writes N random-but-structured 1024x2048 frames in the Cityscapes layout (``gtFine/val/<city>/*_gtFine_labelIds.png``
with every label id 0..33, void ones included, and ``pred/<city>/*_leftImg8bit.png`` labelIds predictions), then
times, each pair alternating, best of ``--repeat``:

* end to end, from the PNG files: ``seglab.metrics.evaluate_label_files`` vs cityscapesscripts'
  ``evaluateImgLists`` (evalPixelLevelSemanticLabeling);
* metric accumulation alone, on images already decoded in memory: ``ConfusionMatrix.update`` vs the same official
  ``evaluateImgLists``, whose ``PIL.Image.open`` is served from memory during the call (so neither decodes);
* decoding the PNGs alone (OpenCV, one thread), the floor both tools pay end to end.

Asserts that class IoU, category IoU and the confusion matrix of every seglab run equal the official ones, prints the
ratios and writes ``outputs/benchmarks/eval.csv`` and ``eval.png``.

    .venv/bin/python benchmarks/bench_eval.py [--frames 10] [--height 1024 --width 2048] [--out outputs/benchmarks]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout even before `pip install -e .`
from benchmarks.common import (DEFAULT_OUT, alternate, barh, best_of, machine, ratio_row, record_ratios,  # noqa: E402
                               save_plot, write_csv)
from seglab.labels import (CITYSCAPES_CATEGORIES, CITYSCAPES_CLASS_TO_CATEGORY, CITYSCAPES_CLASSES, CS_LABELS,
                           CS_TRAIN_LABELS, ID_TO_TRAINID, TRAINID_TO_ID)

CITY = "benchcity"
LABEL_IDS = sorted(lab.id for lab in CS_LABELS if lab.id >= 0)  # 0..33; license plate (-1) cannot be in a PNG


def _blobs(canvas: np.ndarray, values: list[int], rng: np.random.Generator, max_frac: float) -> None:
    """Paint one random filled rectangle or ellipse per value (regions, not salt-and-pepper noise)."""
    height, width = canvas.shape
    for value in values:
        h = int(rng.integers(4, max(5, int(height * max_frac))))
        w = int(rng.integers(4, max(5, int(width * max_frac))))
        y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        if rng.random() < 0.5:
            cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), int(value), thickness=-1)
        else:
            cv2.ellipse(canvas, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, int(value), thickness=-1)


def make_frame(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, prediction) as Cityscapes label ids: street-like bands, one blob of every id, and a
    prediction that is the shifted truth with wrong blobs and some void predictions (id 0)."""
    gt = np.empty((height, width), np.uint8)
    bands = [23, 11, 21, 7, 8]  # sky, building, vegetation, road, sidewalk from top to bottom
    for index, value in enumerate(bands):
        gt[index * height // len(bands):(index + 1) * height // len(bands)] = value
    _blobs(gt, list(rng.permutation(LABEL_IDS)), rng, max_frac=0.3)
    gt[-max(1, height // 12):] = 1  # ego vehicle at the bottom (void, ignored)

    train = ID_TO_TRAINID[gt]
    valid = train != 255
    train = np.where(valid, train, rng.integers(0, len(CITYSCAPES_CLASSES), size=train.shape)).astype(np.uint8)
    pred_train = np.roll(train, (int(rng.integers(1, 4)), int(rng.integers(1, 4))), axis=(0, 1))  # boundary errors
    _blobs(pred_train, list(rng.integers(0, len(CITYSCAPES_CLASSES), size=8)) + [255, 255], rng, max_frac=0.2)
    return gt, TRAINID_TO_ID[pred_train]  # trainId 255 -> id 0 (unlabeled): a void prediction


def write_frames(root: str | Path, frames: int, height: int, width: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Write ``frames`` pairs under ``root``; returns (prediction files, ground-truth files)."""
    root = Path(root)
    gt_dir, pred_dir = root / "gtFine" / "val" / CITY, root / "pred" / CITY
    gt_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for index in range(frames):
        name = f"{CITY}_{index:06d}_000019"
        gt, pred = make_frame(height, width, rng)
        gts.append(gt_dir / f"{name}_gtFine_labelIds.png")
        preds.append(pred_dir / f"{name}_leftImg8bit.png")
        cv2.imwrite(str(gts[-1]), gt)
        cv2.imwrite(str(preds[-1]), pred)
    return preds, gts


def official_counts(official: dict) -> np.ndarray:
    """The official confusion matrix (label id x label id, every pixel pair) as seglab's (19, 20) integer counts:
    rows the ground-truth train classes, columns the predicted train classes, then one column for the
    predictions of a void id (the official script counts them as false negatives of the row's class)."""
    conf = np.asarray(official["confMatrix"])
    assert np.issubdtype(conf.dtype, np.integer), conf.dtype  # pixel counts, not rates
    conf = conf.astype(np.int64)
    ids = [lab.id for lab in CS_TRAIN_LABELS]
    counts = np.zeros((len(ids), len(ids) + 1), dtype=np.int64)
    counts[:, :-1] = conf[np.ix_(ids, ids)]
    counts[:, -1] = conf[ids].sum(axis=1) - counts[:, :-1].sum(axis=1)
    return counts


def assert_same_scores(ours, official: dict, atol: float = 1e-9) -> None:
    """The confusion counts of seglab equal the official ones exactly (void-prediction column included); class IoU,
    category IoU and mIoU, computed from them, agree to float rounding."""
    counts = ours._counts.cpu().numpy()
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, official_counts(official))
    np.testing.assert_allclose(ours.iou(), [official["classScores"][n] for n in CITYSCAPES_CLASSES], atol=atol)
    np.testing.assert_allclose(ours.category_iou(CITYSCAPES_CLASS_TO_CATEGORY, len(CITYSCAPES_CATEGORIES)),
                               [official["categoryScores"][c] for c in CITYSCAPES_CATEGORIES], atol=atol)
    np.testing.assert_allclose(ours.miou(), official["averageScoreClasses"], atol=atol)


def _decode_all(files: list[Path]) -> list[np.ndarray]:
    """Decode every PNG once, single-threaded: the floor both tools pay before counting anything."""
    return [cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for path in files]


def _count_decoded(arrays: list[np.ndarray], frames: int):
    """seglab's counting alone on label ids already in memory (prediction arrays first, then ground truth)."""
    from seglab.fast_confusion import byte_pair_counts
    from seglab.metrics import ConfusionMatrix

    cm = ConfusionMatrix(len(CITYSCAPES_CLASSES))
    for pred, gt in zip(arrays[:frames], arrays[frames:]):
        cm._counts += byte_pair_counts(pred, gt, cm.num_classes, ID_TO_TRAINID)
    return cm


def _official_in_memory(preds: list[Path], gts: list[Path], images: dict) -> dict:
    """The official evaluation with ``PIL.Image.open`` answered from ``images`` (decoded PIL images by path)."""
    from unittest import mock

    from PIL import Image

    from seglab.metrics import official_cityscapes_eval

    with mock.patch.object(Image, "open", lambda path, *args, **kwargs: images[str(path)]):
        return official_cityscapes_eval(preds, gts)


def _load_pil(files: list[Path]) -> dict:
    from PIL import Image

    images = {}
    for path in files:
        with Image.open(path) as img:
            img.load()
            images[str(path)] = img.copy()
    return images


def plot(table, frames: int, width: int, height: int, repeat: int, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax = fig.subplots()
    barh(ax, table["tool"].str.replace(" (", "\n(", n=1, regex=False), table["seconds_per_frame"] * 1000,
         "{:.1f} ms", ["tab:gray", "tab:green", "tab:gray", "tab:green", "tab:blue"])
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel(f"milliseconds per {height}x{width} frame (best of {repeat}; lower is better)")
    end, acc = table["speedup_vs_official"].iloc[1], table["speedup_vs_official"].iloc[3]
    ax.set_title(f"Cityscapes pixel-level evaluation of {frames} frames on {machine()}: {end:.1f}x end to end, "
                 f"{acc:.1f}x accumulation, identical IoUs", fontsize=9)
    save_plot(fig, path)


def run(frames: int, height: int, width: int, out: Path, seed: int = 0, repeat: int = 3,
        workers: int | None = None) -> list[dict]:
    """Time both tools on the same files, check they agree, write eval.csv / eval.png; returns the rows."""
    import pandas as pd

    from seglab.metrics import evaluate_label_files, official_cityscapes_eval

    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        preds, gts = write_frames(tmp, frames, height, width, seed)
        files, seconds = alternate({"official": lambda: official_cityscapes_eval(preds, gts),
                                    "seglab": lambda: evaluate_label_files(preds, gts, workers=workers)}, repeat)
        arrays, decode_s = best_of(repeat, lambda: _decode_all(preds + gts))
        pil_images = _load_pil(preds + gts)
        memory, memory_seconds = alternate({"official": lambda: _official_in_memory(preds, gts, pil_images),
                                            "seglab": lambda: _count_decoded(arrays, frames)}, repeat)
    official = files["official"]
    for result in (files["seglab"], memory["seglab"]):
        assert_same_scores(result, official)
    assert memory["official"]["averageScoreClasses"] == official["averageScoreClasses"]

    threads = workers or min(8, os.cpu_count() or 1)
    timings = [("cityscapesscripts evalPixelLevelSemanticLabeling (from the PNG files, no Cython)",
                min(seconds["official"]), official["averageScoreClasses"]),
               (f"seglab evaluate_label_files (from the PNG files, {threads} threads: OpenCV decode + calcHist)",
                min(seconds["seglab"]), files["seglab"].miou()),
               ("cityscapesscripts accumulation (decoded images in memory)", min(memory_seconds["official"]),
                memory["official"]["averageScoreClasses"]),
               ("seglab fast_confusion.byte_pair_counts (decoded arrays, 1 call per frame)", min(memory_seconds["seglab"]),
                memory["seglab"].miou()),
               ("PNG decoding alone (OpenCV, 1 thread; paid by both end to end)", decode_s, float("nan"))]
    peers = [timings[0][1], timings[0][1], timings[2][1], timings[2][1], float("nan")]
    table = pd.DataFrame([{"tool": tool, "frames": frames, "height": height, "width": width, "seconds": seconds_,
                           "seconds_per_frame": seconds_ / frames, "speedup_vs_official": peer / seconds_,
                           "miou": miou, "repeat": repeat, "machine": machine()}
                          for (tool, seconds_, miou), peer in zip(timings, peers)])
    write_csv(table, out / "eval.csv")
    plot(table, frames, width, height, repeat, out / "eval.png")
    size = f"{frames} frames of {height}x{width}"
    record_ratios(out, [
        ratio_row("evaluation", f"metric accumulation, {size}", timings[3][1], timings[2][1], "s",
                  higher_is_better=False, peer_name="cityscapesscripts", target=10.0,
                  detail="both on decoded images; identical confusion matrix"),
        ratio_row("evaluation", f"end to end from PNG files, {size}", timings[1][1], timings[0][1], "s",
                  higher_is_better=False, peer_name="cityscapesscripts",
                  detail=f"PNG decoding alone {decode_s / frames * 1000:.0f} ms/frame (1 thread)")])
    return table.to_dict("records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="time each tool this many times, keep the best")
    parser.add_argument("--workers", type=int, default=None, help="reader threads for seglab (default: cores, <= 8)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    for row in run(args.frames, args.height, args.width, args.out, args.seed, args.repeat, args.workers):
        print(f"  {row['tool']:<92} {row['seconds_per_frame'] * 1000:7.1f} ms/frame  "
              f"x{row['speedup_vs_official']:.1f}  mIoU {row['miou']:.4f}")
    print(f"wrote {args.out / 'eval.csv'} and {args.out / 'eval.png'}")


if __name__ == "__main__":
    main()
