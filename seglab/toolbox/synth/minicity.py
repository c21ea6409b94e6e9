"""MiniCity: procedural street scenes in the exact Cityscapes gtFine layout.

``build_scene`` places objects in a 3-D street seen by a pinhole camera and returns their outlines back to front in
*reference* pixels (2048x1024), so a seed gives the same scene at every size. ``render`` rounds them to the integer
polygons of the JSON, paints the photo and rasterises the label maps from those polygons with OpenCV, as the
annotation tool did (cityscapesscripts' PIL rasteriser differs only on some polygon edges).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from seglab.labels import CITYSCAPES_CLASSES, ID_TO_COLOR, cityscapes_label
from seglab.toolbox.synth._paint import (Painter, camera_finish, convex_hull, ellipse, person_outline, random_color,
                                         random_look, rect, to_pixels, write_file)

REF_W, REF_H = 2048, 1024
SPLITS = ("train", "val", "test")
CITIES = {"train": ("aachen", "bremen", "erfurt"), "val": ("frankfurt", "lindau", "munster"),
          "test": ("berlin", "bielefeld")}
EVAL_IDS = frozenset(cityscapes_label(name).id for name in CITYSCAPES_CLASSES)
GROUP_IDS = frozenset(cityscapes_label(name).id for name in ("persongroup", "cargroup", "bicyclegroup"))
PROBE_SIZE = (128, 256)  # frame 0 of each split must show all 19 classes and the 3 groups at this size
Z_FAR = 400.0

PALETTES = {
    "facade": [(.58, .56, .52), (.72, .66, .55), (.6, .38, .3), (.8, .78, .72), (.45, .45, .48), (.76, .6, .44),
               (.66, .7, .72), (.52, .47, .4)],
    "car": [(.9, .9, .9), (.08, .08, .09), (.62, .63, .65), (.35, .36, .38), (.6, .08, .07), (.1, .2, .5),
            (.05, .1, .25), (.15, .3, .18), (.85, .7, .15), (.7, .65, .55), (.4, .12, .3), (.25, .45, .6)],
    "concrete": [(.6, .6, .58), (.7, .66, .58), (.5, .5, .5), (.62, .5, .42), (.42, .44, .4)],
    "vegetation": [(.22, .33, .14), (.3, .42, .18), (.18, .27, .16), (.36, .42, .2), (.27, .36, .24)],
    "terrain": [(.42, .47, .22), (.48, .44, .3), (.34, .44, .2), (.52, .5, .32), (.38, .42, .26)],
    "asphalt": [(.3, .3, .32), (.38, .38, .39), (.46, .45, .44), (.34, .33, .3)],
    "paving": [(.55, .54, .52), (.6, .5, .45), (.48, .48, .5), (.66, .62, .55), (.52, .45, .4)],
    "metal": [(.45, .46, .48), (.3, .32, .3), (.55, .55, .5), (.2, .3, .25), (.35, .3, .25)],
    "overcast sky": [(.78, .8, .82), (.66, .69, .73), (.86, .86, .85), (.58, .61, .65), (.72, .72, .7)],
    "sunny sky": [(.45, .62, .85), (.55, .7, .9), (.62, .75, .88)],
    "skin": [(.85, .68, .55), (.65, .47, .35), (.42, .3, .22), (.9, .75, .65)],
}


def _pick(rng: np.random.Generator, palette: str, jitter: float = 0.07) -> tuple[float, float, float]:
    """A palette colour with a small random change of brightness and hue."""
    base = np.asarray(PALETTES[palette][rng.integers(len(PALETTES[palette]))])
    return tuple(np.clip(base * (1 + jitter * rng.standard_normal()) + 0.03 * rng.standard_normal(3), 0, 1))


# ------------------------------------------------------------------------------------------------ data types
@dataclass
class Shape:
    """One outline in reference pixels: an annotated polygon (``label``) or an image-only detail (label None)."""

    points: np.ndarray
    label: str | None = None
    color: tuple = (0.5, 0.5, 0.5)
    texture: str = "flat"
    amp: float = 0.0
    depth: float | None = None  # metres, for haze; None: a ground-plane surface (depth from the image row)
    mode: str = "paint"  # paint | shade (multiply the image) | none (annotation only, nothing painted)
    line: float = 0.0  # > 0: a stroke this many reference pixels wide instead of a fill
    closed: bool = True
    deleted: bool = False
    seed: int = 0


@dataclass(frozen=True)
class SidePlan:
    """What one side of the street holds."""

    parking: bool = False
    terrain: float = 0.0  # width of the grass strip between sidewalk and houses, metres (0: none)
    runs: tuple[str, ...] = ()  # walls, fences, hedges, guard rails along the outer edge, one after another
    groups: tuple[str, ...] = ()  # persongroup, bicyclegroup
    furniture: tuple[str, ...] = ()  # static, dynamic
    two_wheeler: bool = False  # a parked bicycle or motorcycle


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at height ``height`` metres looking down +Z; image coordinates in reference pixels."""

    f: float
    u0: float
    v0: float
    height: float

    def project(self, xyz: np.ndarray) -> np.ndarray:
        x, y, z = np.asarray(xyz, dtype=np.float64).reshape(-1, 3).T
        return np.stack([self.u0 + self.f * x / z, self.v0 + self.f * (self.height - y) / z], axis=1)


@dataclass
class Scene:
    """Everything needed to render one frame at any size."""

    camera: Camera
    shapes: list[Shape]
    look: dict
    date: str


def _quad(axis: str, c: float, a0: float, a1: float, b0: float, b1: float) -> np.ndarray:
    """Corners (4, 3) of an axis-aligned rectangle in the plane ``axis = c`` spanning [a0, a1] x [b0, b1]."""
    a, b = [a0, a1, a1, a0], [b0, b0, b1, b1]
    if axis == "x":  # a: z, b: y
        return np.stack([np.full(4, c), b, a], 1)
    if axis == "y":  # a: x, b: z
        return np.stack([a, np.full(4, c), b], 1)
    return np.stack([a, b, np.full(4, c)], 1)  # axis z: a: x, b: y


def _spans(z0: float, z1: float, ratio: float = 1.25) -> Iterator[tuple[float, float]]:
    """Split [z0, z1] into pieces with far/near <= ratio, so that painter's order by distance stays right."""
    while z0 < z1 - 1e-6:
        nxt = min(z1, max(z0 * ratio, z0 + 0.5))
        yield z0, nxt
        z0 = nxt


# ------------------------------------------------------------------------------------------------ object tables
# vehicles: width, length (m), boxes (x0, x1 as fractions of width, y0, y1 in m, z0, z1 as fractions of length,
# material), window band (y0, y1, spacing, fraction) on the body, wheel radius, wheel positions (fractions of length)
VEHICLES = {
    "car": (1.8, 4.4, [(0, 1, 0.0, 0.95, 0, 1, "body"), (0.08, 0.92, 0.95, 1.45, 0.25, 0.72, "glass")],
            None, 0.33, (0.17, 0.8)),
    "truck": (2.5, 8.5, [(0, 1, 0.0, 3.7, 0, 0.72, "cargo"), (0.04, 0.96, 0.0, 3.0, 0.74, 1.0, "body")],
              None, 0.5, (0.12, 0.55, 0.88)),
    "bus": (2.55, 12.0, [(0, 1, 0.0, 3.2, 0, 1, "body")], (1.25, 2.75, 1.6, 0.85), 0.5, (0.15, 0.78)),
    "train": (2.65, 30.0, [(0, 1, 0.3, 3.6, 0, 1, "body")], (1.5, 2.8, 2.2, 0.7), 0.0, ()),
}
GLASS = (0.16, 0.19, 0.22)
FACE_SHADE = {"front": 1.0, "side": 0.78, "top": 1.12, "bottom": 0.55}
RUN_STYLE = {"wall": ("concrete", "brick", 0.3), "fence": ("metal", "streak", 0.3),
             "vegetation": ("vegetation", "blotch", 0.6), "guard rail": ("metal", "metal", 0.3)}
RUN_HEIGHT = {"wall": (0.8, 2.4), "fence": (1.0, 2.0), "vegetation": (0.8, 1.6), "guard rail": (0.75, 0.8)}
RUN_CHANCE = {"wall": 0.3, "fence": 0.3, "vegetation": 0.25, "guard rail": 0.1}
RAILS = {"fence": ((0.9, 0.96), (0.45, 0.5)), "guard rail": ((0.55, 0.95),)}  # fractions of the height
# void street furniture: label -> list of (width, depth, height) boxes it may be
FURNITURE = {"static": [(1.6, 0.5, 0.9), (1.2, 0.3, 2.4), (0.25, 0.25, 0.9), (0.6, 0.6, 1.1), (2.5, 1.2, 2.3)],
             "dynamic": [(0.6, 0.8, 1.05), (0.55, 0.9, 1.0), (1.0, 0.6, 0.9)]}
# traffic sign plates: (outline in metres around the centre, rim colour, face colour)
SIGNS = [
    (ellipse(0, 0, 0.32, 0.32, 20), (0.75, 0.08, 0.08), (0.95, 0.95, 0.95)),
    (ellipse(0, 0, 0.32, 0.32, 20), (0.95, 0.95, 0.95), (0.1, 0.3, 0.7)),
    (np.array([[-0.38, -0.3], [0.38, -0.3], [0, 0.36]]), (0.8, 0.1, 0.1), (0.95, 0.95, 0.9)),
    (np.array([[0, -0.38], [0.38, 0], [0, 0.38], [-0.38, 0]]), (0.95, 0.95, 0.95), (0.95, 0.78, 0.1)),
    (np.array([[-0.35, -0.25], [0.35, -0.25], [0.35, 0.25], [-0.35, 0.25]]), (0.9, 0.9, 0.9), (0.1, 0.35, 0.7)),
    (ellipse(0, 0, 0.33, 0.33, 8, np.pi / 8), (0.95, 0.95, 0.95), (0.8, 0.1, 0.1)),
]


# two-wheelers, side view (x along, y up, metres): wheel centres and radius, frame polyline, body polygon
TWO_WHEELERS = {
    "bicycle": dict(wheels=((-0.52, 0.34), (0.52, 0.34)), radius=0.34, saddle=(-0.2, 0.95),
                    frame=[(-0.52, 0.34), (-0.2, 0.95), (0.0, 0.34), (0.45, 0.92), (0.52, 0.34), (0.45, 0.92),
                           (0.4, 1.05), (-0.2, 0.95), (0.0, 0.34), (-0.52, 0.34)], body=None),
    "motorcycle": dict(wheels=((-0.7, 0.32), (0.7, 0.32)), radius=0.32, saddle=(-0.25, 0.82),
                       frame=[(0.7, 0.32), (0.52, 0.95), (0.45, 1.12)],
                       body=[(-0.75, 0.55), (-0.55, 0.82), (0.05, 0.85), (0.45, 0.98), (0.5, 0.75), (0.25, 0.35),
                             (-0.35, 0.35)]),
}


# ------------------------------------------------------------------------------------------------ scene builder
class _Street:
    """Builds one street: layout in metres, then shapes in reference pixels (far to near)."""

    def __init__(self, rng: np.random.Generator, featured: bool) -> None:
        self.rng = rng
        self.featured = featured
        self.cam = Camera(f=rng.uniform(1900, 2300), u0=REF_W / 2 + rng.uniform(-90, 90),
                          v0=rng.uniform(400, 500), height=rng.uniform(1.15, 1.35))
        self.ground: list[Shape] = []
        self.items: list[tuple[float, list[Shape]]] = []  # (distance, shapes), sorted far to near at the end

    # ------------------------------------------------------------------ helpers
    def chance(self, p: float) -> bool:
        """True with probability p, always True for the frame that must feature everything."""
        return self.featured or self.rng.random() < p

    def in_view(self, x: float, z: float) -> float:
        """``z`` pushed back, if needed, so that a thing at lateral offset ``x`` is well inside the image."""
        return max(z, abs(x) * self.cam.f / 800)

    def shape(self, points: np.ndarray, **kw) -> Shape:
        """A Shape with its own texture seed, from (N, 3) points in metres or (N, 2) points in reference pixels."""
        points = np.asarray(points, dtype=np.float64)
        pixels = self.cam.project(points) if points.shape[1] == 3 else points
        return Shape(pixels, seed=int(self.rng.integers(2**31)), **kw)

    def ground_rect(self, y: float, x0: float, x1: float, z0: float, z1: float, **kw) -> None:
        """A horizontal rectangle at height ``y``, painted before everything that stands (road, markings, ...)."""
        self.ground.append(self.shape(_quad("y", y, x0, x1, z0, z1), **kw))

    def strip(self, side: int, x: float, width: float, y: float, **kw) -> None:
        """A ground strip along the whole street, from ``x`` to ``x + width`` metres out on ``side`` (-1 or 1)."""
        self.ground_rect(y, *sorted((side * x, side * (x + width))), 0.8, Z_FAR, **kw)

    def add(self, x_near: float, z_near: float, shapes: list[Shape]) -> None:
        self.items.append((float(np.hypot(x_near, z_near)), shapes))

    def billboard(self, outline: np.ndarray, x: float, z: float, y0: float = 0.0, sx: float = 1.0,
                  sy: float = 1.0) -> np.ndarray:
        """A flat outline (x right, y up, metres) standing at (x, z), projected to reference pixels."""
        pts = np.asarray(outline, dtype=np.float64)
        xyz = np.stack([x + pts[:, 0] * sx, y0 + pts[:, 1] * sy, np.full(len(pts), z)], axis=1)
        return self.cam.project(xyz)

    # ------------------------------------------------------------------ boxes (buildings, vehicles, furniture)
    def box_faces(self, box: tuple, color: tuple, texture: str, amp: float, windows: tuple | None,
                  depth: float) -> list[tuple[float, list[Shape]]]:
        """Visible faces of an axis-aligned box (x0, x1, y0, y1, z0, z1), each with its window grid."""
        x0, x1, y0, y1, z0, z1 = box
        faces = [("front", True, _quad("z", z0, x0, x1, y0, y1), "x", (x0, x1)),  # windows along x, over (x0, x1)
                 ("side", x0 > 0, _quad("x", x0, z0, z1, y0, y1), "z", (z0, z1)),
                 ("side", x1 < 0, _quad("x", x1, z0, z1, y0, y1), "z", (z0, z1)),
                 ("top", y1 < self.cam.height, _quad("y", y1, x0, x1, z0, z1), None, None),
                 ("bottom", y0 > self.cam.height, _quad("y", y0, x0, x1, z0, z1), None, None)]
        out = []
        for kind, visible, corners, along, extent in faces:
            if not visible:
                continue
            shade = np.clip(np.asarray(color) * FACE_SHADE[kind], 0, 1)
            shapes = [self.shape(corners, color=tuple(shade), texture=texture, amp=amp, depth=depth)]
            if windows and along:
                shapes += self.window_grid(corners, along, extent, (y0, y1), windows, depth)
            out.append((float(np.linalg.norm(corners.mean(axis=0))), shapes))
        return out

    def window_grid(self, corners: np.ndarray, along: str, extent: tuple, ys: tuple, windows: tuple,
                    depth: float) -> list[Shape]:
        """Windows on a face: rows between (wy0, wy1) every ``row`` m, columns anchored to world multiples."""
        wy0, wy1, row, col, frac_y, frac_x, glass = windows
        plane = corners[0, 0] if along == "z" else corners[0, 2]
        out = []
        for y in np.arange(max(wy0, ys[0]), min(wy1, ys[1]) - row * frac_y + 1e-6, row):
            for a in np.arange(np.floor(extent[0] / col) * col, extent[1], col):
                a0, a1 = max(a + col * (1 - frac_x) / 2, extent[0]), min(a + col * (1 + frac_x) / 2, extent[1])
                if a1 - a0 < col * frac_x * 0.3:
                    continue
                pts = self.cam.project(_quad("x" if along == "z" else "z", plane, a0, a1, y, y + row * frac_y))
                if np.ptp(pts[:, 1]) < 5:  # too small to matter at the reference size: skip
                    continue
                tone = np.clip(np.asarray(glass) * self.rng.uniform(0.6, 1.5), 0, 1)
                out.append(self.shape(pts, color=tuple(tone), texture="metal", amp=0.25, depth=depth))
        return out

    def solid(self, label: str, boxes: list[tuple], colors: list[tuple], texture: str, amp: float,
              hull_color: tuple, windows: list[tuple | None] | None = None) -> list[Shape]:
        """Label polygon = convex hull of the boxes; the faces of all boxes painted far to near on top."""
        corners = np.concatenate([[(x, y, z) for x in b[:2] for y in b[2:4] for z in b[4:6]] for b in boxes])
        depth = min(b[4] for b in boxes)
        hull = self.shape(convex_hull(self.cam.project(corners)), label=label, color=hull_color, depth=depth)
        faces = []
        for i, (box, color) in enumerate(zip(boxes, colors)):
            faces += self.box_faces(box, color, texture, amp, windows[i] if windows else None, depth)
        faces.sort(key=lambda item: -item[0])
        return [hull] + [s for _, shapes in faces for s in shapes]

    # ------------------------------------------------------------------ layout
    def build(self) -> list[Shape]:
        rng = self.rng
        lanes, lane_w = int(rng.integers(3 if self.featured else 2, 5)), rng.uniform(3.0, 3.6)
        ego = lanes // 2 if self.featured else int(rng.integers(lanes))
        self.left = -(ego + 0.5) * lane_w + rng.uniform(-0.4, 0.4)
        self.right = self.left + lanes * lane_w
        self.lanes = [self.left + (i + 0.5) * lane_w for i in range(lanes)]
        self.ego_lane, self.lane_w = ego, lane_w
        sunny = rng.random() < 0.35
        sky = _pick(rng, "sunny sky" if sunny else "overcast sky", 0.05)
        self.look = dict(sky=sky, haze=rng.uniform(60, 250), haze_color=tuple(np.clip(np.asarray(sky) + 0.1, 0, 1)))
        self.sky(sky)
        self.road()
        for side, plan in self.plan_sides().items():
            self.street_side(side, abs(self.left if side < 0 else self.right), plan)
        self.traffic()
        self.far_end()
        if sunny:  # cast shadows of the houses across the street (they darken the ground only)
            for _ in range(int(rng.integers(2, 6))):
                z = rng.uniform(3, 80)
                xs = sorted((self.left - 6, self.left + rng.uniform(2, 12)) if rng.random() < 0.5 else
                            (self.right - rng.uniform(2, 12), self.right + 6))
                self.ground_rect(0.13, *xs, z, z + rng.uniform(5, 25), color=(0.5, 0.55, 0.65), mode="shade")
        items = [shape for _, item in sorted(self.items, key=lambda it: -it[0]) for shape in item]
        return self.ground + items + self.frame_border()

    def plan_sides(self) -> dict[int, SidePlan]:
        """What each side of the street holds; the featured frame puts every rare thing where it stays visible."""
        rng = self.rng
        if self.featured:
            busy, green = (-1, 1) if rng.random() < 0.5 else (1, -1)
            return {busy: SidePlan(parking=True, runs=("wall", "vegetation"), groups=("persongroup",),
                                   furniture=("static",)),
                    green: SidePlan(terrain=rng.uniform(3, 5), runs=("fence", "guard rail"), groups=("bicyclegroup",),
                                    furniture=("dynamic",))}
        parking_side = int(rng.choice([-1, 1])) if rng.random() < 0.3 else 0
        plans = {}
        for side in (-1, 1):
            plans[side] = SidePlan(
                parking=side == parking_side, terrain=rng.uniform(1.5, 4) if rng.random() < 0.4 else 0.0,
                runs=tuple(k for k, p in RUN_CHANCE.items() if rng.random() < p),
                groups=tuple(g for g in ("persongroup", "bicyclegroup") if rng.random() < 0.15),
                furniture=tuple(k for k in ("static", "dynamic") if rng.random() < 0.3),
                two_wheeler=rng.random() < 0.25)
        return plans

    def sky(self, color: tuple) -> None:
        """The sky down to just below the horizon, and the ground plane to the horizon under everything else."""
        self.ground.append(self.shape(rect(0, 0, REF_W, self.cam.v0 + 15), label="sky", color=color, texture="sky",
                                      amp=0.12, depth=Z_FAR))
        self.ground_rect(0, -600, 600, 2, Z_FAR, label="ground", color=_pick(self.rng, "terrain"), texture="grain",
                         amp=0.3)

    def road(self) -> None:
        """Asphalt with repair patches, lane and edge markings and sometimes a crosswalk."""
        rng = self.rng
        color = _pick(rng, "asphalt")
        self.ground_rect(0, self.left, self.right, 0.8, Z_FAR, label="road", color=color, texture="grain", amp=0.18)
        for _ in range(int(rng.integers(0, 5))):  # repair patches, a bit darker or lighter
            x, z = rng.uniform(self.left, self.right), rng.uniform(4, 60)
            patch = np.array([[x + rng.uniform(-2, 0), 0, z], [x + rng.uniform(0, 2), 0, z],
                              [x + rng.uniform(0, 2), 0, z + rng.uniform(2, 10)],
                              [x + rng.uniform(-2, 0), 0, z + rng.uniform(2, 10)]])
            patch[:, 0] = np.clip(patch[:, 0], self.left, self.right)
            self.ground.append(self.shape(patch, color=tuple(np.asarray(color) * rng.uniform(0.75, 1.2)),
                                          texture="grain", amp=0.3))
        marking = dict(color=(0.85, 0.85, 0.8), texture="grain", amp=0.15)
        dash, gap = rng.uniform(2, 4), rng.uniform(4, 9)
        for x in [self.left + i * self.lane_w for i in range(1, len(self.lanes))]:
            for z in np.arange(rng.uniform(1, 6), 120, dash + gap):
                self.ground_rect(0, x - 0.07, x + 0.07, z, z + dash, **marking)
        for x in (self.left + 0.3, self.right - 0.3):
            self.ground_rect(0, x - 0.08, x + 0.08, 1, Z_FAR, **marking)
        self.crosswalk = rng.uniform(10, 16) if self.featured else rng.uniform(12, 30) if rng.random() < 0.35 else 0
        if self.crosswalk:
            for x in np.arange(self.left + 0.5, self.right - 0.5, 1.0):
                self.ground_rect(0, x, x + 0.5, self.crosswalk, self.crosswalk + 3.5, **marking)

    def street_side(self, side: int, edge: float, plan: SidePlan) -> None:
        """Parking strip, curb and sidewalk, terrain strip, then walls/fences, trees and buildings along one side."""
        rng = self.rng
        x = edge
        if plan.parking:
            width = rng.uniform(2.0, 2.6)
            self.strip(side, x, width, 0, label="parking", color=_pick(rng, "paving"), texture="tiles", amp=0.4)
            for z in np.arange(rng.uniform(3, 8), 60, 5.5):
                if rng.random() < (0.15 if self.featured else 0.5):
                    self.add(x, z, self.vehicle("car", side * (x + width / 2), z + 0.5))
            x += width
        walk = rng.uniform(2.5, 4.0 if self.featured else 5.5)
        curb, color = 0.12, _pick(rng, "paving")
        self.strip(side, x, walk, curb, label="sidewalk", color=color, texture="tiles", amp=0.35)
        self.ground.append(self.shape(_quad("x", side * x, 0.8, Z_FAR, 0, curb), label="sidewalk",
                                      color=tuple(np.clip(np.asarray(color) * 1.15, 0, 1)), texture="grain", amp=0.2))
        inner, x = x, x + walk
        if plan.terrain:
            self.strip(side, x, plan.terrain, curb, label="terrain", color=_pick(rng, "terrain"), texture="streak",
                       amp=0.4)
            x += plan.terrain
        z = self.in_view(x, rng.uniform(3, 12)) if self.featured else rng.uniform(3, 12)
        for label in plan.runs:  # one after another along the outer edge
            length = rng.uniform(10, 25) if self.featured else rng.uniform(12, 40)
            self.run(label, side * (x - 0.3), rng.uniform(*RUN_HEIGHT[label]), z, z + length)
            z += length + rng.uniform(0, 10)
        self.sidewalk_life(side, inner, x, plan)
        self.buildings(side, x + rng.uniform(0, 1.5))

    def run(self, label: str, x: float, height: float, z0: float, z1: float) -> None:
        """One wall / fence / hedge / guard rail from z0 to z1 at lateral position x, in short pieces."""
        rng = self.rng
        palette, texture, amp = RUN_STYLE[label]
        color = _pick(rng, palette)
        see_through = label == "guard rail" or (label == "fence" and rng.random() < 0.75)
        gap = rng.uniform(0.12, 0.35) if label == "fence" else 2.0
        rails = RAILS.get(label, ())
        for a, b in _spans(z0, z1):
            shapes = [self.shape(_quad("x", x, a, b, 0, height), label=label, color=color, texture=texture, amp=amp,
                                 depth=a, mode="none" if see_through else "paint")]
            if see_through:  # pickets/posts and rails only: what is behind shows through, labelled as the fence
                if self.cam.f * gap / b >= 2.0:
                    for z in np.arange(np.ceil(a / gap) * gap, b, gap):
                        shapes.append(self.shape(np.array([[x, 0, z], [x, height, z]]), color=color, depth=a,
                                                 line=max(1.0, self.cam.f * 0.05 / z), closed=False))
                for lo, hi in rails:
                    shapes.append(self.shape(_quad("x", x, a, b, lo * height, hi * height), color=color,
                                             texture=texture, amp=amp, depth=a))
            self.add(x, a, shapes)

    def sidewalk_life(self, side: int, inner: float, outer: float, plan: SidePlan) -> None:
        """Poles with lights/signs at the curb, trees, pedestrians, parked two-wheelers, furniture and groups."""
        rng = self.rng
        z = rng.uniform(9, 16)
        while z < 90:
            self.pole(side * (inner + rng.uniform(0.3, 0.8)), z)
            z += rng.uniform(10, 30)
        if rng.random() < 0.6:
            for z in np.arange(rng.uniform(4, 12), 110, rng.uniform(8, 18)):
                self.tree(side * (outer - rng.uniform(0.6, 1.2)), z + rng.uniform(-2, 2))
        for _ in range(int(rng.integers(1, 7))):
            self.person(side * rng.uniform(inner + 0.5, outer - 0.3), rng.uniform(4, 60))
        if plan.two_wheeler:
            self.two_wheeler(str(rng.choice(["bicycle", "motorcycle"])), side * (outer - 1.0), rng.uniform(8, 25),
                             rider=False)
        for label in plan.furniture:
            x = side * rng.uniform(inner + 0.8, outer)
            self.furniture(label, x, self.in_view(x, rng.uniform(6, 30)) + (10 if self.featured else 0))
        if "bicyclegroup" in plan.groups:  # a bicycle rack
            x = side * (outer - 0.8)
            z0 = self.in_view(x, rng.uniform(10, 18))
            self.group("bicyclegroup", x, [self.two_wheeler("bicycle", x, z0 + 0.7 * i, rider=False, keep=True,
                                                            squeeze=0.6) for i in range(int(rng.integers(3, 7)))])
        if "persongroup" in plan.groups:  # a small crowd further down the sidewalk
            x = side * (inner + outer) / 2
            z0 = self.in_view(x, rng.uniform(18, 35))
            self.group("persongroup", x, [self.person(x + rng.uniform(-1, 1), z0 + rng.uniform(0, 3), keep=True)
                                          for _ in range(int(rng.integers(3, 7)))])

    def buildings(self, side: int, x: float) -> None:
        rng = self.rng
        z = rng.uniform(1.0, 8.0)
        while z < 160:
            length = rng.uniform(6, 25)
            if rng.random() < 0.12:  # an alley: a tree or just sky between the houses
                if rng.random() < 0.7:
                    self.tree(side * (x + 3), z + 2, big=True)
                z += rng.uniform(4, 10)
                continue
            height, setback, depth = rng.uniform(6, 30), rng.uniform(0, 1.5), 15.0
            color = _pick(rng, "facade")
            texture = "brick" if rng.random() < 0.3 else "grain"
            glass = (0.15, 0.18, 0.22) if rng.random() < 0.7 else (0.45, 0.5, 0.55)
            row = rng.uniform(2.9, 3.6)
            windows = (rng.uniform(0.8, 3.5), height - 1.0, row, rng.uniform(2.2, 4.0), rng.uniform(0.45, 0.7),
                       rng.uniform(0.35, 0.7), glass)
            xs = sorted((side * (x + setback), side * (x + setback + depth)))
            for a, b in _spans(z, z + length, 1.3):
                box = (xs[0], xs[1], 0.0, height, a, b)
                self.add(x + setback, a, self.solid("building", [box], [color], texture, 0.25, color, [windows]))
            if rng.random() < 0.25:  # vegetation peeking above the roofs behind
                self.tree(side * (x + depth + 5), z + length / 2, big=True, height=height + rng.uniform(2, 8))
            z += length

    def far_end(self) -> None:
        """The street ends in a crossing building row, trees, or open sky."""
        rng = self.rng
        z = rng.uniform(120, 220)
        if rng.random() < 0.6:
            x = -60.0
            while x < 60:
                width = rng.uniform(8, 25)
                self.add(0, z, self.solid("building", [(x, x + width, 0, rng.uniform(8, 30), z, z + 15)],
                                          [_pick(rng, "facade")], "grain", 0.2, (0.5, 0.5, 0.5)))
                x += width
        else:
            for x in np.arange(-60, 60, 9):
                self.tree(x + rng.uniform(-3, 3), z, big=True)

    # ------------------------------------------------------------------ objects
    def pole(self, x: float, z: float) -> None:
        """A pole at the curb, often carrying a traffic light (lamps facing the camera) and a sign plate."""
        rng = self.rng
        height = rng.uniform(3.5, 7.0)
        color = _pick(rng, "metal")
        r = 0.08
        self.add(x, z, self.solid("pole", [(x - r, x + r, 0, height, z - r, z + r)], [color], "metal", 0.2, color))
        if self.chance(0.5):  # a traffic light on top or mounted on the side
            y0 = min(height, rng.uniform(2.6, 4.2)) - 0.9
            light = self.solid("traffic light", [(x - 0.2, x + 0.2, y0, y0 + 0.9, z - 0.35, z - 0.1)],
                               [(0.12, 0.12, 0.1)], "flat", 0.0, (0.12, 0.12, 0.1))
            lit = int(rng.integers(3))
            for i, tone in enumerate([(0.9, 0.15, 0.1), (0.95, 0.7, 0.1), (0.2, 0.85, 0.4)]):
                lamp = ellipse(0, y0 + 0.75 - i * 0.29, 0.1, 0.1, 10)
                light.append(Shape(self.billboard(lamp, x, z - 0.36), color=tone if i == lit else
                                   tuple(0.3 * np.asarray(tone)), depth=z))
            self.add(x, z - 0.4, light)
        if self.chance(0.6):
            outline, rim, face = SIGNS[int(rng.integers(len(SIGNS)))]
            yc = rng.uniform(2.0, min(height, 3.2))
            plate = [self.shape(self.billboard(outline, x, z - 0.15, yc), label="traffic sign", color=rim, depth=z),
                     self.shape(self.billboard(outline, x, z - 0.15, yc, 0.75, 0.75), color=face, texture="grain",
                                amp=0.1, depth=z)]
            self.add(x, z - 0.2, plate)

    def tree(self, x: float, z: float, big: bool = False, height: float | None = None) -> None:
        """Trunk and a bumpy crown (both vegetation), sometimes with a terrain patch around the trunk."""
        rng = self.rng
        height = height or rng.uniform(5, 12 if big else 8)
        radius = rng.uniform(1.5, 4.5 if big else 3.0)
        trunk = np.array([[-0.15, 0], [0.15, 0], [0.12, height - radius], [-0.12, height - radius]])
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        bumps = radius * (1 + 0.18 * rng.standard_normal(24))
        crown = np.stack([np.cos(angles) * bumps, height - radius * 0.9 + np.sin(angles) * bumps * 0.9], axis=1)
        color = _pick(rng, "vegetation")
        shapes = [self.shape(self.billboard(trunk, x, z), label="vegetation", color=(0.3, 0.24, 0.18),
                             texture="streak", amp=0.2, depth=z),
                  self.shape(self.billboard(crown, x, z), label="vegetation", color=color, texture="blotch", amp=0.55,
                             depth=z)]
        if rng.random() < 0.4 and not big:  # a terrain patch around the trunk
            shapes.insert(0, self.shape(_quad("y", 0.12, x - 0.8, x + 0.8, z - 0.8, z + 0.8), label="terrain",
                                        color=_pick(rng, "terrain"), texture="streak", amp=0.4, depth=z))
        self.add(x, z, shapes)

    def person(self, x: float, z: float, keep: bool = False, y0: float = 0.0, label: str = "person",
               height: float | None = None) -> list[Shape]:
        """A pedestrian (or rider) facing the camera: trousers, shirt, skin and hair drawn as bands of one outline."""
        rng = self.rng
        height = height or rng.uniform(1.55, 1.95)
        outline, *bands = person_outline(rng.uniform(0.0, 0.14), rng.uniform(-0.05, 0.05))
        pants, shirt, skin = random_color(rng), random_color(rng), _pick(rng, "skin")
        shapes = [self.shape(self.billboard(outline * height, x, z, y0), label=label, color=pants, texture="grain",
                             amp=0.2, depth=z)]
        for band, color in zip(bands, (shirt, skin, random_color(rng))):  # hair colour drawn after the first seed
            if len(band) >= 3:
                shapes.append(self.shape(self.billboard(band * height, x, z, y0), color=color, texture="grain",
                                         amp=0.2, depth=z))
        if not keep:
            self.add(x, z, shapes)
        return shapes

    def two_wheeler(self, kind: str, x: float, z: float, rider: bool, keep: bool = False,
                    squeeze: float = 1.0) -> list[Shape]:
        """Side-view bicycle or motorcycle (``squeeze`` < 1 fakes an oblique view), optionally with its rider."""
        rng = self.rng
        spec = TWO_WHEELERS[kind]
        flip = 1 if rng.random() < 0.5 else -1
        wheel_pts = [ellipse(cx, cy, spec["radius"], spec["radius"], 14) for cx, cy in spec["wheels"]]
        outline = np.concatenate(wheel_pts + [np.array(part) for part in (spec["frame"], spec["body"]) if part])
        color = random_color(rng)
        proj = partial(self.billboard, x=x, z=z, sx=flip * squeeze)
        stroke = max(1.0, self.cam.f * 0.035 / z)
        tyre = dict(texture="grain", amp=0.2) if kind == "motorcycle" else dict(line=stroke)
        shapes = [self.shape(convex_hull(proj(outline)), label=kind, mode="none", depth=z)]
        shapes += [self.shape(proj(wheel), color=(0.07, 0.07, 0.08), depth=z, **tyre) for wheel in wheel_pts]
        if spec["body"]:
            shapes.append(self.shape(proj(spec["body"]), color=color, texture="metal", amp=0.3, depth=z))
        shapes.append(self.shape(proj(spec["frame"]), color=color, depth=z, line=stroke, closed=False))
        if rider:
            shapes += self.person(x - flip * squeeze * 0.1, z - 0.01, keep=True, y0=spec["saddle"][1] - 0.8,
                                  label="rider", height=rng.uniform(1.6, 1.85))
        if not keep:
            self.add(x, z, shapes)
        return shapes

    def vehicle(self, kind: str, x: float, z: float, across: bool = False) -> list[Shape]:
        """A car / truck / bus / train as boxes, with windows, lights, wheels and sometimes a license plate."""
        rng = self.rng
        width, length, parts, band, wheel_r, wheel_at = VEHICLES[kind]
        length *= rng.uniform(0.9, 1.1)
        paint = _pick(rng, "car") if kind == "car" else random_color(rng)
        boxes, colors = [], []
        for fx0, fx1, y0, y1, fz0, fz1, material in parts:
            if across:  # long axis along x (a tram crossing the street): the near face is its side
                boxes.append((x - length / 2 + fz0 * length, x - length / 2 + fz1 * length, y0, y1,
                              z + fx0 * width, z + fx1 * width))
            else:
                boxes.append((x - width / 2 + fx0 * width, x - width / 2 + fx1 * width, y0, y1,
                              z + fz0 * length, z + fz1 * length))
            colors.append({"glass": GLASS, "body": paint}.get(material) or _pick(rng, "concrete"))
        windows = [(band[0], band[1], band[1] - band[0], band[2], 1.0, band[3], GLASS) if band else None] * len(boxes)
        shapes = self.solid(kind, boxes, colors, "metal", 0.3, GLASS, windows)
        near, depth = boxes[0], min(b[4] for b in boxes)
        far_z = max(b[5] for b in boxes)
        shapes.insert(0, self.shape(_quad("y", 0.01, near[0] - 0.3, near[1] + 0.3, near[4] - 0.3, far_z),
                                    color=(0.45, 0.45, 0.5), mode="shade", depth=depth))  # shadow underneath
        if across:
            return shapes
        xc, yl = (near[0] + near[1]) / 2, min(near[3] - 0.25, 1.0 if kind == "car" else 1.2)
        lamp = (0.85, 0.1, 0.08) if rng.random() < 0.8 else (0.95, 0.95, 0.85)  # tail or head lights
        for sign in (-1, 1):
            lx = xc + sign * (width / 2 - 0.2)
            shapes.append(self.shape(_quad("z", near[4] - 0.01, lx - 0.15, lx + 0.15, yl - 0.12, yl), color=lamp,
                                     depth=depth))
        plate = self.shape(_quad("z", near[4] - 0.01, xc - 0.26, xc + 0.26, 0.38, 0.5), color=(0.9, 0.9, 0.85),
                           depth=depth)
        if self.chance(0.4):  # annotated, as some real cars are; id -1: never drawn into the label images
            plate.label = "license plate"
        shapes.append(plate)
        side_x = near[0] if near[0] > 0 else near[1] if near[1] < 0 else None
        for fz in wheel_at if side_x is not None else ():
            circle = ellipse(z + fz * length, wheel_r, wheel_r, wheel_r, 12)
            shapes.append(self.shape(np.c_[np.full(12, side_x), circle[:, 1], circle[:, 0]],
                                     color=(0.06, 0.06, 0.07), depth=depth))
        return shapes

    def furniture(self, label: str, x: float, z: float) -> None:
        """A box-shaped piece of ``static`` (bench, billboard, bollard) or ``dynamic`` (bin, cart) street furniture."""
        rng = self.rng
        w, d, h = FURNITURE[label][int(rng.integers(len(FURNITURE[label])))]
        color = random_color(rng) if label == "dynamic" else _pick(rng, "concrete")
        self.add(x, z, self.solid(label, [(x - w / 2, x + w / 2, 0.12, 0.12 + h, z, z + d)], [color], "grain", 0.2,
                                  color))

    def group(self, label: str, x: float, members: list[list[Shape]]) -> None:
        """Several objects annotated as one ``...group`` polygon (their convex hull); members keep their looks."""
        members = sorted(members, key=lambda m: -min(s.depth for s in m))
        shapes = [s for member in members for s in member]
        outline = np.concatenate([s.points for s in shapes if s.label])
        for s in shapes:
            s.label = None
        depth = min(s.depth for s in shapes)
        hull = self.shape(convex_hull(outline), label=label, mode="none", depth=depth)
        self.add(x, depth, [hull] + [s for s in shapes if s.mode != "none"])

    def traffic(self) -> None:
        """Vehicles in the lanes, riders, a crossing tram, pedestrians on the crosswalk and a queue of cars."""
        rng = self.rng
        # the featured frame: a truck and a bus lead two lanes, a car queue (cargroup) waits in the ego lane
        special = ["bus", "truck"] if self.featured else []
        for i, lane in enumerate(self.lanes):
            if self.featured and i == self.ego_lane:
                self.car_queue(lane, rng.uniform(30, 45))
                continue
            z = rng.uniform(30, 40) if special else rng.uniform(8, 22) if i == self.ego_lane else rng.uniform(5, 16)
            while z < 70:
                kind = special.pop() if special else str(rng.choice(["car"] * 14 + ["truck", "bus", "motorcycle",
                                                                                     "bicycle"]))
                if kind in ("motorcycle", "bicycle"):
                    self.two_wheeler(kind, lane + rng.uniform(-0.6, 0.6), z, rider=True, squeeze=0.45)
                    z += rng.uniform(6, 20)
                    continue
                z = max(z, 14.0) if kind in ("truck", "bus") else z  # big vehicles not right in front
                self.add(max(0.0, abs(lane) - VEHICLES[kind][0] / 2), z,
                         self.vehicle(kind, lane + rng.uniform(-0.3, 0.3), z))
                z += VEHICLES[kind][1] + rng.uniform(4, 25)
        if self.chance(0.15):
            z = rng.uniform(50, 70) if self.featured else rng.uniform(60, 110)
            self.add(0, z, self.vehicle("train", rng.uniform(-10, 10), z, across=True))
        if self.crosswalk:
            for _ in range(int(rng.integers(1, 4))):
                self.person(rng.uniform(self.left, self.right), self.crosswalk + rng.uniform(0.5, 3))
            kinds = (["bicycle", "motorcycle"] if self.featured else
                     [str(rng.choice(["bicycle", "motorcycle"]))] if rng.random() < 0.5 else [])
            for k, kind in enumerate(kinds):  # riders crossing, seen from the side
                x = self.left + (k + 0.5 + rng.uniform(-0.2, 0.2)) * (self.right - self.left) / len(kinds)
                self.two_wheeler(kind, x, self.crosswalk + 1.5 + k, rider=True)
        if not self.featured and rng.random() < 0.2:
            lane = self.lanes[int(rng.integers(len(self.lanes)))]
            self.car_queue(lane, rng.uniform(60, 90))

    def car_queue(self, lane: float, z0: float) -> None:
        """Three to five cars waiting one behind the other from ``z0`` on, annotated as one cargroup."""
        rng = self.rng
        self.group("cargroup", abs(lane), [self.vehicle("car", lane + rng.uniform(-0.4, 0.4), z0 + 6 * k)
                                           for k in range(int(rng.integers(3, 6)))])

    def frame_border(self) -> list[Shape]:
        """Void regions the real data has at the frame: ego-vehicle hood, rectification border, out of roi."""
        rng = self.rng
        hood = rng.uniform(50, 110)
        arc = ellipse(REF_W / 2, REF_H, REF_W * 0.75, hood, 24, 0, np.pi, 2 * np.pi)
        shapes = [self.shape(np.vstack([arc, [[REF_W, REF_H], [0, REF_H]]]), label="ego vehicle",
                             color=_pick(rng, "car", 0.02), texture="metal", amp=0.5, depth=2)]
        for x_edge, sign in ((0.0, 1), (REF_W, -1)):
            top, bottom = rng.uniform(0, 10), rng.uniform(6, 18)
            wedge = np.array([[x_edge, 0], [x_edge + sign * top, 0], [x_edge + sign * bottom, REF_H], [x_edge, REF_H]])
            shapes.append(Shape(wedge, label="rectification border", color=(0.02, 0.02, 0.02), depth=1))
        band = rng.uniform(6, 12)
        shapes.append(Shape(rect(0, REF_H - band, REF_W, REF_H), label="out of roi", mode="none", depth=1))
        return shapes


# ------------------------------------------------------------------------------------------------ scene -> frame
LOOK = dict(gain=(0.7, 1.3), cast=0.05, gamma=(0.8, 1.25), contrast=(0.75, 1.2), noise=(0.008, 0.03),
            blur=(0.5, 1.6), vignette=(0, 0.35))  # camera settings: ranges of random_look
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DELETABLE = ("car", "bicycle", "motorcycle")  # never reach the top rows, where deleted outlines are put


def build_scene(seed: int, split: str, index: int, max_attempts: int = 25) -> Scene:
    """The scene of frame ``index`` of ``split``; frame 0 of a split features every class (checked, re-drawn)."""
    featured = index == 0
    for attempt in range(max_attempts):
        rng = np.random.default_rng([seed, SPLITS.index(split), index, attempt])
        street = _Street(rng, featured)
        shapes = street.build()
        for _ in range(int(rng.integers(1, 3)) if street.chance(0.3) else 0):  # annotation mistakes, deleted
            x, y, w, h = rng.uniform(100, 1800), rng.uniform(0, 120), rng.uniform(40, 200), rng.uniform(30, 80)
            shapes.insert(int(rng.integers(len(shapes))), Shape(rect(x, y, x + w, y + h), deleted=True, mode="none",
                                                               label=str(rng.choice(DELETABLE))))
        date = (f"{rng.integers(1, 29):02d}-{MONTHS[rng.integers(12)]}-{rng.integers(2014, 2016)} "
                f"{rng.integers(8, 20):02d}:{rng.integers(60):02d}:{rng.integers(60):02d}")
        look = dict(street.look, **random_look(rng, LOOK), seed=int(rng.integers(2**31)))
        scene = Scene(street.cam, shapes, look, date)
        if not featured or _shows_everything(scene):
            return scene
    return scene


def _shows_everything(scene: Scene) -> bool:
    """True if the scene, rasterised at PROBE_SIZE, shows all 19 evaluation classes and the three group labels."""
    probe = render(scene, *PROBE_SIZE, paint=False)
    return EVAL_IDS <= set(np.unique(probe.label_ids)) and GROUP_IDS <= set(np.unique(probe.instance_ids))


@dataclass
class Frame:
    """One rendered frame: the photo, the polygon annotation and the instanceIds map (labelIds/color derived)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    annotation: dict  # the gtFine_polygons.json content
    instance_ids: np.ndarray  # (H, W) uint16

    @property
    def label_ids(self) -> np.ndarray:
        ids = self.instance_ids
        return np.where(ids >= 1000, ids // 1000, ids).astype(np.uint8)

    @property
    def color(self) -> np.ndarray:
        """RGBA colour image, as the official tool writes it."""
        rgb = ID_TO_COLOR[self.label_ids]
        return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def _instance_value(label: str, counts: dict[str, int]) -> int | None:
    """The instanceIds value of the next polygon with ``label`` (official rule), or None if never drawn."""
    lab = cityscapes_label(label)
    if lab.id < 0:
        return None
    if lab.hasInstances and lab.name == label:  # groups keep the plain class id
        counts[label] = counts.get(label, -1) + 1
        return lab.id * 1000 + counts[label]
    return lab.id


def render(scene: Scene, height: int, width: int, paint: bool = True) -> Frame:
    """Scale the scene to ``height`` x ``width``: integer polygons, painted photo and label maps."""
    sx, sy = width / REF_W, height / REF_H
    cam, look = scene.camera, scene.look
    instance = np.zeros((height, width), dtype=np.uint16)
    painter = Painter(height, width, sx) if paint else None
    rows = (np.arange(height) + 0.5) / sy - cam.v0
    row_depth = np.where(rows > 0.5, cam.f * cam.height / np.maximum(rows, 0.5), Z_FAR)
    objects, counts = [], {}
    for shape in scene.shapes:
        if shape.line:
            pts = np.clip(np.rint(shape.points * (sx, sy)), -1e5, 1e5).astype(np.int32)
        else:
            pts = to_pixels(shape.points, sx, sy, width, height)
            if pts is None:
                continue
        if shape.label:
            objects.append({"label": shape.label, "polygon": pts.tolist(), "deleted": int(shape.deleted),
                            "id": len(objects), "verified": 1, "user": "seglab-synth", "date": scene.date})
            value = None if shape.deleted else _instance_value(shape.label, counts)
            if value is not None:
                cv2.fillPoly(instance, [pts], value)
        if paint and shape.mode != "none" and not shape.deleted:
            rng = None if shape.texture == "flat" else np.random.default_rng(shape.seed)
            depth = row_depth if shape.depth is None else shape.depth  # ground surfaces: the depth of each row
            haze = 0.85 * (1 - np.exp(-np.asarray(depth) / look["haze"]))
            painter.fill(pts, shape.color, rng, shape.texture, shape.amp, shape.mode, shape.line, shape.closed,
                         haze, look["haze_color"])
    annotation = {"imgHeight": height, "imgWidth": width, "objects": objects}
    if not paint:
        return Frame(np.zeros((height, width, 3), np.uint8), annotation, instance)
    image = camera_finish(painter.image, np.random.default_rng(look["seed"]), sx, **{k: look[k] for k in LOOK})
    return Frame(image, annotation, instance)


def frame_name(split: str, index: int) -> tuple[str, str]:
    """(city, file stem) of frame ``index``: cities take turns, stems look like ``aachen_000003_000019``."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_000019"


def write_frame(root: str, task: tuple[str, int], seed: int, height: int, width: int) -> tuple[str, list[int]]:
    """Render one frame and write its five files in the Cityscapes layout; returns (split, label ids present)."""
    split, index = task
    city, stem = frame_name(split, index)
    frame = render(build_scene(seed, split, index), height, width)
    gt = os.path.join(root, "gtFine", split, city, f"{stem}_gtFine_")
    photo = os.path.join(root, "leftImg8bit", split, city, f"{stem}_leftImg8bit.png")
    for path, image in ((photo, cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)), (gt + "labelIds.png", frame.label_ids),
                        (gt + "instanceIds.png", frame.instance_ids),
                        (gt + "color.png", cv2.cvtColor(frame.color, cv2.COLOR_RGBA2BGRA))):
        write_file(path, cv2.imencode(".png", image)[1].tobytes())
    write_file(gt + "polygons.json", json.dumps(frame.annotation, indent=4).encode())
    return split, sorted(int(i) for i in np.unique(frame.label_ids))
