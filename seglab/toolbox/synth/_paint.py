"""Drawing primitives shared by the MiniCity and MiniVOC generators: shapes, textures, fills, camera, files.

Images are float32 RGB in [0, 1] while drawing; a texture is a zero-mean luminance modulation, so one colour plus one
texture kind describes a surface. Sizes are in *reference* pixels times ``scale``, so scenes look alike at any size.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import cv2
import numpy as np

Color = Sequence[float]


# ------------------------------------------------------------------------------------------------ geometry
def clip_polygon(points: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Sutherland-Hodgman clip of an (N, 2) polygon to the rectangle [x0, x1] x [y0, y1]; may return < 3 points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if lo[0] >= x0 and lo[1] >= y0 and hi[0] <= x1 and hi[1] <= y1:
        return pts
    if lo[0] > x1 or lo[1] > y1 or hi[0] < x0 or hi[1] < y0:
        return pts[:0]
    for axis, bound, keep_above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if len(pts) == 0:
            break
        inside = pts[:, axis] >= bound if keep_above else pts[:, axis] <= bound
        if inside.all():
            continue
        out = []
        prev, prev_in = pts[-1], inside[-1]
        for point, point_in in zip(pts, inside):
            if point_in != prev_in:
                t = (bound - prev[axis]) / (point[axis] - prev[axis])
                out.append(prev + t * (point - prev))
            if point_in:
                out.append(point)
            prev, prev_in = point, point_in
        pts = np.asarray(out, dtype=np.float64).reshape(-1, 2)
    return pts


def to_pixels(points: np.ndarray, sx: float, sy: float, width: int, height: int) -> np.ndarray | None:
    """Reference-pixel polygon -> clipped integer polygon (M, 2) int32 in the output image, or None if degenerate."""
    pts = clip_polygon(np.asarray(points) * (sx, sy), 0, 0, width - 1, height - 1)
    if len(pts) < 3:
        return None
    pts = np.rint(pts).astype(np.int32)
    keep = np.ones(len(pts), dtype=bool)  # drop repeated consecutive vertices
    keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
    keep[0] = np.any(pts[0] != pts[-1])
    pts = pts[keep]
    return pts if len(pts) >= 3 else None


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 16, angle: float = 0.0,
            start: float = 0.0, stop: float = 2 * np.pi) -> np.ndarray:
    """Points on an (optionally rotated, optionally partial) ellipse, shape (n, 2)."""
    t = np.linspace(start, stop, n, endpoint=stop - start < 2 * np.pi - 1e-9)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of an (N, 2) float point set, in order."""
    return cv2.convexHull(np.asarray(points, dtype=np.float32)).reshape(-1, 2).astype(np.float64)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Corners (4, 2) of the axis-aligned rectangle [x0, x1] x [y0, y1]."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def person_outline(stride: float, swing: float) -> list[np.ndarray]:
    """A walking person of height 1 (x right, y up, feet at 0): the outline, then its shirt, skin and hair bands."""
    torso = [(0.11, 0.50), (0.13 + swing, 0.42), (0.17 + swing, 0.43), (0.16, 0.62), (0.14, 0.8), (0.06, 0.83),
             (0.035, 0.85)]
    head = [tuple(p) for p in ellipse(0, 0.925, 0.06, 0.075, 11, 0, -0.3 * np.pi, 1.3 * np.pi)]
    left = [(-x, y) for x, y in reversed(torso)]
    legs = [(-stride - 0.06, 0.0), (-stride + 0.02, 0.0), (0.0, 0.43), (stride - 0.02, 0.0), (stride + 0.06, 0.0)]
    outline = np.array(legs + torso + head + left, dtype=np.float64)
    return [outline] + [clip_polygon(outline, -1, lo, 1, hi) for lo, hi in ((0.45, 0.84), (0.84, 1.01), (0.95, 1.01))]


def random_color(rng: np.random.Generator, saturation: tuple[int, int] = (0, 220),
                 value: tuple[int, int] = (30, 240)) -> tuple[float, float, float]:
    """A random paint / clothing colour: any hue, saturation and value drawn from the given 0-255 ranges."""
    hsv = np.uint8([[[rng.integers(180), rng.integers(*saturation), rng.integers(*value)]]])
    return tuple(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0)


# ------------------------------------------------------------------------------------------------ textures
def value_noise(rng: np.random.Generator, h: int, w: int, cell_y: float, cell_x: float | None = None) -> np.ndarray:
    """Smooth zero-mean noise with features about ``cell`` output pixels wide (bicubic-upsampled random grid)."""
    cell_x = cell_y if cell_x is None else cell_x
    cell_y, cell_x = max(cell_y, 1.0), max(cell_x, 1.0)
    gh, gw = int(h / cell_y) + 3, int(w / cell_x) + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    if cell_y == 1.0 and cell_x == 1.0:
        return grid[:h, :w]
    big = cv2.resize(grid, (int(gw * cell_x), int(gh * cell_y)), interpolation=cv2.INTER_CUBIC)
    return big[:h, :w]


def _grid_lines(h: int, w: int, step: float, offset_rows: bool) -> np.ndarray:
    """Dark mortar/joint lines every ``step`` pixels (bricks when ``offset_rows``), values in {-1, 0}."""
    step = max(step, 3.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    row = np.floor(yy / (step / 2))
    shift = (row % 2) * step / 2 if offset_rows else 0.0
    lines = (yy % (step / 2) < 1.0) | ((xx + shift) % step < 1.0)
    return -lines.astype(np.float32)


# each texture: (rng, h, w, scale) -> (h, w) float32 luminance modulation, roughly in [-1.5, 1.5]
TEXTURES: dict[str, Callable[[np.random.Generator, int, int, float], np.ndarray]] = {
    "flat": lambda rng, h, w, s: np.zeros((h, w), np.float32),
    "grain": lambda rng, h, w, s: 0.7 * value_noise(rng, h, w, 1.5 * s) + 0.35 * value_noise(rng, h, w, 40 * s),
    "blotch": lambda rng, h, w, s: np.tanh(1.6 * (value_noise(rng, h, w, 5 * s)
                                                  + 0.7 * value_noise(rng, h, w, 18 * s))),
    "streak": lambda rng, h, w, s: value_noise(rng, h, w, 12 * s, 2.0 * s) + 0.4 * value_noise(rng, h, w, 50 * s),
    "tiles": lambda rng, h, w, s: 0.8 * _grid_lines(h, w, 26 * s, False) + 0.3 * value_noise(rng, h, w, 1.5 * s),
    "brick": lambda rng, h, w, s: 0.7 * _grid_lines(h, w, 18 * s, True) + 0.3 * value_noise(rng, h, w, 9 * s),
    "sky": lambda rng, h, w, s: (np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
                                 + 0.5 * value_noise(rng, h, w, 150 * s, 300 * s)),
    "metal": lambda rng, h, w, s: (np.cos(np.linspace(0, np.pi, h, dtype=np.float32))[:, None]
                                   + 0.15 * value_noise(rng, h, w, 1.5 * s)),
    "fur": lambda rng, h, w, s: value_noise(rng, h, w, 2.0 * s, 7 * s) + 0.5 * value_noise(rng, h, w, 30 * s),
}


# ------------------------------------------------------------------------------------------------ painting
class Painter:
    """Paints textured polygons and strokes into a float RGB image, working inside each shape's bounding box."""

    def __init__(self, height: int, width: int, scale: float) -> None:
        self.image = np.zeros((height, width, 3), dtype=np.float32)
        self.scale = scale

    def fill(self, pts: np.ndarray, color: Color, rng: np.random.Generator | None, texture: str = "flat",
             amp: float = 0.0, mode: str = "paint", line: float = 0.0, closed: bool = True,
             haze: float | np.ndarray = 0.0, haze_color: Color = (0.7, 0.7, 0.7)) -> None:
        """Fill (or stroke, if ``line`` > 0) the int polygon ``pts``; ``mode='shade'`` multiplies by ``color``.

        ``haze`` is a blend factor toward ``haze_color``: a scalar or one value per image row (ground planes).
        """
        height, width = self.image.shape[:2]
        pad = int(np.ceil(line * self.scale / 2)) + 1 if line else 0
        x0, y0 = np.maximum(pts.min(axis=0) - pad, 0)
        x1, y1 = np.minimum(pts.max(axis=0) + pad + 1, (width, height))
        if x1 <= x0 or y1 <= y0:
            return
        h, w = y1 - y0, x1 - x0
        mask = np.zeros((h, w), dtype=np.uint8)
        draw(mask, (pts - (x0, y0)).astype(np.int32), 1, line * self.scale, closed)
        inside = mask.view(bool)
        region = self.image[y0:y1, x0:x1]
        color = np.asarray(color, dtype=np.float32)
        if mode == "shade":
            region[inside] *= color
            return
        haze_color = np.asarray(haze_color, dtype=np.float32)
        flat = texture == "flat" or amp == 0 or rng is None
        if np.ndim(haze):  # one value per image row
            haze = np.asarray(haze, dtype=np.float32)[y0:y1, None, None]
        elif flat:  # uniform colour: no patch needed
            region[inside] = color * (1 - haze) + haze_color * haze
            return
        if flat:
            patch = np.broadcast_to(color, (h, w, 3))
        else:
            patch = color * (1.0 + amp * TEXTURES[texture](rng, h, w, self.scale))[..., None]
        region[inside] = (patch * (1 - haze) + haze_color * haze)[inside]


def draw(target: np.ndarray, pts: np.ndarray, value: float, line: float = 0.0, closed: bool = True) -> None:
    """Fill the int polygon ``pts`` with ``value`` in ``target``, or stroke it ``line`` pixels wide if ``line`` > 0."""
    if line:
        cv2.polylines(target, [pts], closed, value, thickness=max(1, int(round(line))))
    else:
        cv2.fillPoly(target, [pts], value)


def camera_finish(image: np.ndarray, rng: np.random.Generator, scale: float, gain: float, cast: Color,
                  gamma: float, contrast: float, noise: float, blur: float, vignette: float) -> np.ndarray:
    """Exposure, colour cast, contrast, gamma, vignetting, lens blur and sensor noise -> uint8 RGB."""
    h, w = image.shape[:2]
    img = image * gain * np.asarray(cast, dtype=np.float32)
    img = np.clip((img - 0.5) * contrast + 0.5, 0, 1) ** gamma
    if vignette:
        yy, xx = np.ogrid[-1:1:complex(0, h), -1:1:complex(0, w)]
        img *= (1 - vignette * (xx**2 + yy**2) / 2).astype(np.float32)[..., None]
    if blur * scale > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), blur * scale)
    img = img + noise * rng.standard_normal(img.shape, dtype=np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def random_look(rng: np.random.Generator, ranges: dict) -> dict:
    """Random ``camera_finish`` settings: uniform in each (low, high) of ``ranges``; ``cast`` gives a sigma instead."""
    return {key: 1 + spread * rng.standard_normal(3) if key == "cast" else rng.uniform(*spread)
            for key, spread in ranges.items()}


def write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path``, creating its folder first."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
