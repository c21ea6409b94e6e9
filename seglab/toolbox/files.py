"""Writing files so that they are never half-written (a temp file in the same folder, fsync, then os.replace), and
reading label PNGs and polygon annotations with one-line errors for broken files.

Torch-free, so the mask generator and the plotting code can use it without importing torch.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from seglab.errors import SeglabError

# Fast PNG writing for label maps: zlib level 1, "up" filter, run-length strategy.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
              cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def atomic_write(path: str | os.PathLike, write: Callable[[str], object], durable: bool = True) -> None:
    """Call ``write(tmp_path)``, then rename the temp file onto ``path``; on any failure the old file stays intact.

    ``durable=False`` skips the fsync: the rename still means no half-written file after a crashed or interrupted
    process, only a power cut can lose it. For outputs that can be regenerated. The file gets the permissions a plain
    ``open()`` gives under the umask (mkstemp alone would leave it 0600).
    """
    path = Path(path)
    if path.is_dir():
        raise SeglabError(f"cannot write {path}: it is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise SeglabError(f"cannot write {path} ({exc.strerror or exc}); choose a writable output folder") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise SeglabError(f"could not write {path} ({exc.strerror or exc}); the previous file is kept intact — "
                          "free disk space or choose another output folder") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    """The process umask: from /proc on Linux (thread-safe), else by setting it and straight back."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview | np.ndarray, durable: bool = True) -> None:
    """Write raw bytes atomically (``durable``: as in ``atomic_write``)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
    atomic_write(path, write, durable)


def png_bytes(array: np.ndarray) -> bytes:
    """PNG file bytes, fast to encode, of an (H, W) label map or an (H, W, 3) RGB / (H, W, 4) RGBA uint8 image."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(array), PNG_PARAMS)
    if not ok:
        raise SeglabError(f"PNG encoding of a {array.dtype} {array.shape} array failed")
    return buffer.tobytes()


def write_png(path: str | os.PathLike, array: np.ndarray, durable: bool = True) -> None:
    """Write ``png_bytes(array)`` atomically (``durable``: as in ``atomic_write``)."""
    atomic_write_bytes(path, png_bytes(array), durable)


def read_label_png(path: str | Path) -> np.ndarray:
    """A single-channel 8-bit label PNG (plain or palette) as its raw index values, (H, W) uint8."""
    try:
        with Image.open(path) as img:
            mode = img.mode
            array = np.asarray(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise SeglabError(f"cannot read label {path}: {exc}; the file is corrupt, re-download it") from None
    if mode not in ("L", "P"):
        kind = "a colour (RGB) rendering" if mode.startswith("RGB") else f"a {mode!r} image (e.g. 16-bit)"
        raise SeglabError(f"label {path} is {kind}, but an 8-bit index/palette PNG is expected; use the "
                          "*_labelIds.png / *_labelTrainIds.png / SegmentationClass files, not the colour ones")
    return np.array(array, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on read-only arrays


def load_annotation(path: str | os.PathLike) -> dict:
    """Parse one ``*_gtFine_polygons.json``; unreadable or invalid JSON is a SeglabError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            annotation = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SeglabError(f"{path}: cannot read polygon annotation ({exc}); regenerate or re-download it") from None
    if not isinstance(annotation, dict):
        raise SeglabError(f"{path}: expected a JSON object with imgHeight, imgWidth and objects")
    return annotation


def _is_number(value: Any) -> bool:
    """A finite int or float (bools, strings and NaN are not coordinates)."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def checked_polygons(annotation: Any, source: str) -> tuple[tuple[int, int], list[tuple[dict, list]]]:
    """(width, height) of a polygon annotation and each object with its points as a flat [x0, y0, x1, y1, ...] list
    (values untouched, as PIL receives them); every object is checked, deleted ones too, as the official parser."""
    if not isinstance(annotation, dict):
        raise SeglabError(f"{source}: expected a JSON object with imgHeight, imgWidth and objects")
    size = []
    for key in ("imgWidth", "imgHeight"):
        value = annotation.get(key)
        if value is None:
            raise SeglabError(f"{source}: missing {key!r}; every polygon file needs imgHeight and imgWidth")
        if not (_is_number(value) and value == int(value) and value > 0):
            raise SeglabError(f"{source}: {key} must be a positive integer, got {value!r}")
        size.append(int(value))
    objects = annotation.get("objects", [])
    if not isinstance(objects, list):
        raise SeglabError(f"{source}: 'objects' must be a list of {{label, polygon}} objects")
    checked = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or "label" not in obj:
            raise SeglabError(f"{source}: object {index} is not a {{label, polygon}} object")
        what = f"{source}: object {index} ({obj.get('label')!r})"
        if not isinstance(obj.get("polygon"), list):
            raise SeglabError(f"{what} has no 'polygon' list of [x, y] points")
        for point in obj["polygon"]:
            if not (isinstance(point, list | tuple) and len(point) == 2 and all(map(_is_number, point))):
                raise SeglabError(f"{what} has a polygon point {point!r} that is not [x, y] with numeric coordinates")
        checked.append((obj, [value for point in obj["polygon"] for value in point]))
    return (size[0], size[1]), checked
