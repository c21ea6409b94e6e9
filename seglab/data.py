"""Datasets (Cityscapes, Pascal VOC, SBD) returning (image tensor, class-index mask), and the datasets of a run.

One base class reads an (image, label) file pair, converts the label to class indices with ignore 255, checks it,
and applies a ``seglab.transforms`` pipeline (the label a ``tv_tensors.Mask``: nearest neighbour, filled with 255).
``train_dataset`` and ``val_dataset`` build a run's two splits from its TrainConfig.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from seglab.config import TrainConfig
from seglab.errors import SeglabError
from seglab.labels import CITYSCAPES_NUM_CLASSES, ID_TO_TRAINID, IGNORE_INDEX, VOC_NUM_CLASSES
from seglab.toolbox.files import read_label_png
from seglab.toolbox.images import decode_image, exif_upright
from seglab.toolbox.layouts import (CITYSCAPES_LAYOUT, DATASET_NAMES, SBD_LAYOUT, VOC_LAYOUT, check_not_nested,
                                    dataset_layout, empty_split, find_sbd_root, require_dir)
from seglab.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transforms, train_transforms


# ------------------------------------------------------------------------------------------------ file reading
def read_image(path: str | Path, upright: bool = False) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from any 8/16-bit grayscale, RGB or RGBA file OpenCV can decode; ``upright``
    turns it as its EXIF Orientation tag says (phone photos are often stored sideways)."""
    image = decode_image(path)  # cv2.imdecode of the file, which must be complete (toolbox/images.py)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise SeglabError(f"image {path} has unsupported pixel type {image.dtype}; convert it to 8-bit PNG or JPEG")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    else:  # OpenCV keeps colours in BGR(A) order
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return exif_upright(image, path) if upright else image


def read_sbd_mat(path: str | Path) -> np.ndarray:
    """The class mask stored in an SBD ``cls/*.mat`` file (struct GTcls, field Segmentation)."""
    from scipy.io import loadmat

    try:
        return np.asarray(loadmat(str(path))["GTcls"][0]["Segmentation"][0], dtype=np.uint8)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise SeglabError(f"cannot read SBD label {path} ({exc}); re-extract benchmark.tgz") from None


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------ base dataset
class SegmentationDataset(Dataset):
    """(image, label) file pairs -> (float image tensor (3, H, W), int64 mask (H, W)) with 255 = ignore. Subclasses
    only find their file pairs and say how to read a label; reading, checking and transforms are shared."""

    num_classes: int = 0
    decoded: list[tuple[np.ndarray, np.ndarray]] | None = None  # set by keep_in_memory()

    def __init__(self, pairs: Sequence[tuple[Path, Path]], transforms: Callable | None = None,
                 label_lut: np.ndarray | None = None) -> None:
        self.pairs = list(pairs)
        self.transforms = transforms if transforms is not None else eval_transforms()
        self.label_lut = label_lut

    def __len__(self) -> int:
        return len(self.pairs)

    def read_label(self, path: Path) -> np.ndarray:
        """Raw label values of ``path`` (before the LUT)."""
        return read_label_png(path)

    def load_label(self, index: int) -> np.ndarray:
        """The class-index mask of sample ``index`` (uint8, 255 = ignore), checked for out-of-range values."""
        if self.decoded is not None:
            return self.decoded[index][1]
        path = self.pairs[index][1]
        label = self.read_label(path)
        if self.label_lut is not None:
            label = self.label_lut[label]
        bad = (label >= self.num_classes) & (label != IGNORE_INDEX)
        if bad.any():
            values = np.unique(label[bad]).tolist()[:5]
            raise SeglabError(f"label {path} has values {values} outside 0..{self.num_classes - 1} and 255; "
                              "is it the right encoding for this dataset (e.g. labelIds vs labelTrainIds)?")
        return label

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The untransformed RGB image and class-index mask of sample ``index``."""
        if self.decoded is not None:
            return self.decoded[index]
        image_path = self.pairs[index][0]
        image, label = read_image(image_path), self.load_label(index)
        if image.shape[:2] != label.shape:
            raise SeglabError(f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its label "
                              f"{self.pairs[index][1]} is {label.shape[1]}x{label.shape[0]}; they must match")
        return image, label

    def keep_in_memory(self) -> None:
        """Decode every frame now and serve it from memory from then on (4 bytes per pixel per frame): a speed trick
        for small datasets such as MiniCity, where decoding PNGs is a large share of a CPU training step."""
        self.decoded = [self.load_pair(index) for index in range(len(self))]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.load_pair(index)
        image_t, mask_t = self.transforms(tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
                                          tv_tensors.Mask(torch.from_numpy(label)))
        return image_t.as_subclass(torch.Tensor), mask_t.as_subclass(torch.Tensor).long()

    def image_path(self, index: int) -> Path:
        return self.pairs[index][0]


# ------------------------------------------------------------------------------------------------ Cityscapes
class CityscapesSegmentation(SegmentationDataset):
    """Cityscapes (or MiniCity) fine annotations as 19 trainIds: ``gtFine/*_gtFine_labelIds.png`` mapped through
    ID_TO_TRAINID, or with ``mask_dir`` the ``*_gtFine_labelTrainIds.png`` that ``seglab masks`` wrote there."""

    num_classes = CITYSCAPES_NUM_CLASSES

    def __init__(self, root: str | Path, split: str = "train", transforms: Callable | None = None,
                 mask_dir: str | Path = "") -> None:
        root = Path(root)
        require_dir(root, "Cityscapes root", CITYSCAPES_LAYOUT, "minicity")
        check_not_nested(root, "leftImg8bit", CITYSCAPES_LAYOUT, "minicity")
        image_dir = root / "leftImg8bit" / split
        require_dir(image_dir, f"split {split!r}", CITYSCAPES_LAYOUT, "minicity")
        if not mask_dir:
            label_dir, suffix, lut = root / "gtFine" / split, "_gtFine_labelIds.png", ID_TO_TRAINID
            require_dir(label_dir, f"gtFine/{split}", CITYSCAPES_LAYOUT, "minicity")
        else:
            label_dir, suffix, lut = Path(mask_dir) / split, "_gtFine_labelTrainIds.png", None
            if not label_dir.is_dir():
                raise SeglabError(f"generated masks not found in {label_dir}; create them with "
                                  f"`python -m seglab masks --root {root} --out {mask_dir}`")
        self.root, self.split = root, split
        super().__init__(self._pair_up(image_dir, label_dir, suffix), transforms, lut)
        if not self.pairs:
            raise empty_split(split, root, CITYSCAPES_LAYOUT)

    @staticmethod
    def _pair_up(image_dir: Path, label_dir: Path, suffix: str) -> list[tuple[Path, Path]]:
        image_key = {p.relative_to(image_dir).as_posix()[: -len("_leftImg8bit.png")]: p
                     for p in image_dir.glob("*/*_leftImg8bit.png")}
        label_key = {p.relative_to(label_dir).as_posix()[: -len(suffix)]: p for p in label_dir.glob(f"*/*{suffix}")}
        missing_label = sorted(set(image_key) - set(label_key))
        missing_image = sorted(set(label_key) - set(image_key))
        if missing_label:
            raise SeglabError(f"{len(missing_label)} image(s) in {image_dir} have no label in {label_dir} "
                              f"(first: {missing_label[0]}{suffix}); re-extract gtFine or run `seglab masks`")
        if missing_image:
            raise SeglabError(f"{len(missing_image)} label(s) in {label_dir} have no image in {image_dir} "
                              f"(first: {missing_image[0]}_leftImg8bit.png); re-extract leftImg8bit")
        return [(image_key[k], label_key[k]) for k in sorted(image_key)]


# ------------------------------------------------------------------------------------------------ Pascal VOC / SBD
def _voc_pairs(ids: Sequence[str], image_dir: Path, label_dir: Path, label_ext: str) -> list[tuple[Path, Path]]:
    pairs = [(image_dir / f"{i}.jpg", label_dir / f"{i}{label_ext}") for i in ids]
    for path in [p for pair in pairs for p in pair]:
        if not path.is_file():
            raise SeglabError(f"{path} is listed in the split file but missing; re-extract the dataset")
    return pairs


class SBDSegmentation(SegmentationDataset):
    """Semantic Boundaries Dataset (Hariharan et al. 2011) class masks: 21 VOC classes, no void borders."""

    num_classes = VOC_NUM_CLASSES

    def __init__(self, root: str | Path, split: str = "train", transforms: Callable | None = None) -> None:
        sbd = find_sbd_root(root)
        if sbd is None:
            require_dir(Path(root), "SBD root", SBD_LAYOUT, "minivoc")
            raise SeglabError(f"no SBD dataset under {root}; expected {SBD_LAYOUT} "
                              "(create the synthetic one with `python -m seglab synth minivoc --out DIR`)")
        split_file = sbd / f"{split}.txt"
        if not split_file.is_file():
            raise SeglabError(f"SBD split file {split_file} not found; expected one of train.txt, val.txt in {sbd}")
        self.ids = _read_list(split_file)
        super().__init__(_voc_pairs(self.ids, sbd / "img", sbd / "cls", ".mat"), transforms)
        if not self.pairs:
            raise empty_split(split, sbd, SBD_LAYOUT)

    def read_label(self, path: Path) -> np.ndarray:
        return read_sbd_mat(path)


class VOCSegmentation(SegmentationDataset):
    """Pascal VOC 2012 segmentation (palette PNGs, 255 void borders). With ``exclude_sbd_train``, the val split drops
    the images of SBD's train split, so that a model trained on SBD is never validated on its own training images."""

    num_classes = VOC_NUM_CLASSES

    def __init__(self, root: str | Path, split: str = "train", transforms: Callable | None = None,
                 exclude_sbd_train: bool = True) -> None:
        root = Path(root)
        require_dir(root, "Pascal VOC root", VOC_LAYOUT, "minivoc")
        check_not_nested(root, "VOCdevkit", VOC_LAYOUT, "minivoc")
        voc = root / "VOCdevkit" / "VOC2012"
        split_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not split_file.is_file():
            raise SeglabError(f"VOC split file {split_file} not found; expected {VOC_LAYOUT}")
        self.ids = _read_list(split_file)
        sbd = find_sbd_root(root)
        if split == "val" and exclude_sbd_train and sbd is not None and (sbd / "train.txt").is_file():
            in_sbd_train = set(_read_list(sbd / "train.txt"))
            self.ids = [i for i in self.ids if i not in in_sbd_train]
        super().__init__(_voc_pairs(self.ids, voc / "JPEGImages", voc / "SegmentationClass", ".png"), transforms)
        if not self.pairs:
            raise empty_split(split, root, VOC_LAYOUT)


def build_dataset(dataset: str, root: str | Path, split: str, transforms: Callable | None = None,
                  mask_dir: str | Path = "") -> SegmentationDataset:
    """The dataset a training run uses: Cityscapes as is (``mask_dir``: generated masks instead of gtFine's); VOC
    trains on SBD train when present, else VOC train."""
    found = dataset_layout(root)
    if found is not None and found != dataset and dataset in DATASET_NAMES:
        raise SeglabError(f"{root} holds {DATASET_NAMES[found]} data, not {DATASET_NAMES[dataset]}; pass --dataset "
                          f"{found}, or --data a {DATASET_NAMES[dataset]} root")
    if dataset == "cityscapes":
        return CityscapesSegmentation(root, split, transforms, mask_dir)
    if dataset == "voc":
        if mask_dir:
            raise SeglabError(f"--mask-dir {mask_dir} applies to Cityscapes only; Pascal VOC uses its provided labels")
        if split == "train" and find_sbd_root(root) is not None:
            return SBDSegmentation(root, "train", transforms)
        return VOCSegmentation(root, split, transforms)
    raise SeglabError(f"unknown dataset {dataset!r}; choose cityscapes or voc")


def native_size(dataset: SegmentationDataset) -> tuple[int, int]:
    """(height, width) of the dataset's first image, read from the file header only."""
    with Image.open(dataset.image_path(0)) as img:
        return img.height, img.width


def train_dataset(config: TrainConfig) -> SegmentationDataset:
    """A run's training split with its augmentation: random zoom around ``train_resize`` x the native size, rotation,
    ``crop``, flip and colour jitter."""
    dataset = build_dataset(config.dataset, config.data, "train", mask_dir=config.mask_dir)
    native_h, native_w = native_size(dataset)
    scaled_h, scaled_w = round(native_h * config.train_resize), round(native_w * config.train_resize)
    largest_h, largest_w = round(scaled_h * config.zoom_range[1]), round(scaled_w * config.zoom_range[1])
    if config.crop[0] > largest_h or config.crop[1] > largest_w:  # smaller crops are padded with 255
        raise SeglabError(f"crop {config.crop[0]}x{config.crop[1]} is larger than the training images even at the "
                          f"largest random scale ({largest_h}x{largest_w}); use --crop at most "
                          f"{largest_h},{largest_w} or raise --train-resize / --zoom-range")
    dataset.transforms = train_transforms(tuple(config.crop), max(1, min(scaled_h, scaled_w)), config.zoom_range,
                                          cat_max_ratio=config.cat_max_ratio, class_uniform=config.class_uniform)
    if config.in_memory:
        dataset.keep_in_memory()
    return dataset


def val_dataset(config: TrainConfig, split: str = "val") -> SegmentationDataset:
    """A run's validation split as the trainer sees it: native size times ``val_resize``."""
    dataset = build_dataset(config.dataset, config.data, split, mask_dir=config.mask_dir)
    if config.val_resize != 1.0:
        dataset.transforms = eval_transforms(max(1, round(min(native_size(dataset)) * config.val_resize)))
    if config.in_memory:
        dataset.keep_in_memory()
    return dataset


def denormalize(image: torch.Tensor) -> np.ndarray:
    """A normalised (3, H, W) tensor back to an RGB uint8 (H, W, 3) array for display."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (image.detach().float().cpu() * std + mean).clamp(0, 1)
    return (rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ statistics
def class_frequencies(dataset: SegmentationDataset, num_classes: int | None = None) -> np.ndarray:
    """Pixel count per class over the untransformed labels (ignored pixels not counted), shape (num_classes,)."""
    num_classes = num_classes or dataset.num_classes
    counts = np.zeros(num_classes, dtype=np.int64)
    for index in range(len(dataset)):
        label = dataset.load_label(index)
        counts += np.bincount(label[label != IGNORE_INDEX].ravel(), minlength=num_classes)[:num_classes]
    return counts


def weights_from_counts(counts: np.ndarray, method: str = "median_frequency") -> torch.Tensor:
    """Loss weights from pixel counts: 'median_frequency' (Eigen & Fergus 2015) or 'enet' (1/ln(1.02 + p))."""
    freq = counts / max(1, counts.sum())
    present = freq > 0
    weights = np.zeros_like(freq, dtype=np.float64)
    if method == "median_frequency":
        weights[present] = np.median(freq[present]) / freq[present]
    elif method == "enet":
        weights[present] = 1.0 / np.log(1.02 + freq[present])
    else:
        raise SeglabError(f"unknown class-weight method {method!r}; choose median_frequency or enet")
    return torch.tensor(weights, dtype=torch.float32)
