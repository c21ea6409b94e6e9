"""Time seglab's ConfusionMatrix against the official Cityscapes pixel-level evaluation on the same frames.

Writes N random-but-structured 1024x2048 frames in the Cityscapes layout (``gtFine/val/<city>/*_gtFine_labelIds.png``
with every label id 0..33, void ones included, and ``pred/<city>/*_leftImg8bit.png`` labelIds predictions of train
classes, as seglab's benchmark export writes them), then times, each pair alternating, best of ``--repeat``:

* metric accumulation on images already decoded in memory: ``ConfusionMatrix.update`` (label ids -> train ids, one
  bincount) vs cityscapesscripts' ``evaluateImgLists``, whose ``PIL.Image.open`` is served from memory during the call;
* decoding the PNGs alone (OpenCV, one thread), what either pays on top when it reads files.

Asserts that class IoU, category IoU and the confusion matrix of every seglab run equal the official ones, prints the
ratios and writes ``outputs/benchmarks/eval.csv`` and ``eval.png``.

    .venv/bin/python benchmarks/bench_eval.py [--frames 10] [--height 1024 --width 2048] [--out outputs/benchmarks]
"""
from __future__ import annotations

import argparse
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
    prediction of train classes that is the shifted truth with wrong blobs."""
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
    _blobs(pred_train, list(rng.integers(0, len(CITYSCAPES_CLASSES), size=8)), rng, max_frac=0.2)
    return gt, TRAINID_TO_ID[pred_train]


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
    """The official confusion matrix (label id x label id, every pixel pair) as seglab's (19, 19) integer counts:
    rows the ground-truth train classes, columns the predicted train classes."""
    conf = np.asarray(official["confMatrix"])
    assert np.issubdtype(conf.dtype, np.integer), conf.dtype  # pixel counts, not rates
    conf = conf.astype(np.int64)
    ids = [lab.id for lab in CS_TRAIN_LABELS]
    counts = conf[np.ix_(ids, ids)]
    assert (counts.sum(axis=1) == conf[ids].sum(axis=1)).all(), "a prediction that is not a train class"
    return counts


def assert_same_scores(ours, official: dict, atol: float = 1e-9) -> None:
    """The confusion counts of seglab equal the official ones exactly; class IoU, category IoU and mIoU, computed
    from them, agree to float rounding."""
    counts = ours.matrix.cpu().numpy()
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, official_counts(official))
    np.testing.assert_allclose(ours.iou(), [official["classScores"][n] for n in CITYSCAPES_CLASSES], atol=atol)
    np.testing.assert_allclose(ours.category_iou(CITYSCAPES_CLASS_TO_CATEGORY, len(CITYSCAPES_CATEGORIES)),
                               [official["categoryScores"][c] for c in CITYSCAPES_CATEGORIES], atol=atol)
    np.testing.assert_allclose(ours.miou(), official["averageScoreClasses"], atol=atol)


def _decode_all(files: list[Path]) -> list[np.ndarray]:
    """Decode every PNG once, single-threaded: what reading files adds to either tool."""
    return [cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for path in files]


def _count_decoded(arrays: list[np.ndarray], frames: int):
    """seglab's counting alone on label ids already in memory (prediction arrays first, then ground truth)."""
    import torch

    from seglab.metrics import ConfusionMatrix

    cm = ConfusionMatrix(len(CITYSCAPES_CLASSES))
    for pred, gt in zip(arrays[:frames], arrays[frames:]):
        cm.update(torch.from_numpy(ID_TO_TRAINID[pred]), torch.from_numpy(ID_TO_TRAINID[gt]))
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

    fig = Figure(figsize=(9, 2.6), layout="constrained")
    ax = fig.subplots()
    barh(ax, table["tool"].str.replace(" (", "\n(", n=1, regex=False), table["seconds_per_frame"] * 1000,
         "{:.1f} ms", ["tab:gray", "tab:green", "tab:blue"])
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel(f"milliseconds per {height}x{width} frame (best of {repeat}; lower is better)")
    ax.set_title(f"Cityscapes pixel-level evaluation of {frames} frames on {machine()}: "
                 f"{table['speedup_vs_official'].iloc[1]:.1f}x accumulation, identical IoUs", fontsize=9)
    save_plot(fig, path)


def run(frames: int, height: int, width: int, out: Path, seed: int = 0, repeat: int = 3) -> list[dict]:
    """Time both tools on the same frames, check they agree, write eval.csv / eval.png; returns the rows."""
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        preds, gts = write_frames(tmp, frames, height, width, seed)
        arrays, decode_s = best_of(repeat, lambda: _decode_all(preds + gts))
        pil_images = _load_pil(preds + gts)
        memory, memory_seconds = alternate({"official": lambda: _official_in_memory(preds, gts, pil_images),
                                            "seglab": lambda: _count_decoded(arrays, frames)}, repeat)
    official = memory["official"]
    assert_same_scores(memory["seglab"], official)

    timings = [("cityscapesscripts accumulation (decoded images in memory, no Cython)", min(memory_seconds["official"]),
                official["averageScoreClasses"]),
               ("seglab ConfusionMatrix.update (decoded arrays, label ids -> train ids, one bincount per frame)",
                min(memory_seconds["seglab"]), memory["seglab"].miou()),
               ("PNG decoding alone (OpenCV, 1 thread; paid on top by reading files)", decode_s, float("nan"))]
    peers = [timings[0][1], timings[0][1], float("nan")]
    table = pd.DataFrame([{"tool": tool, "frames": frames, "height": height, "width": width, "seconds": seconds_,
                           "seconds_per_frame": seconds_ / frames, "speedup_vs_official": peer / seconds_,
                           "miou": miou, "repeat": repeat, "machine": machine()}
                          for (tool, seconds_, miou), peer in zip(timings, peers)])
    write_csv(table, out / "eval.csv")
    plot(table, frames, width, height, repeat, out / "eval.png")
    record_ratios(out, [
        ratio_row("eval", f"metric accumulation, {frames} frames of {height}x{width}", timings[1][1],
                  timings[0][1], "s", higher_is_better=False, peer_name="cityscapesscripts",
                  detail="both on decoded images; identical confusion matrix; seglab is the short bincount "
                         "version the lessons teach")])
    return table.to_dict("records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="time each tool this many times, keep the best")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    for row in run(args.frames, args.height, args.width, args.out, args.seed, args.repeat):
        print(f"  {row['tool']:<96} {row['seconds_per_frame'] * 1000:7.1f} ms/frame  "
              f"x{row['speedup_vs_official']:.1f}  mIoU {row['miou']:.4f}")
    print(f"wrote {args.out / 'eval.csv'} and {args.out / 'eval.png'}")


if __name__ == "__main__":
    main()
