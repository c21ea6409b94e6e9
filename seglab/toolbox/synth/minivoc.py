"""MiniVOC: procedural Pascal VOC 2012 images (VOCdevkit layout) plus the SBD release layout.

Each class is a few parametric parts (polygons, ellipses, strokes) in a box of height 1; an image places 1-3 objects
on an indoor or outdoor background. SBD stores the class map; the VOC PNG adds the 255 band around every object.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image

from seglab.labels import IGNORE_INDEX, VOC_CLASSES, VOC_PALETTE
from seglab.toolbox.synth._paint import (Painter, camera_finish, draw, ellipse, person_outline, random_color,
                                         random_look, rect, write_file)

OBJECT_CLASSES = VOC_CLASSES[1:]  # the 20 object classes; 0 is background
Part = tuple[np.ndarray, object, float, bool]  # points (x right, y down; height 1), tone, stroke width, closed


# ------------------------------------------------------------------------------------------------ part helpers
def P(points, tone=1.0) -> Part:
    """Filled polygon."""
    return np.asarray(points, dtype=np.float64), tone, 0.0, True


def B(x0, y0, x1, y1, tone=1.0) -> Part:
    """Filled axis-aligned box."""
    return P(rect(x0, y0, x1, y1), tone)


def E(cx, cy, rx, ry, tone=1.0, angle=0.0) -> Part:
    """Filled ellipse (angle in degrees)."""
    return ellipse(cx, cy, rx, ry, 24, np.radians(angle)), tone, 0.0, True


def L(points, width, tone=1.0) -> Part:
    """Open stroke ``width`` (fraction of the object height) wide."""
    return np.asarray(points, dtype=np.float64), tone, width, False


def R(cx, cy, r, width, tone="dark") -> Part:
    """Ring (a wheel)."""
    return ellipse(cx, cy, r, r, 28), tone, width, True


def _wheels(xs, y, r, spokes: bool) -> list[Part]:
    out = []
    for x in xs:
        out += [R(x, y, r, 0.07)] if spokes else [E(x, y, r, r, "dark"), E(x, y, r * 0.45, r * 0.45, "metal")]
    return out


# ------------------------------------------------------------------------------------------------ class templates
def _quadruped(rng: np.random.Generator, body: float, height: float, legs: float, neck: tuple[float, float],
               head: float, ears: str | None, tail: str, fluffy: bool) -> tuple[float, list[Part]]:
    """Cat, dog, cow, horse and sheep: a body ellipse on four legs with neck, head, ears and tail."""
    cx, cy = 0.05 + body / 2 + 0.12, 1 - legs - height * 0.35
    nx, ny = cx + body * 0.38, cy - height * 0.3
    angle = np.radians(neck[1] + rng.uniform(-10, 10))
    hx, hy = nx + neck[0] * np.cos(angle) + head * 0.6, ny - neck[0] * np.sin(angle)
    parts: list[Part] = []
    leg_x = [cx - body * 0.36, cx + body * 0.34]
    for dx, tone in ((0.05, 0.7), (-0.03, 1.0)):  # far legs (darker) first
        for x in leg_x:
            swing = rng.uniform(-0.05, 0.05)
            parts.append(L([(x + dx, cy + height * 0.2), (x + dx + swing, 0.98)], 0.07 if not fluffy else 0.05,
                           tone if not fluffy else "dark"))
    tx = cx - body / 2  # the tail starts at the back of the body
    tails = {"up": [(tx, cy - 0.05), (tx - 0.15, cy - 0.25), (tx - 0.1, cy - 0.45)],
             "down": [(tx, cy - 0.05), (tx - 0.06, cy + 0.2)],
             "long": [(tx, cy - 0.1), (tx - 0.12, cy + 0.1), (tx - 0.1, cy + 0.4)]}
    parts.append(L(tails[tail], 0.05 if tail != "long" else 0.08, 0.8))
    if fluffy:  # sheep: a body of wool puffs
        for _ in range(14):
            parts.append(E(cx + rng.uniform(-0.45, 0.45) * body, cy + rng.uniform(-0.35, 0.35) * height,
                           0.16, 0.14, rng.uniform(0.85, 1.1)))
    else:
        parts.append(E(cx, cy, body / 2, height / 2, 1.0, rng.uniform(-5, 5)))
    parts.append(L([(nx, ny + 0.05), (hx - head * 0.5, hy)], head * 1.3, 1.0 if not fluffy else "dark"))
    parts.append(E(hx, hy, head * 1.1, head * 0.85, "dark" if fluffy else 1.0))
    parts.append(E(hx + head * 0.9, hy + head * 0.3, head * 0.55, head * 0.4, 0.85 if not fluffy else "dark"))
    if ears == "point":
        parts.append(P([(hx - head * 0.7, hy - head * 0.4), (hx - head * 0.4, hy - head * 1.6),
                        (hx - head * 0.05, hy - head * 0.6)], 0.9))
    elif ears == "flop":
        parts.append(E(hx - head * 0.6, hy + head * 0.2, head * 0.35, head * 0.8, 0.6, 20))
    elif ears == "horn":
        parts.append(L([(hx - head * 0.3, hy - head * 0.6), (hx - head * 0.1, hy - head * 1.4)], 0.04, "white"))
    parts.append(E(hx + head * 0.3, hy - head * 0.2, head * 0.13, head * 0.13, "dark"))  # eye
    return cx + body / 2 + 0.05 + neck[0] + head * 2.2, parts


QUADRUPEDS = {  # body length, body height, leg length, neck (length, angle), head, ears, tail, fluffy
    "cat": (0.8, 0.32, 0.3, (0.08, 60), 0.14, "point", "up", False),
    "dog": (0.9, 0.36, 0.36, (0.14, 50), 0.15, "flop", "up", False),
    "cow": (1.25, 0.48, 0.38, (0.08, 15), 0.15, "horn", "down", False),
    "horse": (1.1, 0.36, 0.48, (0.38, 55), 0.13, "point", "long", False),
    "sheep": (1.0, 0.46, 0.3, (0.06, 25), 0.12, None, "down", True),
}


def _person(rng: np.random.Generator) -> tuple[float, list[Part]]:
    pieces = person_outline(rng.uniform(0.03, 0.12), rng.uniform(-0.04, 0.04))
    tones = ("accent", 1.0, "skin", "dark")  # clothes, shirt, skin, hair
    return 0.44, [P(np.c_[piece[:, 0] + 0.22, 1 - piece[:, 1]], tone) for piece, tone in zip(pieces, tones)]


def _plant(rng: np.random.Generator) -> tuple[float, list[Part]]:
    parts = [P([(0.2, 0.66), (0.62, 0.66), (0.56, 1.0), (0.26, 1.0)], 1.0), B(0.17, 0.62, 0.65, 0.68, 0.8)]
    for _ in range(int(rng.integers(7, 13))):
        angle = rng.uniform(-80, 80)
        r = rng.uniform(0.18, 0.32)
        t = np.radians(angle - 90)
        parts.append(E(0.41 + r * np.cos(t) * 0.9, 0.62 + r * np.sin(t), r * 0.75, 0.07, "green", angle + 90))
    return 0.82, parts


TEMPLATES = {
    "aeroplane": lambda rng: (2.2, [
        P([(0.04, 0.46), (0.15, 0.46), (0.08, 0.1), (0.02, 0.1)], 0.85),
        P([(0.95, 0.45), (1.1, 0.45), (1.05, 0.18), (0.98, 0.18)], 0.7),
        E(1.1, 0.5, 1.02, 0.1), P([(2.05, 0.44), (2.2, 0.5), (2.05, 0.58)], 0.95),
        P([(0.85, 0.52), (1.2, 0.52), (0.95, 0.95), (0.8, 0.95)], 0.85), E(1.0, 0.66, 0.12, 0.05, "metal"),
        P([(0.02, 0.5), (0.3, 0.52), (0.05, 0.64)], 0.8), L([(1.4, 0.46), (1.95, 0.46)], 0.03, "dark")]),
    "bicycle": lambda rng: (1.7, _wheels((0.34, 1.36), 0.68, 0.3, True) + [
        L([(0.34, 0.68), (0.78, 0.68), (0.62, 0.3), (0.34, 0.68)], 0.06, "accent"),
        L([(0.78, 0.68), (1.22, 0.32), (0.62, 0.3)], 0.06, "accent"), L([(1.22, 0.32), (1.36, 0.68)], 0.05),
        L([(0.62, 0.3), (0.58, 0.17)], 0.05, "metal"),
        P([(0.46, 0.13), (0.72, 0.13), (0.66, 0.19), (0.52, 0.19)], "dark"),
        L([(1.22, 0.32), (1.17, 0.12), (1.34, 0.1)], 0.04, "metal")]),
    "bird": lambda rng: (1.4, [
        P([(0.4, 0.5), (0.0, 0.62), (0.05, 0.76), (0.42, 0.66)], 0.75), E(0.72, 0.55, 0.4, 0.22, 1.0, -12),
        E(0.66, 0.5, 0.28, 0.12, 0.7, -18), E(1.1, 0.3, 0.16, 0.15),
        P([(1.22, 0.26), (1.4, 0.32), (1.22, 0.36)], "light"), E(1.13, 0.26, 0.03, 0.03, "dark"),
        L([(0.7, 0.74), (0.68, 1.0)], 0.025, "dark"), L([(0.84, 0.74), (0.86, 1.0)], 0.025, "dark")]),
    "boat": lambda rng: (1.6, [
        L([(0.8, 0.04), (0.8, 0.62)], 0.03, "dark"), P([(0.83, 0.06), (0.83, 0.57), (1.35, 0.57)], "white"),
        P([(0.0, 0.62), (1.6, 0.62), (1.42, 0.92), (0.14, 0.92)]), L([(0.05, 0.7), (1.55, 0.7)], 0.04, "accent"),
        B(0.35, 0.45, 0.95, 0.63, "white"), L([(0.42, 0.52), (0.88, 0.52)], 0.05, "glass")]),
    "bottle": lambda rng: (0.36, [
        P([(0.02, 0.4), (0.13, 0.24), (0.23, 0.24), (0.34, 0.4), (0.34, 0.97), (0.3, 1.0), (0.06, 1.0),
           (0.02, 0.97)]), B(0.12, 0.06, 0.24, 0.27), B(0.11, 0.0, 0.25, 0.07, "accent"),
        B(0.02, 0.55, 0.34, 0.8, "white"), L([(0.08, 0.42), (0.08, 0.9)], 0.03, 1.6)]),
    "bus": lambda rng: (2.4, [
        P([(0.0, 0.05), (2.3, 0.05), (2.4, 0.2), (2.4, 0.86), (0.0, 0.86)]), B(0.1, 0.14, 2.36, 0.46, "glass"),
        *[L([(x, 0.14), (x, 0.46)], 0.04) for x in np.arange(0.45, 2.3, 0.36)],
        B(1.95, 0.5, 2.2, 0.84, "glass"), L([(0.0, 0.62), (1.9, 0.62)], 0.05, "accent"),
        *_wheels((0.45, 1.7), 0.86, 0.13, False)]),
    "car": lambda rng: (2.2, [
        P([(0.5, 0.46), (0.78, 0.12), (1.5, 0.12), (1.85, 0.47)]),
        P([(0.62, 0.44), (0.84, 0.18), (1.12, 0.18), (1.12, 0.44)], "glass"),
        P([(1.18, 0.44), (1.18, 0.18), (1.46, 0.18), (1.7, 0.45)], "glass"),
        P([(0.02, 0.47), (2.12, 0.47), (2.2, 0.6), (2.2, 0.8), (0.0, 0.8), (0.0, 0.55)]),
        E(2.12, 0.56, 0.06, 0.04, "light"), E(0.06, 0.56, 0.05, 0.04, (0.9, 0.1, 0.1)),
        *_wheels((0.45, 1.72), 0.8, 0.17, False)]),
    "chair": lambda rng: (0.8, [
        L([(0.22, 0.6), (0.24, 0.92)], 0.035, 0.7), L([(0.62, 0.6), (0.6, 0.92)], 0.035, 0.7),
        B(0.05, 0.0, 0.2, 0.6), P([(0.05, 0.55), (0.7, 0.55), (0.78, 0.62), (0.1, 0.63)], 1.1),
        L([(0.09, 0.62), (0.09, 1.0)], 0.04), L([(0.73, 0.62), (0.75, 1.0)], 0.04),
        L([(0.07, 0.15), (0.19, 0.15)], 0.03, 0.7), L([(0.07, 0.32), (0.19, 0.32)], 0.03, 0.7)]),
    "diningtable": lambda rng: (1.8, [
        L([(0.3, 0.5), (0.32, 0.85)], 0.04, 0.7), L([(1.5, 0.5), (1.48, 0.85)], 0.04, 0.7),
        P([(0.12, 0.3), (1.68, 0.3), (1.8, 0.45), (0.0, 0.45)], 1.1), B(0.04, 0.45, 1.76, 0.53, 0.8),
        L([(0.1, 0.5), (0.1, 1.0)], 0.05), L([(1.7, 0.5), (1.7, 1.0)], 0.05),
        E(0.6, 0.36, 0.16, 0.04, "white"), P([(1.15, 0.2), (1.25, 0.2), (1.23, 0.37), (1.17, 0.37)], "glass")]),
    "motorbike": lambda rng: (1.7, _wheels((0.34, 1.36), 0.72, 0.27, False) + [
        L([(0.45, 0.62), (0.06, 0.6)], 0.05, "metal"), L([(1.36, 0.72), (1.2, 0.2)], 0.05, "metal"),
        P([(0.45, 0.45), (0.75, 0.3), (1.05, 0.32), (1.15, 0.5), (0.9, 0.64), (0.55, 0.64)], "accent"),
        P([(0.2, 0.34), (0.72, 0.3), (0.72, 0.38), (0.25, 0.43)], "dark"),
        L([(1.1, 0.18), (1.32, 0.2)], 0.04, "dark"), E(0.75, 0.56, 0.16, 0.1, "metal")]),
    "person": _person,
    "pottedplant": _plant,
    "sofa": lambda rng: (2.0, [
        B(0.15, 0.12, 1.85, 0.56, 0.85), B(0.05, 0.5, 1.95, 0.86), L([(1.0, 0.52), (1.0, 0.7)], 0.02, 0.6),
        B(0.0, 0.34, 0.26, 0.88, 0.92), B(1.74, 0.34, 2.0, 0.88, 0.92),
        B(0.06, 0.88, 0.14, 1.0, "dark"), B(1.86, 0.88, 1.94, 1.0, "dark")]),
    "train": lambda rng: (3.0, [
        L([(2.0, 0.2), (2.2, 0.02), (2.4, 0.2)], 0.025, "dark"),
        P([(0.0, 0.2), (2.55, 0.2), (3.0, 0.52), (3.0, 0.86), (0.0, 0.86)]),
        *[B(x, 0.3, x + 0.3, 0.5, "glass") for x in np.arange(0.1, 2.3, 0.45)],
        P([(2.6, 0.28), (2.9, 0.5), (2.6, 0.5)], "glass"), L([(0.0, 0.66), (3.0, 0.66)], 0.06, "accent"),
        B(0.2, 0.86, 0.9, 0.96, "dark"), B(2.0, 0.86, 2.7, 0.96, "dark")]),
    "tvmonitor": lambda rng: (1.3, [
        P([(0.55, 0.78), (0.75, 0.78), (0.8, 0.93), (0.5, 0.93)], "dark"), B(0.35, 0.92, 0.95, 1.0, "dark"),
        B(0.0, 0.0, 1.3, 0.8), B(0.06, 0.06, 1.24, 0.74, "screen")]),
    **{name: (lambda spec: lambda rng: _quadruped(rng, *spec))(spec) for name, spec in QUADRUPEDS.items()},
}
# base colours of each class (None: any colour) and its surface texture
STYLE = {
    "aeroplane": ([(.9, .9, .92), (.75, .77, .8), (.85, .85, .8), (.6, .62, .66)], "metal"),
    "bicycle": ([(.1, .1, .1), (.4, .4, .42)], "metal"), "bird": (None, "fur"), "boat": (None, "grain"),
    "bottle": ([(.15, .4, .15), (.4, .25, .1), (.75, .8, .8), (.15, .25, .55)], "metal"), "bus": (None, "metal"),
    "car": (None, "metal"),
    "cat": ([(.85, .5, .2), (.5, .5, .5), (.15, .13, .12), (.9, .88, .85), (.45, .3, .2)], "fur"),
    "chair": ([(.45, .3, .18), (.6, .42, .25), (.2, .2, .22), (.8, .15, .1), (.9, .9, .88)], "streak"),
    "cow": ([(.1, .1, .1), (.92, .9, .88), (.5, .3, .18)], "blotch"),
    "diningtable": ([(.5, .33, .2), (.65, .48, .3), (.3, .2, .12), (.85, .85, .82)], "streak"),
    "dog": ([(.55, .38, .2), (.12, .1, .09), (.85, .7, .45), (.92, .9, .85), (.4, .25, .15)], "fur"),
    "horse": ([(.45, .28, .15), (.3, .18, .1), (.12, .1, .09), (.85, .85, .82), (.6, .58, .55)], "fur"),
    "motorbike": ([(.1, .1, .1), (.3, .3, .32)], "metal"), "person": (None, "grain"),
    "pottedplant": ([(.7, .4, .25), (.9, .9, .88), (.3, .3, .32), (.6, .5, .4)], "grain"),
    "sheep": ([(.88, .86, .8), (.8, .78, .7), (.7, .68, .62)], "blotch"), "sofa": (None, "grain"),
    "train": (None, "metal"), "tvmonitor": ([(.1, .1, .1), (.3, .3, .32), (.85, .85, .85)], "metal"),
}
TONES = {"dark": (.08, .08, .09), "glass": (.22, .28, .34), "white": (.92, .92, .9), "metal": (.6, .6, .62),
         "light": (.95, .92, .7)}
BACKGROUNDS = {  # kind -> (upper surface, lower surface) palettes
    "indoor": ([(.85, .82, .75), (.7, .75, .8), (.8, .7, .6), (.6, .65, .55), (.9, .9, .88)],
               [(.5, .35, .2), (.6, .6, .6), (.7, .55, .4), (.35, .3, .3)]),
    "outdoor": ([(.55, .7, .9), (.75, .8, .85), (.6, .62, .65)],
                [(.35, .5, .2), (.5, .45, .3), (.4, .4, .42), (.25, .4, .55), (.7, .65, .5)]),
}


LOOK = dict(gain=(0.75, 1.25), cast=0.07, gamma=(0.8, 1.2), contrast=(0.8, 1.15), noise=(0.005, 0.02),
            blur=(0.3, 1.0), vignette=(0, 0.3))  # camera settings: ranges of random_look
_random_color = partial(random_color, saturation=(40, 230), value=(40, 240))


def _vary(rng: np.random.Generator, palette: list | None) -> np.ndarray:
    """A colour of ``palette`` (None: any colour), 20 % darker to 15 % brighter."""
    base = _random_color(rng) if palette is None else palette[rng.integers(len(palette))]
    return np.clip(np.asarray(base) * rng.uniform(0.8, 1.15), 0, 1)


# ------------------------------------------------------------------------------------------------ rendering
@dataclass
class Sample:
    """One MiniVOC image: the photo and the class map without (SBD) and with (VOC) the 255 border band."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    classes: np.ndarray  # (H, W) uint8 in 0..20
    voc: np.ndarray  # (H, W) uint8 in 0..20 or 255


def _shade(rng: np.random.Generator, base: np.ndarray, accent: np.ndarray, tone) -> np.ndarray:
    if isinstance(tone, str):
        named = {"accent": accent, "skin": np.array((.85, .68, .55)) * rng.uniform(0.5, 1.05),
                 "green": np.array((.2, .45, .15)) * rng.uniform(0.7, 1.3),
                 "screen": _random_color(rng)}
        return np.clip(named.get(tone, TONES.get(tone)), 0, 1)
    if isinstance(tone, tuple):
        return np.asarray(tone)
    return np.clip(base * tone, 0, 1)


def _background(painter: Painter, rng: np.random.Generator, h: int, w: int) -> float:
    """Paint an indoor (wall + floor) or outdoor (sky + ground) backdrop with clutter; returns the horizon row."""
    kind = "indoor" if rng.random() < 0.5 else "outdoor"
    upper, lower = BACKGROUNDS[kind]
    horizon = rng.uniform(0.35, 0.7) * h
    for pts, palette, texture in ((rect(0, 0, w, horizon), upper, "sky" if kind == "outdoor" else "grain"),
                                  (rect(0, horizon, w, h), lower, "streak" if kind == "outdoor" else "tiles")):
        painter.fill(np.rint(pts).astype(np.int32), _vary(rng, palette), rng, texture, 0.25)
    for _ in range(int(rng.integers(1, 5))):  # clutter: doors, frames, shelves / hills, bushes, houses
        x, y = rng.uniform(0, w), rng.uniform(0, horizon)
        bw, bh = rng.uniform(0.05, 0.3) * w, rng.uniform(0.1, 0.4) * h
        pts = ellipse(x, y + bh / 2, bw / 2, bh / 2, 20) if rng.random() < 0.5 else rect(x, y, x + bw, y + bh)
        painter.fill(np.rint(pts).astype(np.int32), _random_color(rng), rng, "grain", 0.3)
    return horizon


def render_sample(seed: int, number: int, classes: tuple[str, ...], height: int, width: int) -> Sample:
    """Draw image ``number`` with the given object classes, back to front, on an image about height x width."""
    rng = np.random.default_rng([seed, 7, number])
    h, w = int(round(height * rng.uniform(0.82, 1.0))), int(round(width * rng.uniform(0.82, 1.0)))
    painter = Painter(h, w, min(h, w) / 256)
    horizon = _background(painter, rng, h, w)
    label, instance = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    slots = rng.permutation(len(classes))
    for k, name in enumerate(classes):
        aspect, parts = TEMPLATES[name](rng)
        slot_w = w / len(classes)  # neighbours overlap a little at most, so every object stays visible
        size = min(rng.uniform(0.45, 0.85) * h, min(1.2 * slot_w, 0.96 * w) / aspect)  # object height in pixels
        half = size * aspect / 2
        cx = np.clip((slots[k] + 0.5 + rng.uniform(-0.1, 0.1)) * slot_w, half, w - half)
        bottom = min(h - 2, max(size, horizon + rng.uniform(0.1, 0.5) * (h - horizon) + size * 0.1))
        flip = rng.random() < 0.5
        palette, texture = STYLE[name]
        base, accent = _vary(rng, palette), _random_color(rng)
        for pts, tone, width_frac, closed in parts:
            x = aspect - pts[:, 0] if flip else pts[:, 0]
            xy = np.rint(np.c_[cx + (x - aspect / 2) * size, bottom - (1 - pts[:, 1]) * size]).astype(np.int32)
            line = max(1.0, width_frac * size) if width_frac else 0.0
            color = _shade(rng, base, accent, tone)
            painter.fill(xy, color, rng, "flat" if tone in ("dark", "screen") else texture, 0.3, line=line,
                         closed=closed)
            for target, value in ((label, OBJECT_CLASSES.index(name) + 1), (instance, k + 1)):
                draw(target, xy, value, line, closed)
    image = camera_finish(painter.image, rng, painter.scale, **random_look(rng, LOOK))
    return Sample(image, label, _void_borders(label, instance))


def _void_borders(label: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """VOC's 255 band along every object outline (against the background and between objects)."""
    edge = np.zeros(instance.shape, bool)
    across, down = instance[:, 1:] != instance[:, :-1], instance[1:] != instance[:-1]
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    edge[1:] |= down
    edge[:-1] |= down
    k = max(1, int(round(min(instance.shape) / 120)))  # band about 5 px wide at VOC's 500 x 375
    band = cv2.dilate(edge.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    voc = label.copy()
    voc[band] = IGNORE_INDEX
    return voc


# ------------------------------------------------------------------------------------------------ files
def sbd_struct(classes: np.ndarray) -> dict:
    """The ``GTcls`` struct of an SBD ``cls/*.mat`` file: Segmentation, 20 sparse Boundaries, CategoriesPresent."""
    boundaries = np.empty((len(OBJECT_CLASSES), 1), dtype=object)
    for c in range(1, len(OBJECT_CLASSES) + 1):
        region = (classes == c).astype(np.uint8)
        edge = region - cv2.erode(region, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
        boundaries[c - 1, 0] = scipy.sparse.csc_matrix(edge.astype(bool))
    present = np.array([c for c in np.unique(classes) if c > 0], dtype=np.uint8).reshape(-1, 1)
    return {"Segmentation": classes.astype(np.uint8), "Boundaries": boundaries, "CategoriesPresent": present}


def write_sample(root: str, task: tuple, seed: int, height: int, width: int) -> tuple[str, list[int]]:
    """Render one image and write it to VOC and/or SBD as planned; returns (image id, classes present)."""
    image_id, number, classes, in_voc, in_sbd = task
    sample = render_sample(seed, number, classes, height, width)
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
    voc, sbd = os.path.join(root, "VOCdevkit", "VOC2012"), os.path.join(root, "benchmark_RELEASE", "dataset")
    if in_voc:
        write_file(os.path.join(voc, "JPEGImages", f"{image_id}.jpg"), jpeg.tobytes())
        png = Image.fromarray(sample.voc, mode="L")
        png.putpalette(VOC_PALETTE.reshape(-1).tolist())
        os.makedirs(os.path.join(voc, "SegmentationClass"), exist_ok=True)
        png.save(os.path.join(voc, "SegmentationClass", f"{image_id}.png"))
    if in_sbd:
        write_file(os.path.join(sbd, "img", f"{image_id}.jpg"), jpeg.tobytes())
        write_file(os.path.join(sbd, "cls", f"{image_id}.mat"), _mat_bytes({"GTcls": sbd_struct(sample.classes)}))
    return image_id, sorted(int(c) for c in np.unique(sample.classes) if c > 0)


def _mat_bytes(content: dict) -> bytes:
    """A MATLAB 5 file as scipy.io.savemat writes it, with the creation time in the header fixed (determinism)."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, content, do_compression=True)
    header = b"MATLAB 5.0 MAT-file, written by seglab.toolbox.synth (MiniVOC)".ljust(116)
    return header + buffer.getvalue()[116:]


def plan(seed: int, train: int, val: int, sbd: int) -> list[tuple]:
    """Image ids, object classes and memberships: (id, number, classes, voc split, sbd split) per image.

    Each VOC split starts with a shuffled pass over all 20 classes, so each holds every class if it has room for 20
    objects. As in the real release, SBD train holds VOC train, 70 % of the SBD-only images and a third of VOC val.
    """
    rng = np.random.default_rng([seed, 7])
    total = train + val + sbd
    ids: set[str] = set()
    while len(ids) < total:
        ids.add(f"{rng.integers(2007, 2012)}_{rng.integers(0, 8000):06d}")
    ids_list = sorted(ids)
    order = rng.permutation(total)
    tasks, start = [], 0
    for role, count in (("train", train), ("val", val), ("sbd", sbd)):
        counts = rng.integers(1, 4, count)
        i = 0
        while role != "sbd" and counts.sum() < min(len(OBJECT_CLASSES), 3 * count):
            counts[i % count] = min(3, counts[i % count] + 1)
            i += 1
        names = list(rng.permutation(OBJECT_CLASSES)) + list(rng.choice(OBJECT_CLASSES, int(counts.sum())))
        cursor = 0
        for j, n in enumerate(counts):
            number = int(order[start + j])
            classes = tuple(str(c) for c in names[cursor:cursor + n])
            cursor += n
            if role == "train":
                voc, sb = "train", "train"
            elif role == "val":
                voc, sb = "val", ("train", "val", None)[j % 3]
            else:
                voc, sb = None, "train" if j % 10 < 7 else "val"
            tasks.append((ids_list[number], number, classes, voc, sb))
        start += count
    return tasks


def write_lists(root: Path, tasks: list[tuple]) -> None:
    """ImageSets/Segmentation/{train,val,trainval}.txt and SBD's train.txt / val.txt, sorted as in the releases."""
    voc = {s: sorted(t[0] for t in tasks if t[3] == s) for s in ("train", "val")}
    voc["trainval"] = sorted(voc["train"] + voc["val"])
    sbd = {s: sorted(t[0] for t in tasks if t[4] == s) for s in ("train", "val")}
    for folder, lists in ((root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation", voc),
                          (root / "benchmark_RELEASE" / "dataset", sbd)):
        folder.mkdir(parents=True, exist_ok=True)
        for name, ids in lists.items():
            (folder / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
