"""Reading image files safely for ``seglab.data.read_image``: unreadable, empty, corrupt or truncated files fail with
a one-line error naming the fix (OpenCV silently fills a truncated JPEG with grey), and phone photos are turned
upright by their EXIF Orientation tag (which OpenCV ignores when asked for the pixels as stored)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from seglab.errors import SeglabError


def decode_image(path: str | Path) -> np.ndarray:
    """The pixels of ``path`` as OpenCV decodes them (``IMREAD_UNCHANGED``: BGR or BGRA order, 8 or 16 bits, as
    stored), or a SeglabError that says what is wrong with the file."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise SeglabError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if is_truncated_jpeg(data):
        raise SeglabError(f"image {path} is a truncated JPEG (no end-of-image marker); re-download or re-extract it")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise SeglabError(f"cannot read image {path}: the file is empty, corrupt or not an image; re-download it")
    return image


def is_truncated_jpeg(data: np.ndarray) -> bool:
    """JPEG data whose end-of-image marker (FF D9) is missing: OpenCV would silently return a partly grey image."""
    is_jpeg = data.size >= 4 and data[:2].tobytes() == b"\xff\xd8"
    return is_jpeg and not data[-1024:].tobytes().rstrip(b"\x00\n\r ").endswith(b"\xff\xd9")


# EXIF Orientation value -> the PIL transpose that shows the image as the camera meant (as PIL's exif_transpose)
_EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                   7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def exif_upright(image: np.ndarray, path: str | Path) -> np.ndarray:
    """``image`` (decoded from ``path``) turned as the file's EXIF Orientation tag says."""
    try:
        with Image.open(path) as img:
            orientation = img.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError):
        return image
    if orientation not in _EXIF_TRANSPOSE:
        return image
    return np.asarray(Image.fromarray(image).transpose(_EXIF_TRANSPOSE[orientation])).copy()
