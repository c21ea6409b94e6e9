"""Joint image + mask transforms (torchvision.transforms.v2, the label a ``tv_tensors.Mask``): the training
augmentation (random scale, rotation and crop, flip, colour jitter) and the evaluation transform.

The random crop is two pieces: a ``CropSampler`` decides *where* a crop goes (the policy), ``warp_crop`` computes it
(the geometry): the image bilinear with fill 0, the mask nearest neighbour with fill 255 (labels are never
interpolated; padding is ignored by the loss and the metrics).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from seglab.labels import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------------------------ the policy
class CropSampler:
    """Where a ``crop_size`` window goes in a frame: its top-left corner (top, left), uniform among the places
    ``v2.RandomCrop(pad_if_needed=True)`` allows (so it may be negative). Two options favour rare classes:
    ``class_uniform``, the share of windows placed around a pixel of a class drawn uniformly from the frame's classes
    (NVIDIA's Cityscapes recipe); ``cat_max_ratio`` < 1, the share of a crop's labelled pixels one class may cover
    before ``RandomScaleRotateCrop`` re-draws it (up to ``tries`` times, like mmsegmentation's RandomCrop).
    """

    def __init__(self, crop_size: tuple[int, int], cat_max_ratio: float = 1.0, class_uniform: float = 0.0,
                 tries: int = 10) -> None:
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.cat_max_ratio, self.class_uniform, self.tries = float(cat_max_ratio), float(class_uniform), int(tries)

    def __call__(self, label: torch.Tensor | None, frame_size: tuple[int, int], to_frame: np.ndarray) -> tuple[int, int]:
        """One window's corner in a frame of ``frame_size`` (H, W) made from ``label`` (None: uniform placement) by
        the 3x3 affine map ``to_frame`` of its pixels (x, y, 1)."""
        classes = label.unique() if label is not None and self.class_uniform else None
        pixel = self.class_uniform_pixel(label, classes) if classes is not None else None
        return self.place(frame_size, None if pixel is None else landing(to_frame, pixel))

    def place(self, frame_size: tuple[int, int], centre: tuple[float, float] | None = None) -> tuple[int, int]:
        """A random corner; with a ``centre`` (y, x), one among those whose window holds it (inside the padding)."""
        (height, width), (crop_h, crop_w) = frame_size, self.crop_size
        pad_h, pad_w = max(0, crop_h - height), max(0, crop_w - width)
        top = int(torch.randint(0, height + 2 * pad_h - crop_h + 1, ())) - pad_h
        left = int(torch.randint(0, width + 2 * pad_w - crop_w + 1, ())) - pad_w
        if centre is not None:  # the pixel lands at a random place in the window (both draws above still happen)
            top = int(np.clip(round(centre[0]) - int(torch.randint(crop_h, ())), -pad_h, height + pad_h - crop_h))
            left = int(np.clip(round(centre[1]) - int(torch.randint(crop_w, ())), -pad_w, width + pad_w - crop_w))
        return top, left

    def class_uniform_pixel(self, label: torch.Tensor, classes: torch.Tensor) -> tuple[int, int] | None:
        """With probability ``class_uniform``: a random pixel (row, column) of a class drawn uniformly from the
        ``classes`` in ``label``, else None."""
        if float(torch.rand(())) >= self.class_uniform:
            return None
        classes = classes[classes != IGNORE_INDEX]
        if len(classes) == 0:
            return None
        chosen = classes[int(torch.randint(len(classes), ()))]
        rows, cols = (label == chosen).nonzero(as_tuple=True)
        pick = int(torch.randint(len(rows), ()))
        return int(rows[pick]), int(cols[pick])

    def balanced(self, crop: torch.Tensor) -> bool:
        """No class covers more than ``cat_max_ratio`` of the crop's labelled pixels (and some are labelled)."""
        counts = np.bincount(crop.numpy().ravel(), minlength=IGNORE_INDEX + 1)[:IGNORE_INDEX]
        return counts.sum() > 0 and counts.max() <= self.cat_max_ratio * counts.sum()


# ------------------------------------------------------------------------------------------------ the geometry
def landing(to_frame: np.ndarray, pixel: tuple[int, int]) -> tuple[float, float]:
    """Where pixel (row, column) of the original frame lands, (y, x), under the 3x3 affine map ``to_frame``."""
    x, y, _ = to_frame @ np.array([pixel[1], pixel[0], 1.0])
    return y, x


def scale_rotate_matrix(size: tuple[int, int], scaled: tuple[int, int], angle: float) -> np.ndarray:
    """The 3x3 affine map of pixels (x, y, 1) of a ``size`` (H, W) frame resized to ``scaled`` (H, W), pixel centres
    kept (as ``v2.Resize``), then rotated ``angle`` degrees anticlockwise about its centre (as ``RandomRotation``)."""
    (height, width), (scaled_h, scaled_w) = size, scaled
    scale = np.array([[scaled_w / width, 0, 0.5 * scaled_w / width - 0.5],
                      [0, scaled_h / height, 0.5 * scaled_h / height - 0.5], [0, 0, 1]])
    rotate = np.vstack([cv2.getRotationMatrix2D(((scaled_w - 1) / 2, (scaled_h - 1) / 2), angle, 1.0), [0, 0, 1]])
    return rotate @ scale


def warp_crop(inpt: torch.Tensor, to_frame: np.ndarray, corner: tuple[int, int], crop_size: tuple[int, int]):
    """The ``crop_size`` window at ``corner`` (top, left) of the frame that ``to_frame`` maps ``inpt`` into, as ONE
    OpenCV affine warp that computes the window's pixels only: an image bilinear with fill 0, a ``tv_tensors.Mask``
    nearest neighbour with fill 255. A speed trick: the same picture as resizing and rotating the whole frame and then
    cropping (benchmarks/bench_data.py measures both), without computing the pixels a crop throws away."""
    shift = np.array([[1, 0, -corner[1]], [0, 1, -corner[0]], [0, 0, 1]])
    is_mask = isinstance(inpt, tv_tensors.Mask)
    array = inpt.as_subclass(torch.Tensor).numpy()
    dtype = array.dtype
    if dtype not in (np.uint8, np.uint16, np.float32):  # e.g. int64 masks: exact through float32 below 2**24
        array = array.astype(np.float32)
    if array.ndim == 3:
        array = array.transpose(1, 2, 0)  # OpenCV's (H, W, C); zero-copy when the tensor was a permuted HWC array
    warped = cv2.warpAffine(np.ascontiguousarray(array), (shift @ to_frame)[:2], crop_size[::-1],
                            flags=cv2.INTER_NEAREST if is_mask else cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_INDEX if is_mask else 0)
    if array.ndim == 3:
        warped = (warped[:, :, None] if warped.ndim == 2 else warped).transpose(2, 0, 1)
    out = torch.from_numpy(np.ascontiguousarray(warped).astype(dtype, copy=False))
    return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


class RandomScaleRotateCrop(v2.Transform):
    """Random scale (shorter side drawn from ``size_range``), rotation (up to ``degrees``) and a ``crop_size`` crop
    placed by a ``CropSampler``: the random geometry of RandomResize -> RandomRotation -> RandomCrop(pad_if_needed)
    (downscaling without antialiasing), computed by ``warp_crop`` on the crop window only."""

    def __init__(self, crop_size: tuple[int, int], size_range: tuple[int, int], degrees: float = 0.0,
                 cat_max_ratio: float = 1.0, class_uniform: float = 0.0) -> None:
        super().__init__()
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.size_range = (int(size_range[0]), max(int(size_range[0]) + 1, int(size_range[1])))
        self.degrees = float(degrees)
        self.sampler = CropSampler(self.crop_size, cat_max_ratio, class_uniform)

    def make_params(self, flat_inputs: list) -> dict:
        """A random scale and angle, and the window the sampler places in the scaled, rotated frame; with
        ``cat_max_ratio`` < 1, all three are re-drawn until the crop is balanced (at most ``tries`` times)."""
        height, width = v2.query_size(flat_inputs)
        masks = [x for x in flat_inputs if isinstance(x, tv_tensors.Mask)]
        sampler = self.sampler
        tries = sampler.tries if sampler.cat_max_ratio < 1 and masks else 1
        label = masks[0].as_subclass(torch.Tensor).reshape(height, width) if masks and sampler.class_uniform else None
        classes = label.unique() if label is not None else None  # once per sample, not once per try
        for attempt in range(tries):
            pixel = sampler.class_uniform_pixel(label, classes) if label is not None else None
            shorter = int(torch.randint(*self.size_range, size=()))
            angle = float(torch.empty(()).uniform_(-self.degrees, self.degrees)) if self.degrees else 0.0
            scaled = _resized_shape(height, width, shorter)
            to_frame = scale_rotate_matrix((height, width), scaled, angle)
            corner = sampler.place(scaled, None if pixel is None else landing(to_frame, pixel))
            params = {"to_frame": to_frame, "corner": corner}
            if attempt + 1 == tries or sampler.balanced(warp_crop(masks[0], to_frame, corner, self.crop_size)):
                break
        return params

    def transform(self, inpt, params: dict):
        if not isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)) and type(inpt) is not torch.Tensor:
            return inpt
        return warp_crop(inpt, params["to_frame"], params["corner"], self.crop_size)


def _resized_shape(height: int, width: int, shorter: int) -> tuple[int, int]:
    """(H, W) after resizing the shorter side to ``shorter`` keeping the aspect ratio (as transforms.v2.Resize)."""
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


# ------------------------------------------------------------------------------------------------ the pipelines
def to_float_normalized() -> list[v2.Transform]:
    """The image to float in [0, 1], then normalised with the ImageNet mean and std (what the backbones expect)."""
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transforms(crop_size: tuple[int, int], base_size: int, zoom_range: tuple[float, float] = (0.5, 2.0),
                     rotation: float = 10.0, hflip: bool = True, color_jitter: float = 0.3,
                     cat_max_ratio: float = 1.0, class_uniform: float = 0.0) -> v2.Compose:
    """Random scale (shorter side in base_size*zoom_range), rotation and crop (label padded with 255) in one warp,
    the crop placed by a CropSampler (``cat_max_ratio``, ``class_uniform``), then flip and colour jitter."""
    sizes = (max(1, int(base_size * zoom_range[0])), int(base_size * zoom_range[1]))
    steps: list[v2.Transform] = [RandomScaleRotateCrop(crop_size, sizes, rotation, cat_max_ratio, class_uniform)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if color_jitter:
        steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter, min(0.5, color_jitter / 3)))
    return v2.Compose(steps + to_float_normalized())


def eval_transforms(size: int | tuple[int, int] | None = None) -> v2.Compose:
    """Optional resize (an int sets the shorter side; labels by nearest neighbour), then float + normalisation."""
    steps: list[v2.Transform] = [v2.Resize(size)] if size else []
    return v2.Compose(steps + to_float_normalized())
