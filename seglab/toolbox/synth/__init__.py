"""The embedded synthetic datasets, written in the official on-disk layouts so the real loaders read them.

* MiniCity: Cityscapes ``leftImg8bit/`` + ``gtFine/`` (polygons JSON, labelIds, instanceIds, color).
* MiniVOC: ``VOCdevkit/VOC2012`` (JPEGImages, SegmentationClass, ImageSets/Segmentation) and the SBD release
  ``benchmark_RELEASE/dataset`` (img, cls/*.mat, train.txt, val.txt).

Output is deterministic per seed (each image has its own RNG, so any number of worker processes gives the same
bytes) and appears atomically: it is built in a hidden sibling folder and renamed into place at the end.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from seglab.errors import SeglabError
from seglab.toolbox.parallel import run_parallel
from seglab.toolbox.synth import minicity, minivoc
from seglab.toolbox.synth.minicity import CITIES, EVAL_IDS, build_scene, frame_name, render
from seglab.toolbox.synth.minivoc import OBJECT_CLASSES, render_sample

__all__ = ["generate_minicity", "generate_minivoc", "minicity_frame", "minivoc_sample", "CITIES",
           "MINICITY_SIZE_LIMITS", "MINIVOC_SIZE_LIMITS", "build_scene", "render", "frame_name", "render_sample"]

MINICITY_SIZE_LIMITS = ((64, 1024), (128, 2048))  # (height range, width range)
MINIVOC_SIZE_LIMITS = ((64, 1024), (64, 1024))


def minicity_frame(split: str = "train", index: int = 0, height: int = 256, width: int = 512,
                   seed: int = 0) -> minicity.Frame:
    """One MiniCity frame in memory (photo, polygon annotation, instanceIds; labelIds and color as properties)."""
    _check_args("MiniCity", {}, height, width, seed, MINICITY_SIZE_LIMITS)
    if split not in CITIES:
        raise SeglabError(f"unknown MiniCity split {split!r}; choose one of {', '.join(CITIES)}")
    if index < 0:
        raise SeglabError(f"frame index must be >= 0, got {index}")
    return render(build_scene(seed, split, index), height, width)


def minivoc_sample(classes: Sequence[str], number: int = 0, height: int = 256, width: int = 320,
                   seed: int = 0) -> minivoc.Sample:
    """One MiniVOC image with the given object classes (photo, class map, VOC map with 255 borders)."""
    _check_args("MiniVOC", {}, height, width, seed, MINIVOC_SIZE_LIMITS)
    unknown = [c for c in classes if c not in OBJECT_CLASSES]
    if unknown or not 1 <= len(classes) <= 3:
        raise SeglabError(f"give 1 to 3 VOC object classes from {', '.join(OBJECT_CLASSES)}; got {list(classes)}")
    if number < 0:
        raise SeglabError(f"image number must be >= 0, got {number}")
    return render_sample(seed, number, tuple(classes), height, width)


# ------------------------------------------------------------------------------------------------ generators
def generate_minicity(out: str | os.PathLike, *, train: int = 300, val: int = 10, test: int = 5, height: int = 256,
                      width: int = 512, seed: int = 0, overwrite: bool = False, workers: int | None = None) -> str:
    """Write MiniCity (train/val/test frames of ``height`` x ``width``) to ``out``; returns a printable summary."""
    counts = {"train": train, "val": val, "test": test}
    _check_args("MiniCity", counts, height, width, seed, MINICITY_SIZE_LIMITS)
    tasks = [(split, i) for split, n in counts.items() for i in range(n)]
    results, seconds = _write_all("MiniCity", minicity.write_frame, tasks, out, overwrite, workers, seed=seed,
                                  height=height, width=width)
    present = {split: set() for split in counts}
    for split, ids in results:
        present[split].update(ids)
    lines = [f"MiniCity: {len(tasks)} frames of {height}x{width} (train {train}, val {val}, test {test}, seed {seed}) "
             f"written to {out} in {seconds:.1f} s"]
    for split in ("train", "val"):
        if counts[split]:
            lines.append(f"  {split}: {len(EVAL_IDS & present[split])}/{len(EVAL_IDS)} evaluation classes present")
    lines.append(f"  read it with torchvision.datasets.Cityscapes({str(out)!r}, split='train', mode='fine', "
                 "target_type='semantic')")
    return "\n".join(lines)


def generate_minivoc(out: str | os.PathLike, *, train: int = 40, val: int = 15, sbd: int = 10, height: int = 256,
                     width: int = 320, seed: int = 0, overwrite: bool = False, workers: int | None = None) -> str:
    """Write MiniVOC (VOC 2012 train/val + SBD with ``sbd`` extra images) to ``out``; returns a summary.

    Images are about ``height`` x ``width``: each is 82-100 % of it in each direction, as VOC sizes vary.
    """
    counts = {"train": train, "val": val, "sbd": sbd}
    _check_args("MiniVOC", counts, height, width, seed, MINIVOC_SIZE_LIMITS)
    tasks = minivoc.plan(seed, train, val, sbd)
    results, seconds = _write_all("MiniVOC", minivoc.write_sample, tasks, out, overwrite, workers, minivoc.write_lists,
                                  seed=seed, height=height, width=width)
    present: dict[str, set[int]] = {"train": set(), "val": set()}
    for (_, _, _, voc_split, _), (_, classes) in zip(tasks, results):
        if voc_split:
            present[voc_split].update(classes)
    sbd_train = sum(1 for t in tasks if t[4] == "train")
    lines = [f"MiniVOC: {len(tasks)} images of about {height}x{width} (VOC train {train}, val {val}; "
             f"SBD train {sbd_train}, val {sum(1 for t in tasks if t[4] == 'val')}, {sbd} of them SBD-only; "
             f"seed {seed}) written to {out} in {seconds:.1f} s"]
    for split in ("train", "val"):
        if counts[split]:
            lines.append(f"  VOC {split}: {len(present[split])}/{len(OBJECT_CLASSES)} object classes present")
    lines.append(f"  read it with torchvision.datasets.VOCSegmentation({str(out)!r}, year='2012', image_set='train') "
                 f"and SBDataset('{Path(out) / 'benchmark_RELEASE' / 'dataset'}', mode='segmentation')")
    return "\n".join(lines)


def _write_all(name: str, write: Callable, tasks: list, out: str | os.PathLike, overwrite: bool, workers: int | None,
               finish: Callable[[Path, list], None] | None = None, **settings) -> tuple[list, float]:
    """Run ``write(root, task, **settings)`` per task in workers, then ``finish(root, tasks)``; (results, seconds)."""
    start = time.perf_counter()
    with _staged_output(out, overwrite) as root:
        results = run_parallel(partial(write, str(root), **settings), tasks, workers, name, "img")
        if finish is not None:
            finish(root, tasks)
    return results, time.perf_counter() - start


def _check_args(name: str, counts: dict[str, int], height: int, width: int, seed: int, limits: tuple) -> None:
    """Refuse image counts, sizes outside ``limits`` ((height range), (width range)) and seeds that make no sense."""
    for flag, value in counts.items():
        if not _is_whole(value, 0):
            raise SeglabError(f"--{flag} must be a whole number >= 0, got {value!r}")
    if counts and not any(counts.values()):
        raise SeglabError(f"nothing to generate: {', '.join(f'--{k}' for k in counts)} are all 0; ask for at least "
                          "one image")
    for flag, value, (lo, hi) in (("height", height, limits[0]), ("width", width, limits[1])):
        if not _is_whole(value, lo, hi):
            raise SeglabError(f"{name} --{flag} must be between {lo} and {hi} pixels, got {value!r}")
    if not _is_whole(seed, 0):
        raise SeglabError(f"--seed must be a whole number >= 0, got {seed!r}")


def _is_whole(value: object, lo: int, hi: float = float("inf")) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


@contextmanager
def _staged_output(out: str | os.PathLike, overwrite: bool) -> Iterator[Path]:
    """Yield a hidden temp folder next to ``out``; on success it replaces ``out`` (old content removed last).

    A non-empty ``out`` is refused unless ``overwrite``; on any error the temp folder is removed and ``out`` is
    left exactly as it was.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SeglabError(f"--out {out} is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SeglabError(f"--out {out} is not empty; pass --overwrite to replace it or choose another folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise SeglabError(f"cannot create a folder next to {out}: {exc.strerror}; choose a writable --out") from None
    try:
        yield staging
        staging.chmod(0o755)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old)  # a directory may replace an empty directory
        try:
            os.replace(staging, out)
        except OSError:
            if old is not None:
                os.replace(old, out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
