"""Datasets (Cityscapes, Pascal VOC, SBD) returning (image tensor, class-index mask), and joint transforms.

One base class reads an (image, label) file pair, converts the label to class indices with ignore 255, checks it,
and applies a torchvision.transforms.v2 pipeline in which the label is a ``tv_tensors.Mask`` (so every geometric
step uses nearest-neighbour interpolation and padding/rotation fill the label with 255).
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
from torchvision.transforms import v2

from seglab.config import TrainConfig
from seglab.errors import SeglabError
from seglab.toolbox.files import read_label_png
from seglab.labels import CITYSCAPES_NUM_CLASSES, ID_TO_TRAINID, IGNORE_INDEX, VOC_NUM_CLASSES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CITYSCAPES_LAYOUT = "<root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png with <root>/gtFine/<split>/<city>/*_gtFine_labelIds.png"
VOC_LAYOUT = "<root>/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}"
SBD_LAYOUT = "<root>/benchmark_RELEASE/dataset/{img,cls,train.txt,val.txt}"


# ------------------------------------------------------------------------------------------------ file reading
def read_image(path: str | Path, upright: bool = False) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from any 8/16-bit grayscale, RGB or RGBA file OpenCV can decode; ``upright``
    turns it as its EXIF Orientation tag says (phone photos are often stored sideways)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise SeglabError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if _is_truncated_jpeg(data):
        raise SeglabError(f"image {path} is a truncated JPEG (no end-of-image marker); re-download or re-extract it")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise SeglabError(f"cannot read image {path}: the file is empty, corrupt or not an image; re-download it")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise SeglabError(f"image {path} has unsupported pixel type {image.dtype}; convert it to 8-bit PNG or JPEG")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return exif_upright(image, path) if upright else image


# EXIF Orientation value -> the PIL transpose that shows the image as the camera meant (as PIL's exif_transpose)
_EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                   5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                   8: Image.Transpose.ROTATE_90}


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


def _is_truncated_jpeg(data: np.ndarray) -> bool:
    """JPEG data whose end-of-image marker (FF D9) is missing: OpenCV would silently return a partly grey image."""
    if data.size < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return False
    tail = data[-1024:].tobytes().rstrip(b"\x00\n\r ")
    return not tail.endswith(b"\xff\xd9")


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
    """(image, label) file pairs -> (float image tensor (3, H, W), int64 mask (H, W)) with 255 = ignore.

    Subclasses only find their file pairs and say how to read a label; reading, checking and transforms are shared.
    """

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
            values = sorted(set(np.unique(label[bad]).tolist()))[:5]
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
        """Decode every frame now and serve it (``load_pair``, ``load_label``) from memory from then on: a speed trick
        for small datasets such as MiniCity, where decoding PNGs is a large share of a CPU training step (4 bytes per
        pixel per frame)."""
        self.decoded = [self.load_pair(index) for index in range(len(self))]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.load_pair(index)
        image_t = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
        mask_t = tv_tensors.Mask(torch.from_numpy(label))
        image_t, mask_t = self.transforms(image_t, mask_t)
        return image_t.as_subclass(torch.Tensor), mask_t.as_subclass(torch.Tensor).long()

    def image_path(self, index: int) -> Path:
        return self.pairs[index][0]


def _require_dir(path: Path, what: str, layout: str, synth: str) -> None:
    if not path.is_dir():
        raise SeglabError(f"{what} not found: {path} does not exist; expected {layout} "
                          f"(create the synthetic one with `python -m seglab synth {synth} --out DIR`)")


def _check_not_nested(root: Path, marker: str, layout: str, synth: str) -> None:
    """Explain the common 'zip extracted one level too deep' and 'pointed at a sub-folder' mistakes."""
    if (root / marker).is_dir():
        return
    nested = sorted(p.parent for p in root.glob(f"*/{marker}"))
    if nested:
        raise SeglabError(f"{root} holds the dataset one level deeper, in {nested[0]} (extracted one level too deep?); "
                          f"pass --data {nested[0]} or move its contents up")
    for parent in [root, *root.parents][1:4]:
        if (parent / marker).is_dir():
            raise SeglabError(f"{root} is inside the dataset; pass its root {parent} instead")
    _require_dir(root / marker, f"{marker}/ folder", layout, synth)


def _empty(split: str, root: Path, layout: str) -> SeglabError:
    return SeglabError(f"split {split!r} of {root} has no samples; expected {layout}")


# ------------------------------------------------------------------------------------------------ Cityscapes
class CityscapesSegmentation(SegmentationDataset):
    """Cityscapes (or MiniCity) fine annotations as 19 trainIds.

    Without ``mask_dir`` it reads ``gtFine/*_gtFine_labelIds.png`` and maps them through ID_TO_TRAINID; with it, the
    ``*_gtFine_labelTrainIds.png`` that ``seglab masks`` wrote to that folder (by default ``<root>/generated_gt``).
    """

    num_classes = CITYSCAPES_NUM_CLASSES

    def __init__(self, root: str | Path, split: str = "train", transforms: Callable | None = None,
                 mask_dir: str | Path = "") -> None:
        root = Path(root)
        _require_dir(root, "Cityscapes root", CITYSCAPES_LAYOUT, "minicity")
        _check_not_nested(root, "leftImg8bit", CITYSCAPES_LAYOUT, "minicity")
        image_dir = root / "leftImg8bit" / split
        _require_dir(image_dir, f"split {split!r}", CITYSCAPES_LAYOUT, "minicity")
        if not mask_dir:
            label_dir, suffix, lut = root / "gtFine" / split, "_gtFine_labelIds.png", ID_TO_TRAINID
            _require_dir(label_dir, f"gtFine/{split}", CITYSCAPES_LAYOUT, "minicity")
        else:
            label_dir, suffix, lut = Path(mask_dir) / split, "_gtFine_labelTrainIds.png", None
            if not label_dir.is_dir():
                raise SeglabError(f"generated masks not found in {label_dir}; create them with "
                                  f"`python -m seglab masks --root {root} --out {mask_dir}`")
        self.root, self.split = root, split
        super().__init__(self._pair_up(image_dir, label_dir, suffix), transforms, lut)
        if not self.pairs:
            raise _empty(split, root, CITYSCAPES_LAYOUT)

    @staticmethod
    def _pair_up(image_dir: Path, label_dir: Path, suffix: str) -> list[tuple[Path, Path]]:
        images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
        labels = sorted(label_dir.glob(f"*/*{suffix}"))
        image_key = {p.relative_to(image_dir).as_posix()[: -len("_leftImg8bit.png")]: p for p in images}
        label_key = {p.relative_to(label_dir).as_posix()[: -len(suffix)]: p for p in labels}
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
    for image, label in pairs:
        for path in (image, label):
            if not path.is_file():
                raise SeglabError(f"{path} is listed in the split file but missing; re-extract the dataset")
    return pairs


def find_sbd_root(root: str | Path) -> Path | None:
    """The SBD ``dataset`` folder under ``root`` (itself, ``dataset/`` or ``benchmark_RELEASE/dataset/``), if any."""
    root = Path(root)
    for candidate in (root, root / "dataset", root / "benchmark_RELEASE" / "dataset"):
        if (candidate / "cls").is_dir() and (candidate / "img").is_dir():
            return candidate
    return None


class SBDSegmentation(SegmentationDataset):
    """Semantic Boundaries Dataset (Hariharan et al. 2011) class masks: 21 VOC classes, no void borders."""

    num_classes = VOC_NUM_CLASSES

    def __init__(self, root: str | Path, split: str = "train", transforms: Callable | None = None) -> None:
        sbd = find_sbd_root(root)
        if sbd is None:
            _require_dir(Path(root), "SBD root", SBD_LAYOUT, "minivoc")
            raise SeglabError(f"no SBD dataset under {root}; expected {SBD_LAYOUT} "
                              "(create the synthetic one with `python -m seglab synth minivoc --out DIR`)")
        split_file = sbd / f"{split}.txt"
        if not split_file.is_file():
            raise SeglabError(f"SBD split file {split_file} not found; expected one of train.txt, val.txt in {sbd}")
        self.ids = _read_list(split_file)
        super().__init__(_voc_pairs(self.ids, sbd / "img", sbd / "cls", ".mat"), transforms)
        if not self.pairs:
            raise _empty(split, sbd, SBD_LAYOUT)

    def read_label(self, path: Path) -> np.ndarray:
        return read_sbd_mat(path)


class VOCSegmentation(SegmentationDataset):
    """Pascal VOC 2012 segmentation (palette PNGs, 255 void borders).

    With ``exclude_sbd_train`` (default), the val split drops images that SBD's train split contains, so that a
    model trained on SBD is never validated on its own training images.
    """

    num_classes = VOC_NUM_CLASSES

    def __init__(self, root: str | Path, split: str = "train", transforms: Callable | None = None,
                 exclude_sbd_train: bool = True) -> None:
        root = Path(root)
        _require_dir(root, "Pascal VOC root", VOC_LAYOUT, "minivoc")
        _check_not_nested(root, "VOCdevkit", VOC_LAYOUT, "minivoc")
        voc = root / "VOCdevkit" / "VOC2012"
        split_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not split_file.is_file():
            raise SeglabError(f"VOC split file {split_file} not found; expected {VOC_LAYOUT}")
        ids = _read_list(split_file)
        sbd = find_sbd_root(root)
        if split == "val" and exclude_sbd_train and sbd is not None and (sbd / "train.txt").is_file():
            in_sbd_train = set(_read_list(sbd / "train.txt"))
            ids = [i for i in ids if i not in in_sbd_train]
        self.ids = ids
        super().__init__(_voc_pairs(ids, voc / "JPEGImages", voc / "SegmentationClass", ".png"), transforms)
        if not self.pairs:
            raise _empty(split, root, VOC_LAYOUT)


DATASET_NAMES = {"cityscapes": "Cityscapes", "voc": "Pascal VOC"}


def dataset_layout(root: str | Path) -> str | None:
    """'cityscapes' or 'voc' when ``root`` holds that dataset's top folders (leftImg8bit/, or VOCdevkit/ or SBD) and
    not the other's, else None."""
    root = Path(root)
    found = {"cityscapes": (root / "leftImg8bit").is_dir(),
             "voc": (root / "VOCdevkit").is_dir() or find_sbd_root(root) is not None}
    return next(iter(k for k, v in found.items() if v)) if sum(found.values()) == 1 else None


def build_dataset(dataset: str, root: str | Path, split: str, transforms: Callable | None = None,
                  mask_dir: str | Path = "") -> SegmentationDataset:
    """The dataset a training run uses: Cityscapes as is (``mask_dir``: generated masks instead of gtFine's); VOC trains on SBD
    train when present, else VOC train."""
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


# ------------------------------------------------------------------------------------------------ transforms
def _to_float_normalized() -> list[v2.Transform]:
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


class RandomScaleRotateCrop(v2.Transform):
    """Random scale (shorter side drawn from ``size_range``), rotation and ``crop_size`` crop as ONE OpenCV affine
    warp evaluated only on the crop window; the image bilinear (fill 0), a ``tv_tensors.Mask`` nearest (fill 255).

    The same random geometry as RandomResize -> RandomRotation -> RandomCrop(pad_if_needed) in a row (downscaling
    without antialiasing), without first resizing and rotating the whole frame (benchmarks/bench_data.py compares
    the two).
    """

    def __init__(self, crop_size: tuple[int, int], size_range: tuple[int, int], degrees: float = 0.0,
                 cat_max_ratio: float = 1.0, tries: int = 10, class_uniform: float = 0.0) -> None:
        super().__init__()
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.size_range = (int(size_range[0]), max(int(size_range[0]) + 1, int(size_range[1])))
        self.degrees = float(degrees)
        self.cat_max_ratio, self.tries = float(cat_max_ratio), int(tries)
        self.class_uniform = float(class_uniform)

    def make_params(self, flat_inputs: list) -> dict:
        """One random warp; a share ``class_uniform`` of them placed around a pixel of a class drawn uniformly; with
        ``cat_max_ratio`` < 1, re-drawn (up to ``tries`` times, as mmsegmentation's RandomCrop) while one class covers
        more than that share of the crop's labelled pixels."""
        height, width = v2.query_size(flat_inputs)
        masks = [x for x in flat_inputs if isinstance(x, tv_tensors.Mask)]
        tries = self.tries if self.cat_max_ratio < 1 and masks else 1
        label = masks[0].as_subclass(torch.Tensor).reshape(height, width) if masks and self.class_uniform else None
        classes = label.unique() if label is not None else None  # once per sample, not once per try
        for attempt in range(tries):
            centre = self._class_uniform_pixel(label, classes) if label is not None else None
            params = {"matrix": self._draw(height, width, centre)}
            if attempt + 1 == tries or self._balanced(self.transform(masks[0], params)):
                return params
        return params

    def _balanced(self, crop_mask: torch.Tensor) -> bool:
        """No class covers more than ``cat_max_ratio`` of the crop's labelled pixels (and some are labelled)."""
        counts = np.bincount(crop_mask.numpy().ravel(), minlength=IGNORE_INDEX + 1)[:IGNORE_INDEX]
        return counts.sum() > 0 and counts.max() <= self.cat_max_ratio * counts.sum()

    def _class_uniform_pixel(self, label: torch.Tensor, classes: torch.Tensor) -> tuple[int, int] | None:
        """With probability ``class_uniform``: a random pixel (row, column) of a class drawn uniformly from the
        ``classes`` in ``label`` (class-uniform sampling, as NVIDIA's Cityscapes recipe), else None."""
        if float(torch.rand(())) >= self.class_uniform:
            return None
        classes = classes[classes != IGNORE_INDEX]
        if len(classes) == 0:
            return None
        chosen = classes[int(torch.randint(len(classes), ()))]
        rows, cols = (label == chosen).nonzero(as_tuple=True)
        pick = int(torch.randint(len(rows), ()))
        return int(rows[pick]), int(cols[pick])

    def _draw(self, height: int, width: int, centre: tuple[int, int] | None = None) -> np.ndarray:
        """A random scale, rotation and crop window as one 2x3 affine matrix from the frame to the crop; with a
        ``centre`` pixel of the frame, the window is placed at random among those that contain it."""
        shorter = int(torch.randint(*self.size_range, size=()))
        scaled_h, scaled_w = _resized_shape(height, width, shorter)
        angle = float(torch.empty(()).uniform_(-self.degrees, self.degrees)) if self.degrees else 0.0
        crop_h, crop_w = self.crop_size
        # as RandomCrop(pad_if_needed=True): a too-small side is padded by the missing amount on both ends
        pad_h, pad_w = max(0, crop_h - scaled_h), max(0, crop_w - scaled_w)
        top = int(torch.randint(0, scaled_h + 2 * pad_h - crop_h + 1, size=())) - pad_h
        left = int(torch.randint(0, scaled_w + 2 * pad_w - crop_w + 1, size=())) - pad_w
        scale = np.array([[scaled_w / width, 0, 0.5 * scaled_w / width - 0.5],
                          [0, scaled_h / height, 0.5 * scaled_h / height - 0.5], [0, 0, 1]])  # pixel centres kept
        rotate = np.vstack([cv2.getRotationMatrix2D(((scaled_w - 1) / 2, (scaled_h - 1) / 2), angle, 1.0), [0, 0, 1]])
        if centre is not None:  # the pixel lands at a random place in the window (kept inside the padded frame)
            x, y, _ = rotate @ scale @ np.array([centre[1], centre[0], 1.0])
            top = int(np.clip(round(y) - int(torch.randint(crop_h, ())), -pad_h, scaled_h + pad_h - crop_h))
            left = int(np.clip(round(x) - int(torch.randint(crop_w, ())), -pad_w, scaled_w + pad_w - crop_w))
        shift = np.array([[1, 0, -left], [0, 1, -top], [0, 0, 1]])
        return (shift @ rotate @ scale)[:2]

    def transform(self, inpt, params: dict):
        if not isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)) and type(inpt) is not torch.Tensor:
            return inpt
        is_mask = isinstance(inpt, tv_tensors.Mask)
        array = inpt.as_subclass(torch.Tensor).numpy()
        dtype = array.dtype
        if dtype not in (np.uint8, np.uint16, np.float32):  # e.g. int64 masks: exact through float32 below 2**24
            array = array.astype(np.float32)
        if array.ndim == 3:
            array = array.transpose(1, 2, 0)  # zero-copy when the tensor was made by permuting an HWC array
        warped = cv2.warpAffine(np.ascontiguousarray(array), params["matrix"], self.crop_size[::-1],
                                flags=cv2.INTER_NEAREST if is_mask else cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_INDEX if is_mask else 0)
        if array.ndim == 3:
            warped = (warped[:, :, None] if warped.ndim == 2 else warped).transpose(2, 0, 1)
        out = torch.from_numpy(np.ascontiguousarray(warped).astype(dtype, copy=False))
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def _resized_shape(height: int, width: int, shorter: int) -> tuple[int, int]:
    """(H, W) after resizing the shorter side to ``shorter`` keeping the aspect ratio (as transforms.v2.Resize)."""
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


def train_transforms(crop_size: tuple[int, int], base_size: int, zoom_range: tuple[float, float] = (0.5, 2.0),
                     rotation: float = 10.0, hflip: bool = True, color_jitter: float = 0.3,
                     cat_max_ratio: float = 1.0, class_uniform: float = 0.0) -> v2.Compose:
    """Random scale (shorter side in base_size*zoom_range), rotation and crop (label padded with 255) in one warp,
    then flip and colour jitter on the crop."""
    shortest = max(1, int(base_size * zoom_range[0]))
    steps: list[v2.Transform] = [
        RandomScaleRotateCrop(crop_size, (shortest, int(base_size * zoom_range[1])), rotation, cat_max_ratio,
                              class_uniform=class_uniform),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if color_jitter:
        steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter, min(0.5, color_jitter / 3)))
    return v2.Compose(steps + _to_float_normalized())


def eval_transforms(size: int | tuple[int, int] | None = None) -> v2.Compose:
    """Optional resize (an int sets the shorter side; labels by nearest neighbour), then float + normalisation."""
    steps: list[v2.Transform] = [v2.Resize(size)] if size else []
    return v2.Compose(steps + _to_float_normalized())


def denormalize(image: torch.Tensor) -> np.ndarray:
    """A normalised (3, H, W) tensor back to an RGB uint8 (H, W, 3) array for display."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
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
