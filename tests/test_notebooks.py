"""Every notebook in notebooks/ runs under papermill with tiny parameters and writes the results JSON it promises;
every committed notebook is clean (no outputs), has one `parameters` cell and a consecutive number prefix.

The notebooks are discovered by glob, so a new notebook is run as soon as it exists; it needs an entry in TINY
(its tiny parameters), which keeps every run here well under a minute.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import imageio.v3 as iio
import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError
from papermill.translators import PythonTranslator

from seglab.data import VOCSegmentation, build_dataset
from seglab.toolbox.files import read_label_png
from seglab.models import build_model

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 240  # seconds per cell: tiny runs take a few seconds, the margin is for a loaded CI machine
from conftest import TINY_TRAIN, TINY_UNET
VOC_OPTIONS = {"unet_vgg13": {}, "fcn8s": {"backbone": "vgg11_bn"}}

# Tiny parameters per notebook number. "@minicity", "@minivoc", "@checkpoint" and "@scratch" (a temporary folder)
# are replaced by the fixtures' paths; out_dir always points into the test's temporary folder.
ARCH = {"data_root": "@minicity", "trace_size": [64, 128], "erf_size": 63,
        "overrides": {**TINY_TRAIN, "crop": [64, 128]}}
TINY: dict[str, dict] = {
    "00": {"data_root": "@minicity", "overrides": {**TINY_TRAIN, "crop": [64, 128]}},
    "01": {"data_root": "@minicity", "masks_dir": "@scratch/generated_gt", "workers": 1},
    "02": {"data_root": "@minicity", "voc_root": "@minivoc", "crop": [64, 128], "augmentations": 2},
    "03": ARCH,
    "04": ARCH,
    "05": ARCH,
    "06": ARCH,
    "07": {"data_root": "@minicity", "overrides": {**TINY_TRAIN, "crop": [64, 128], "model_options": TINY_UNET}},
    "08": {"data_root": "@minicity", "checkpoint": "@checkpoint", "window": [64, 128], "tta_scales": [0.5, 1.0],
           "workers": 0},
    "09": {"data_root": "@minicity", "checkpoint": "@checkpoint", "frames": 2, "fps": 4.0, "own_count": 1},
    "10": {"models": ["unet", "ddunet"], "size": [64, 128], "warmup": 0, "runs": 1, "demo_size": [64, 128],
           "runtime_models": ["unet"], "runtime_size": [32, 64]},
    "11": {"data_root": "@minicity", "checkpoints": ["@checkpoint", "@missing"], "figure_images": 2},
    "12": {"data_root": "@minivoc", "sample_images": 2, "model_options": VOC_OPTIONS,
           "overrides": {"crop": [32, 48], **TINY_TRAIN}},
}


# ------------------------------------------------------------------------------------------------ helpers
def number(path: Path) -> str:
    return path.name[:2]


def parameters_cell(notebook) -> nbformat.NotebookNode:
    cells = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected exactly one cell tagged 'parameters', found {len(cells)}"
    return cells[0]


def declared_names(notebook) -> list[str]:
    """Names assigned at the top level of the parameters cell (what nb.declare records)."""
    tree = ast.parse(parameters_cell(notebook).source)
    return [target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets
            if isinstance(target, ast.Name)]


def resolve(value, paths: dict[str, str]):
    if isinstance(value, str) and value.startswith("@"):
        key, _, rest = value.partition("/")
        return str(Path(paths[key], rest)) if rest else paths[key]
    if isinstance(value, list):
        return [resolve(v, paths) for v in value]
    return value


def run_notebook(path: Path, out: Path, parameters: dict) -> None:
    (out / "executed").mkdir(exist_ok=True)
    papermill.execute_notebook(str(path), str(out / "executed" / path.name), parameters=parameters,
                               kernel_name="python3", cwd=str(ROOT), execution_timeout=CELL_TIMEOUT,
                               progress_bar=False, log_output=False)


def results_of(out: Path, path: Path) -> dict:
    found = sorted((out / "outputs" / "results").glob(f"{number(path)}_*.json"))
    assert len(found) == 1, f"{path.name} should write one results/{number(path)}_*.json, found {found}"
    return json.loads(found[0].read_text())


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def workspace(tmp_path_factory, minicity, minivoc, tiny_checkpoint) -> tuple[Path, dict[str, str]]:
    out = tmp_path_factory.mktemp("notebooks")
    paths = {"@minicity": str(minicity), "@minivoc": str(minivoc), "@checkpoint": str(tiny_checkpoint),
             "@missing": str(out / "no_such_run" / "best.pt"), "@scratch": str(out / "scratch")}
    return out, paths


# ------------------------------------------------------------------------------------------------ checks per notebook
def n_params(name: str, num_classes: int = 19, **options) -> int:
    return sum(p.numel() for p in build_model(name, num_classes, **options).parameters())


def check_trained(results: dict, name: str) -> None:
    """A training notebook's run: one tiny epoch, a checkpoint on disk, a valid mIoU."""
    assert results["epochs"] == 1 and 0 <= results["best_miou"] <= 1, name
    assert Path(results["checkpoint"]).is_file(), name


def check_00(results: dict, out: Path, paths: dict[str, str]) -> None:
    check_trained(results, "00")
    assert results["train_images"] == 6 and results["val_images"] == 3
    assert results["params"] == n_params("unet", base_width=8)
    assert 0 < results["road_everywhere_miou"] < 0.2  # road's IoU over the classes present


def check_01(results: dict, out: Path, paths: dict[str, str]) -> None:
    assert results["labels"] == 34 and results["train_classes"] == 19  # the cityscapesscripts table
    assert results["frames"] == results["frames_written"] == results["frames_compared"] == 9  # train 6 + val 3
    # the agreement the notebook reports, recomputed here from the files: generated vs provided labelIds per frame
    generated = sorted(Path(results["masks_dir"]).rglob("*_gtFine_labelIds.png"))
    assert len(generated) == 9 and len(list(Path(results["masks_dir"]).rglob("*_gtFine_labelTrainIds.png"))) == 9
    agreement = [np.mean(read_label_png(g) == read_label_png(Path(paths["@minicity"], "gtFine", *g.parts[-3:])))
                 for g in generated]
    assert results["min_agreement"] == pytest.approx(min(agreement), abs=1e-12)
    assert results["mean_agreement"] == pytest.approx(np.mean(agreement), abs=1e-12)
    assert 0.98 < results["min_agreement"] < 1  # polygon edges differ (OpenCV vs PIL rasteriser), nothing else
    assert results["differing_pixels_near_border"] > 0.9


def check_02(results: dict, out: Path, paths: dict[str, str]) -> None:
    assert (results["cityscapes_train"], results["cityscapes_val"]) == (6, 3)
    assert results["torchvision_cityscapes_agrees"] is True and results["torchvision_voc_agrees"] is True
    assert all(shape[1:] == [64, 128] for shape in results["augmented_shapes"])
    assert sum(results["class_share"].values()) == pytest.approx(1.0)
    from seglab.transforms import IMAGENET_MEAN, IMAGENET_STD  # padding is black (0): normalised, (0 - mean) / std
    assert results["padded_pixel_normalised"] == pytest.approx([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
    assert results["padded_share_exactly_black"] > 0.9  # all but the pixels on the frame's edge
    # class-uniform windows: half of them around a pole pixel (two classes in the toy frame), so they hold the pole
    holds_pole = results["sampler_holds_pole"]
    assert holds_pole["class_uniform"] >= 0.4 and holds_pole["uniform"] < 0.3


def check_library_match(results: dict, name: str) -> None:
    """The model the notebook wrote has the library's parameter count and output (checked in the notebook)."""
    assert results["params_match"] is True and results["matches_library"] is True, name


def check_03(results: dict, out: Path, paths: dict[str, str]) -> None:
    check_trained(results, "03")
    check_library_match(results, "03")
    assert results["params"] == n_params("unet") and results["output_shape"] == [1, 19, 64, 128]
    assert Path(results["run_dir"]).name == "unet_brief" and results["steps_per_epoch"] == TINY_TRAIN["max_steps"]
    # the notebook's layer arithmetic agrees with the gradient it measures (support centred: one pixel of slack)
    assert abs(results["theoretical_field"]["depth 2"] - results["erf"]["depth 2"]["support"]) <= 1


def check_04(results: dict, out: Path, paths: dict[str, str]) -> None:
    check_trained(results, "04")
    check_library_match(results, "04")
    assert results["init_matches"] is True and results["steps_per_epoch"] == TINY_TRAIN["max_steps"]
    assert results["params"] == n_params("fcn8s") and results["output_shape"] == [1, 19, 64, 128]
    assert results["coarsest_stride"] == 32 and results["bilinear_max_difference"] < 1e-5
    side, area = results["centre_side"], ARCH["erf_size"] ** 2
    for stage in ("untrained", "trained"):  # a share of the gradient, and that share over the square's share of area
        assert 0 < results["centre_share"][stage] < 1 and side % 2 == 1 and side**2 < area
        assert results["centre_concentration"][stage] == pytest.approx(results["centre_share"][stage] * area / side**2)


def check_05(results: dict, out: Path, paths: dict[str, str]) -> None:
    check_trained(results, "05")
    check_library_match(results, "05")
    assert results["atrous_is_dense"] is True and results["steps_per_epoch"] == TINY_TRAIN["max_steps"]
    assert results["params"] == n_params("deeplabv3plus") and set(results["output_strides"]) == {"OS16", "OS8"}
    assert all(value > 0 for value in results["erf_faintest"].values())  # image pooling: every pixel is seen


def check_06(results: dict, out: Path, paths: dict[str, str]) -> None:
    check_library_match(results, "06")
    assert set(results["library_checks"]) == {"r2unet", "ddunet"} and results["recurrent_calls"] == 3  # t=2: 1 + 2
    assert results["steps_per_epoch"] == TINY_TRAIN["max_steps"] and set(results["runs"]) == {"r2unet", "ddunet"}
    for name, run in results["runs"].items():
        assert run["epochs"] == 1 and Path(run["checkpoint"]).is_file() and 0 <= run["best_miou"] <= 1
        assert results["params"][name] == n_params(name)


def check_07(results: dict, out: Path, paths: dict[str, str]) -> None:
    history = pd.read_csv(Path(results["run_dir"]) / "history.csv")
    assert results["epochs"] == len(history) == 1 and results["steps_per_epoch"] == 2
    assert Path(results["checkpoint"]).is_file()
    assert 0 <= results["best_miou"] <= 1 and results["best_miou"] == pytest.approx(history["miou"].max())
    assert results["first_train_loss"] > 0 and results["precision"] == "fp32"
    assert results["hand_step_matches_trainer"] is True and results["hand_step_max_difference"] == 0
    assert results["losses_match_library"] is True and 0 <= results["classes_learned"] <= 19


def check_08(results: dict, out: Path, paths: dict[str, str]) -> None:
    assert results["images"] == 3 and results["export_files"] == 3 and Path(results["export_zip"]).is_file()
    assert 0 <= results["miou"] <= results["mdice"] <= 1
    assert results["official_miou"] == pytest.approx(results["miou"], abs=1e-6)  # cityscapesscripts agrees
    assert results["bincount_matches_library"] is True and results["metrics_match_library"] is True
    assert results["bincount_miou"] == pytest.approx(results["official_miou"], abs=1e-6)  # the one-bincount version
    assert set(results["tta"]) == {"whole image", "sliding window", "flip", "scales [0.5, 1.0] + flip"}
    assert all(0 <= value <= 1 for value in results["tta"].values())
    assert set(results["category_iou"]) == {"flat", "construction", "object", "nature", "sky", "human", "vehicle"}


def check_09(results: dict, out: Path, paths: dict[str, str]) -> None:
    frames = iio.imread(results["gif"], index=None)
    assert results["frames"] == 2 and frames.shape[0] == 2
    assert list(frames.shape[1:3]) == results["frame_size"] and results["frame_size"][1] > 3 * 128  # 3 panels
    assert iio.immeta(results["gif"], index=0)["duration"] == pytest.approx(1000 / 4.0, abs=10)
    assert len(results["frame_miou"]) == 2 and all(0 <= v <= 1 for v in results["frame_miou"])
    assert 0 <= results["summed_miou"] <= 1
    assert results["own_written"] == results["own_images_found"] >= 1 and results["own_skipped"] == 0


def check_10(results: dict, out: Path, paths: dict[str, str]) -> None:
    table = pd.read_csv(results["csv"])
    assert list(table["model"]) == ["unet", "ddunet"] and list(results["models"]) == ["unet", "ddunet"]
    assert (table["height"] == 64).all() and (table["width"] == 128).all() and (table["runs"] == 1).all()
    # one forward at 64x128 on the CPU: milliseconds to seconds; its few MB of activations may fit in memory the
    # process already holds (resident size grows by 0), but never by gigabytes
    assert table["latency_ms"].between(0.05, 60_000).all() and table["peak_memory_mb"].between(0, 2048).all()
    assert results["latency_ms"] == pytest.approx(dict(zip(table["model"], table["latency_ms"])))
    assert results["peak_memory_mb"] == pytest.approx(dict(zip(table["model"], table["peak_memory_mb"])))
    assert results["fastest"] == table.loc[table["latency_ms"].idxmin(), "model"]
    assert results["more_flops_but_faster"] == [[a.model, b.model] for a in table.itertuples() for b in
                                                table.itertuples() if a.gflops > b.gflops and a.latency_ms < b.latency_ms]
    assert results["feature_map_mb"] == pytest.approx(64 * 64 * 128 * 4 / 2**20)  # float32 bytes, at 64x128
    for name in ("unet", "ddunet"):  # the reported size is the real model's
        assert results["params_m"][name] == pytest.approx(n_params(name) / 1e6)
    assert Path(results["csv"]).name == "profile.csv"
    runtimes = results["runtimes"]["unet"]
    assert (runtimes["height"], runtimes["width"]) == (32, 64)
    assert all(runtimes[k] > 0 for k in ("pytorch_fp32_ms", "pytorch_bf16_ms", "onnxruntime_ms"))
    assert (out / "outputs" / "onnx" / "unet.onnx").is_file()


def check_11(results: dict, out: Path, paths: dict[str, str]) -> None:
    assert results["models"] == ["unet"] and results["skipped"] == [paths["@missing"]]  # the run folder names it
    assert results["images"] == results["images_scored"] == 3  # score_images 0: the whole val split
    assert results["wins"] == {"unet": 3} and 0 <= results["mean_image_miou"]["unet"] <= 1
    assert results["same_recipe"] is True and results["recipe_differences"] == []


def check_12(results: dict, out: Path, paths: dict[str, str]) -> None:
    train = build_dataset("voc", paths["@minivoc"], "train")
    val_all = VOCSegmentation(paths["@minivoc"], "val", exclude_sbd_train=False)
    val = VOCSegmentation(paths["@minivoc"], "val")
    assert results["train_source"] == type(train).__name__ == "SBDSegmentation"
    assert results["train_images"] == len(train) and results["val_images"] == len(val) > 0
    assert results["val_excluded"] == len(val_all) - len(val) > 0  # VOC val images in SBD train are left out
    assert set(results["models"]) == {"unet_vgg13", "fcn8s"} and results["preset"] == "minivoc_demo"
    fcn = build_model("fcn8s", 21, **VOC_OPTIONS["fcn8s"])
    assert results["fc6_param_share"] == pytest.approx(fcn.fc[0].weight.numel() / n_params("fcn8s", 21))
    labels = np.concatenate([val.load_pair(i)[1].ravel() for i in range(len(val))])  # background-only baseline
    assert results["background_only"]["pixel_accuracy"] == pytest.approx(np.mean(labels[labels != 255] == 0))
    for name, entry in results["models"].items():
        assert entry["epochs"] == 1 and 0 <= entry["miou"] <= 1 and 0 <= entry["pixel_accuracy"] <= 1
        assert entry["params"] == n_params(name, 21, **VOC_OPTIONS[name])
        assert (Path(entry["run"]) / "best.pt").is_file()


CHECKS = {"00": check_00, "01": check_01, "02": check_02, "03": check_03, "04": check_04, "05": check_05,
          "06": check_06, "07": check_07, "08": check_08, "09": check_09, "10": check_10, "11": check_11, "12": check_12}


# ------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_with_tiny_parameters(path, workspace):
    out, paths = workspace
    assert number(path) in TINY, f"add the tiny parameters of {path.name} to TINY in tests/test_notebooks.py"
    parameters = {name: resolve(value, paths) for name, value in TINY[number(path)].items()}
    parameters["out_dir"] = str(out / "outputs")
    run_notebook(path, out, parameters)
    results = results_of(out, path)
    assert results, f"{path.name} wrote an empty results JSON"
    for figure in results.get("figures", []):
        assert Path(figure).is_file() and Path(figure).parent == out / "outputs" / "figures", figure
        assert Path(figure).name.startswith(number(path) + "_"), figure
    executed = nbformat.read(out / "executed" / path.name, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    if number(path) in CHECKS:
        CHECKS[number(path)](results, out, paths)


def test_unknown_parameter_is_a_clear_error(workspace):
    out, _ = workspace
    with pytest.raises(PapermillExecutionError, match=r"unknown notebook parameter\(s\) no_such_parameter"):
        run_notebook(NOTEBOOKS[0], out, {"no_such_parameter": 1, "out_dir": str(out / "unknown")})


def test_committed_notebooks_are_clean_and_numbered():
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: expected NN_topic.ipynb"
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.get("kernelspec", {}).get("name") == "python3", path.name
        code = [c for c in notebook.cells if c.cell_type == "code"]
        dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
        assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts; clear them"
        first = notebook.cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), f"{path.name}: no title cell"
        for topic in ("what you will learn", "prerequisite", "time"):
            assert topic in first.source.lower(), f"{path.name}: first cell does not mention {topic!r}"
        cell = parameters_cell(notebook)
        index = notebook.cells.index(cell)
        assert "nb.begin(globals())" in "".join(c.source for c in notebook.cells[:index]), path.name
        assert cell.source.rstrip().endswith("nb.declare(globals())"), path.name
        following = next(c for c in notebook.cells[index + 1:] if c.cell_type == "code")
        assert following.source.startswith("params = nb.parameters(globals())"), path.name
        # papermill's own parser must see every parameter (it shows them in `papermill --help-notebook`)
        assert [p.name for p in PythonTranslator.inspect(cell)] == declared_names(notebook), path.name
        assert "out_dir" in declared_names(notebook), f"{path.name}: every notebook takes an out_dir parameter"
    numbers = [int(number(p)) for p in NOTEBOOKS]
    assert numbers == list(range(len(NOTEBOOKS))), f"number prefixes must be 00, 01, ... without gaps: {numbers}"
