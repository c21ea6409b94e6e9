"""Label tables: Cityscapes (taken from cityscapesscripts, never retyped) and Pascal VOC, plus lookup tables.

Every LUT is a 256-entry numpy array so that ``lut[mask]`` converts a whole uint8 mask in one indexing step.
The ignore label is 255 everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS
from cityscapesscripts.helpers.labels import name2label as CS_NAME_TO_LABEL

IGNORE_INDEX = 255

# ---------------------------------------------------------------------------------------------- Cityscapes
CS_LABELS = list(_CS_LABELS)
CS_TRAIN_LABELS = sorted((lab for lab in CS_LABELS if 0 <= lab.trainId < IGNORE_INDEX), key=lambda lab: lab.trainId)
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(lab.name for lab in CS_TRAIN_LABELS)
CITYSCAPES_NUM_CLASSES = len(CITYSCAPES_CLASSES)  # 19
# Categories that contain at least one evaluated class, in the order of their category id (as the official eval).
CITYSCAPES_CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(
    lab.category for lab in sorted(CS_TRAIN_LABELS, key=lambda lab: lab.categoryId)))
# category index (into CITYSCAPES_CATEGORIES) of each trainId
CITYSCAPES_CLASS_TO_CATEGORY = np.array([CITYSCAPES_CATEGORIES.index(lab.category) for lab in CS_TRAIN_LABELS],
                                        dtype=np.int64)


def _lut(pairs: dict[int, int | tuple[int, ...]], default: int | tuple[int, ...]) -> np.ndarray:
    """A 256-entry uint8 lookup table ((256, 3) for a colour ``default``): ``default`` except for ``pairs``."""
    lut = np.full((256, *np.shape(default)), default, dtype=np.uint8)
    lut[list(pairs)] = list(pairs.values())
    return lut


_VALID_IDS = [lab for lab in CS_LABELS if lab.id >= 0]
ID_TO_TRAINID = _lut({lab.id: lab.trainId if lab.trainId >= 0 else IGNORE_INDEX for lab in _VALID_IDS}, IGNORE_INDEX)
TRAINID_TO_ID = _lut({lab.trainId: lab.id for lab in CS_TRAIN_LABELS}, 0)  # ignore -> 'unlabeled' (id 0)
ID_TO_COLOR = _lut({lab.id: lab.color for lab in _VALID_IDS}, (0, 0, 0))
TRAINID_TO_COLOR = _lut({lab.trainId: lab.color for lab in CS_TRAIN_LABELS}, (0, 0, 0))


def cityscapes_label(name: str):
    """The cityscapesscripts Label of ``name`` (KeyError if unknown); ``...group`` falls back to its class."""
    if name not in CS_NAME_TO_LABEL:
        name = name.removesuffix("group")
    return CS_NAME_TO_LABEL[name]


# ---------------------------------------------------------------------------------------------- Pascal VOC
VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
VOC_NUM_CLASSES = len(VOC_CLASSES)  # 21


def voc_palette() -> np.ndarray:
    """The standard 256-colour Pascal VOC palette (bit-interleaved class index), shape (256, 3) uint8."""
    index = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.uint8)
    for shift in range(8):  # bits 3 * shift + (0, 1, 2) of the index -> bit 7 - shift of (r, g, b)
        for channel in range(3):
            palette[:, channel] |= ((index >> (3 * shift + channel)) & 1).astype(np.uint8) << (7 - shift)
    return palette


VOC_PALETTE = voc_palette()  # index 255 is the cream colour VOC uses for void borders


# ---------------------------------------------------------------------------------------------- one view of both
@dataclass(frozen=True)
class LabelSet:
    """What training, metrics and plots need to know about a dataset's classes."""

    name: str
    classes: tuple[str, ...]
    palette: np.ndarray  # (256, 3) uint8: trainId -> colour, 255 -> colour of ignored pixels
    categories: tuple[str, ...] = ()
    class_to_category: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


CITYSCAPES = LabelSet("cityscapes", CITYSCAPES_CLASSES, TRAINID_TO_COLOR, CITYSCAPES_CATEGORIES,
                      CITYSCAPES_CLASS_TO_CATEGORY)
VOC = LabelSet("voc", VOC_CLASSES, VOC_PALETTE)
LABEL_SETS = {"cityscapes": CITYSCAPES, "voc": VOC}


def get_label_set(dataset: str) -> LabelSet:
    """The LabelSet of ``dataset`` ('cityscapes' or 'voc')."""
    try:
        return LABEL_SETS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(LABEL_SETS)}") from None
