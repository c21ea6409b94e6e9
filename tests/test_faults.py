"""Faults found on real files and bad input: permissions, EXIF orientation, read-only arrays, skipped splits."""
from __future__ import annotations

import os
import stat
import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from seglab import masks
from seglab.data import CityscapesSegmentation, VOCSegmentation, read_image
from seglab.toolbox.files import atomic_write_bytes
from seglab.toolbox.jobs import predict_folder
from seglab.labels import CITYSCAPES
from seglab.models import build_model
from conftest import save_untrained


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_files_get_the_permissions_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "atomic.bin", b"x")
        with open(tmp_path / "plain.bin", "wb") as handle:
            handle.write(b"x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "atomic.bin").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.bin").stat().st_mode) == 0o666 & ~umask


def _sideways_jpeg(path):
    """A 'phone photo': stored 40 wide x 20 high with its left half red, tagged Orientation=6 (rotate 90 cw)."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    return stored


def test_read_image_upright_follows_exif_orientation(tmp_path):
    _sideways_jpeg(tmp_path / "photo.jpg")
    assert read_image(tmp_path / "photo.jpg").shape == (20, 40, 3)  # as stored (datasets keep their pixels)
    upright = read_image(tmp_path / "photo.jpg", upright=True)
    assert upright.shape == (40, 20, 3)
    assert upright[:20, :, 0].mean() > 200 and upright[20:, :, 0].mean() < 50  # the red half is now on top


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_turns_as_pillow_does(tmp_path, orientation):
    """All eight EXIF orientations (flips, rotations and their combinations) against PIL.ImageOps.exif_transpose, on
    a lossless PNG of random pixels whose every turn is different."""
    stored = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif)
    with Image.open(tmp_path / "photo.png") as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "photo.png", upright=True), expected)
    np.testing.assert_array_equal(read_image(tmp_path / "photo.png"), stored)  # as stored without upright


def test_predict_labels_have_the_displayed_size(tmp_path):
    (tmp_path / "in").mkdir()
    _sideways_jpeg(tmp_path / "in" / "photo.jpg")
    model = build_model("unet", 19, base_width=4, depth=2)
    predict_folder(model, CITYSCAPES, tmp_path / "in", tmp_path / "out", torch.device("cpu"), progress=False)
    with Image.open(tmp_path / "out" / "photo_label.png") as label:
        assert label.size == (20, 40)  # width x height as displayed, not as stored


def test_labels_load_without_the_read_only_numpy_warning(minicity, minivoc, tmp_path):
    masks.generate_masks(minicity, tmp_path / "gen", splits=("val",), workers=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VOCSegmentation(minivoc, "val")[0]
        CityscapesSegmentation(minicity, "val", mask_dir=str(tmp_path / "gen"))[0]


def test_masks_says_which_default_split_is_missing(minicity, tmp_path):
    summary = masks.generate_masks(minicity, tmp_path / "gen", splits=("val", "nosuchsplit"), workers=1,
                                   progress=False)
    assert "nosuchsplit not found" in str(summary)


def test_masks_says_how_many_degenerate_polygons_it_could_not_draw(minicity, tmp_path):
    import json
    import shutil

    root = tmp_path / "city"
    shutil.copytree(minicity / "gtFine" / "val", root / "gtFine" / "val")
    polygons = sorted((root / "gtFine" / "val").rglob("*_polygons.json"))[0]
    annotation = json.loads(polygons.read_text())
    annotation["objects"] += [{"label": "car", "polygon": [[3, 4]]}, {"label": "pole", "polygon": []}]
    polygons.write_text(json.dumps(annotation))
    summary = masks.generate_masks(root, tmp_path / "gen", splits=("val",), workers=1, progress=False)
    assert summary.degenerate_polygons == 2 and "2 polygon(s) with fewer than 2 points not drawn" in str(summary)


def test_every_output_path_and_number_is_checked_before_any_work(minicity, tmp_path, capsys):
    from seglab.toolbox.cli import main

    checkpoint = tmp_path / "unet.pt"
    save_untrained(build_model("unet", 19, base_width=4, depth=2), "cityscapes", checkpoint)
    a_file, a_folder = tmp_path / "a_file", tmp_path / "a_folder"
    a_file.write_text("keep me")
    a_folder.mkdir()
    images = str(minicity / "leftImg8bit" / "val")
    model, data = ["--checkpoint", str(checkpoint)], ["--data", str(minicity), "--workers", "0"]
    cases = [
        (["predict", *model, "--images", images, "--out", str(a_file)], "a_file is a file; give a folder path"),
        (["predict", *model, "--images", images, "--out", str(a_file / "x")], "a_file is a file, so"),
        (["predict", *model, "--images", images, "--out", str(tmp_path / "p"), "--alpha", "nan"], "from 0 to 1"),
        (["evaluate", *model, *data, "--json", str(a_folder)], "a_folder is a folder; give a file name"),
        (["evaluate", *model, *data, "--json", str(a_file / "m.json")], "a_file is a file; give a folder path"),
        (["evaluate", *model, *data, "--export", str(a_file)], "a_file is a file; give a folder path"),
        (["evaluate", *model, *data, "--tta-scales", "nan"], "expected positive numbers"),
        (["masks", "--root", str(minicity), "--out", str(a_file)], "a_file is a file; give a folder path"),
        (["synth", "minicity", "--out", str(a_file)], "is a file"),
        (["train", "--data", str(minicity), "--out", str(a_file), "--crop", "64,64"], "is a file; give a folder"),
        (["train", "--data", str(minicity), "--out", str(tmp_path / "t"), "--lr", "nan"], "finite number"),
        (["profile", "--models", "unet", "--out", str(a_folder)], "a_folder is a folder; give a file name"),
        (["export", *model, "--out", str(a_folder)], "a_folder is a folder; give a file name"),
        (["report", "--out", str(a_file)], "does not exist"),
    ]
    for argv, fragment in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1 and len(err) < 300, (argv, err)
    assert a_file.read_text() == "keep me" and not any(a_folder.iterdir())
    assert not (tmp_path / "p").exists() and not (tmp_path / "t").exists()
