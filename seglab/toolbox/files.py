"""Writing files so that they are never half-written (a temp file in the same folder, fsync, then os.replace), and
reading label PNGs.

Torch-free, so the mask generator and the plotting code can use it without importing torch.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

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


def write_png(path: str | os.PathLike, array: np.ndarray, durable: bool = True) -> None:
    """Write an (H, W) label map or an (H, W, 3) RGB / (H, W, 4) RGBA uint8 image as PNG, atomically and fast
    (``durable``: as in ``atomic_write``)."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(array), PNG_PARAMS)
    if not ok:
        raise SeglabError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, buffer, durable)


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
