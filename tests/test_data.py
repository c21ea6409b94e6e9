"""Datasets against torchvision's readers, label handling with ignore 255, and aligned joint transforms."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from scipy.ndimage import maximum_filter, minimum_filter
from torchvision import tv_tensors

from seglab.config import TrainConfig
from seglab.data import (CityscapesSegmentation, SBDSegmentation, VOCSegmentation, build_dataset, class_frequencies,
                         denormalize, train_dataset, val_dataset, weights_from_counts)
from seglab.errors import SeglabError
from seglab.labels import ID_TO_TRAINID, TRAINID_TO_COLOR
from seglab.toolbox.layouts import find_sbd_root
from seglab.transforms import CropSampler, RandomScaleRotateCrop, eval_transforms, train_transforms


def test_cityscapes_matches_torchvision_reader(minicity):
    ours = CityscapesSegmentation(minicity, "val", transforms=eval_transforms())
    reference = torchvision.datasets.Cityscapes(str(minicity), split="val", mode="fine", target_type="semantic")
    assert len(ours) == len(reference)
    reference_index = {path: i for i, path in enumerate(reference.images)}  # torchvision lists in directory order
    for index in range(len(ours)):
        image, mask = ours[index]
        ref_image, ref_target = reference[reference_index[str(ours.image_path(index))]]
        assert image.shape[1:] == mask.shape == (ref_image.height, ref_image.width)
        assert mask.dtype == torch.int64
        expected = ID_TO_TRAINID[np.asarray(ref_target)]
        np.testing.assert_array_equal(mask.numpy(), expected)
        np.testing.assert_array_equal(denormalize(image), np.asarray(ref_image))


def test_cityscapes_generated_labels_equal_provided_mapping(minicity, tmp_path):
    from seglab.masks import generate_masks

    generate_masks(minicity, out=tmp_path / "gen", splits=("val",), workers=1)
    generated = CityscapesSegmentation(minicity, "val", mask_dir=str(tmp_path / "gen"))
    provided = CityscapesSegmentation(minicity, "val")
    assert [p[0] for p in generated.pairs] == [p[0] for p in provided.pairs]
    for index in range(len(provided)):
        # exact: the generated labels are the official rasteriser's labelIds (json2labelImg) mapped to train ids
        annotation = Annotation()
        annotation.fromJsonFile(str(provided.pairs[index][1]).replace("_labelIds.png", "_polygons.json"))
        official = ID_TO_TRAINID[np.asarray(createLabelImage(annotation, "ids"))]
        np.testing.assert_array_equal(generated.load_label(index), official)
        # the provided PNGs were drawn by another rasteriser (OpenCV fillPoly, as MiniCity's synthetic tool), so
        # the two cannot be equal; they may differ only on polygon edges: pixels next to a label change in both
        ours, theirs = generated.load_label(index), provided.load_label(index)
        differ = ours != theirs
        edges = [maximum_filter(x, 3) != minimum_filter(x, 3) for x in (ours, theirs)]
        assert differ.any() and not (differ & ~(edges[0] & edges[1])).any()


def test_voc_val_excludes_sbd_train_and_matches_torchvision(minivoc):
    sbd_train = set((find_sbd_root(minivoc) / "train.txt").read_text().split())
    voc_val_all = (minivoc / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").read_text().split()
    ours = VOCSegmentation(minivoc, "val")
    assert ours.ids == [i for i in voc_val_all if i not in sbd_train]
    assert 0 < len(ours) < len(voc_val_all)  # the synthetic data has an overlap, as the real one does
    reference = torchvision.datasets.VOCSegmentation(str(minivoc), year="2012", image_set="val")
    ref_by_id = {p.split("/")[-1][:-4]: i for i, p in enumerate(reference.images)}
    for index, image_id in enumerate(ours.ids):
        _, ref_target = reference[ref_by_id[image_id]]
        np.testing.assert_array_equal(ours.load_label(index), np.asarray(ref_target))
    assert 255 in np.unique(ours.load_label(0))


def test_sbd_matches_torchvision(minivoc):
    ours = SBDSegmentation(minivoc, "train")
    reference = torchvision.datasets.SBDataset(str(find_sbd_root(minivoc)), image_set="train", mode="segmentation")
    assert len(ours) == len(reference)
    for index in range(len(ours)):
        np.testing.assert_array_equal(ours.load_label(index), np.asarray(reference[index][1]))
    assert isinstance(build_dataset("voc", minivoc, "train"), SBDSegmentation)


@pytest.mark.parametrize("make, fragment", [
    (lambda root: CityscapesSegmentation(root / "nothing-here", "train"), "synth minicity"),
    (lambda root: VOCSegmentation(root / "nothing-here", "train"), "synth minivoc"),
    (lambda root: CityscapesSegmentation(root, "nosuchsplit"), "split 'nosuchsplit'"),
])
def test_missing_root_or_split_names_layout_and_fix(minicity, make, fragment):
    with pytest.raises(SeglabError, match=fragment):
        make(minicity)


def _pattern(height=96, width=128):
    """Blocks of all 19 classes with a little 255 border; the image shows each block's class colour."""
    rng = np.random.default_rng(0)
    label = np.repeat(np.repeat(rng.integers(0, 19, (6, 8)), 16, 0), 16, 1).astype(np.uint8)[:height, :width]
    label[:3] = 255
    return TRAINID_TO_COLOR[label], label


def test_train_transforms_keep_image_and_mask_aligned():
    image, label = _pattern()
    transform = train_transforms((64, 96), base_size=96, zoom_range=(0.75, 1.5), rotation=10, color_jitter=0)
    torch.manual_seed(0)
    for _ in range(10):
        out_image, out_mask = transform(tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
                                        tv_tensors.Mask(torch.from_numpy(label)))
        mask = out_mask.numpy()
        assert out_image.shape[1:] == mask.shape == (64, 96)
        assert set(np.unique(mask)) <= set(np.unique(label)) | {255}  # labels never interpolated
        rgb = denormalize(out_image).astype(int)
        # away from block edges (5x5 neighbourhood of one class) the image must show exactly the mask's class colour
        interior = (maximum_filter(mask, 5) == minimum_filter(mask, 5)) & (mask != 255)
        match = np.abs(rgb - TRAINID_TO_COLOR[mask].astype(int)).max(-1) <= 3
        assert interior.sum() > 500 and match[interior].mean() > 0.99


def test_crop_larger_than_image_pads_label_with_ignore():
    image, label = _pattern(32, 32)
    transform = train_transforms((64, 64), base_size=32, zoom_range=(1.0, 1.01), rotation=0, color_jitter=0)
    _, mask = transform(tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
                        tv_tensors.Mask(torch.from_numpy(label)))
    assert (mask.numpy() == 255).mean() >= 0.7


def test_class_frequencies_and_weights(minicity):
    dataset = CityscapesSegmentation(minicity, "train")
    counts = class_frequencies(dataset)
    manual = sum(np.bincount(dataset.load_label(i).ravel(), minlength=256)[:19] for i in range(len(dataset)))
    np.testing.assert_array_equal(counts, manual)
    weights = weights_from_counts(counts)
    rare, common = counts.argmin(), counts.argmax()
    assert weights[rare] > weights[common]


def test_weights_from_counts_follow_their_definitions():
    """With p_c = count_c / total: median frequency w_c = median(p over present classes) / p_c (Eigen & Fergus 2015),
    ENet w_c = 1 / ln(1.02 + p_c) (Paszke et al. 2016); a class with no pixels gets weight 0."""
    counts = np.array([100, 300, 0, 600])  # p = 0.1, 0.3, 0, 0.6; median of the present classes 0.3
    np.testing.assert_allclose(weights_from_counts(counts, "median_frequency").numpy(), [3.0, 1.0, 0.0, 0.5],
                               rtol=1e-6)
    np.testing.assert_allclose(weights_from_counts(counts, "enet").numpy(),
                               [1 / np.log(1.12), 1 / np.log(1.32), 0.0, 1 / np.log(1.62)], rtol=1e-6)
    even = np.array([1, 2, 3, 4, 0])  # an even number of present classes: the median is the mean of 0.2 and 0.3
    np.testing.assert_allclose(weights_from_counts(even).numpy(), [2.5, 1.25, 0.25 / 0.3, 0.625, 0.0], rtol=1e-6)
    assert weights_from_counts(even).dtype == torch.float32
    with pytest.raises(SeglabError, match="unknown class-weight method"):
        weights_from_counts(counts, "inverse")


def test_scale_rotate_crop_at_scale_one_is_an_exact_crop():
    """No rotation, shorter side kept: the single warp must reduce to a plain crop of the input, pixel for pixel."""
    height, width = 60, 90
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], axis=2).astype(np.uint8)
    label = ((rows + cols) % 19).astype(np.int64)  # int64 masks go through the warp exactly too
    transform = RandomScaleRotateCrop((32, 48), (height, height + 1), degrees=0)
    torch.manual_seed(0)
    for _ in range(5):
        out_image, out_mask = transform(tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
                                        tv_tensors.Mask(torch.from_numpy(label)))
        top, left = int(out_image[0, 0, 0]), int(out_image[1, 0, 0])
        assert torch.equal(out_image, torch.from_numpy(image[top:top + 32, left:left + 48]).permute(2, 0, 1))
        assert out_mask.dtype == torch.int64 and torch.equal(out_mask, torch.from_numpy(label[top:top + 32,
                                                                                            left:left + 48]))


def test_crop_sampler_places_windows_as_random_crop_and_around_class_pixels():
    """Uniform corners cover exactly RandomCrop(pad_if_needed=True)'s range (a side shorter than the crop padded at
    both ends); a class-uniform window always holds a pixel of the class drawn, here the single pixel of class 1 in
    half of the windows (two classes), mapped through the frame's affine map (a shift by 3 rows, 5 columns)."""
    sampler = CropSampler((8, 32))
    torch.manual_seed(0)
    corners = np.array([sampler(None, (20, 24), np.eye(3)) for _ in range(2000)])
    assert set(corners[:, 0]) == set(range(0, 13)) and set(corners[:, 1]) == set(range(-8, 1))
    label = torch.zeros(20, 24, dtype=torch.uint8)
    label[10, 7] = 1
    shift = np.array([[1, 0, 5], [0, 1, 3], [0, 0, 1]], dtype=float)  # the pixel lands at row 13, column 12
    sampler = CropSampler((8, 8), class_uniform=1.0)
    torch.manual_seed(0)
    corners = [sampler(label, (30, 30), shift) for _ in range(400)]
    holds = [top <= 13 < top + 8 and left <= 12 < left + 8 for top, left in corners]
    assert 0.45 <= np.mean(holds) <= 0.75  # class 1 for about half, plus the road windows that happen to hold it


@pytest.mark.parametrize("make", [train_dataset, val_dataset])
def test_in_memory_frames_give_the_same_samples_and_stay_unchanged(minicity, make):
    """--in-memory only changes where the decoded frames come from: the same seeded samples as reading the files,
    and the kept arrays are not altered by the transforms that run on them."""
    options = {"data": str(minicity), "crop": [64, 96], "class_uniform": 0.5, "cat_max_ratio": 0.75}
    from_files, in_memory = make(TrainConfig(**options)), make(TrainConfig(**options, in_memory=True))
    assert from_files.decoded is None and len(in_memory.decoded) == len(in_memory) == len(from_files)
    for index in range(len(from_files)):
        torch.manual_seed(index)
        expected = from_files[index]
        torch.manual_seed(index)
        image, mask = in_memory[index]
        assert torch.equal(image, expected[0]) and torch.equal(mask, expected[1])
    for (image, label), (file_image, file_label) in zip(in_memory.decoded, map(from_files.load_pair,
                                                                                 range(len(from_files)))):
        np.testing.assert_array_equal(image, file_image)
        np.testing.assert_array_equal(label, file_label)
