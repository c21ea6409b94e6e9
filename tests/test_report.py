"""The outputs index (seglab.toolbox.report): links that resolve, the model comparison table, error cells flagged."""
from __future__ import annotations

import json
import re

import nbformat
import numpy as np
import pandas as pd
import pytest

from seglab.checkpoint import Checkpoint
from seglab.config import TrainConfig
from seglab.toolbox.cli import main
from seglab.errors import SeglabError
from seglab.labels import CITYSCAPES_CLASSES
from seglab.models import build_model
from seglab.toolbox.report import markdown_table, notebook_info, run_table, write_report
from seglab.viz import make_gif

TINY_UNET = {"base_width": 8, "depth": 3}


def _make_run(out, name: str, model_name: str, options: dict, miou: list[float]) -> int:
    """A run folder as the trainer writes it (real checkpoint, history.csv, config.json); returns the param count."""
    run = out / "runs" / name
    run.mkdir(parents=True)
    model = build_model(model_name, 19, **options)
    Checkpoint(spec=model.seglab_spec, class_names=list(CITYSCAPES_CLASSES), config=TrainConfig().to_dict(),
               model=model.state_dict(), epoch=len(miou)).save(run / "best.pt")
    epochs = np.arange(1, len(miou) + 1)
    pd.DataFrame({"epoch": epochs, "lr": 1e-3, "train_loss": 1.0 / epochs, "val_loss": 1.2 / epochs, "miou": miou,
                  "mdice": [m + 0.05 for m in miou], "mean_accuracy": 0.5, "seconds": 1.0}
                 ).to_csv(run / "history.csv", index=False)
    (run / "config.json").write_text(json.dumps({"model": model_name, "dataset": "cityscapes",
                                                 "model_options": options}))
    return sum(p.numel() for p in model.parameters())


def _notebook(path, title: str, error: bool = False) -> None:
    cell = nbformat.v4.new_code_cell("1 / 0" if error else "1 + 1")
    if error:
        cell.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                               traceback=[])]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}\n\ntext"), cell])
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.fixture
def outputs(tmp_path):
    out = tmp_path / "outputs"
    params = _make_run(out, "unet", "unet", TINY_UNET, [0.10, 0.30, 0.25])
    (out / "tables").mkdir(parents=True)
    pd.DataFrame({"model": ["unet", "fcn8s"], "device": "cpu", "height": 64, "width": 128, "params_m": [1.9, 36.1],
                  "latency_ms": [12.5, 40.0], "peak_memory_mb": [30.0, 200.0]}).to_csv(out / "tables/profile.csv",
                                                                                       index=False)
    _notebook(out / "notebooks/00_quick_tour.ipynb", "Quick tour")
    _notebook(out / "notebooks/07_training.ipynb", "Training", error=True)
    figures = out / "figures"
    figures.mkdir()
    frame = np.zeros((8, 8, 3), np.uint8)
    import imageio.v3 as iio

    iio.imwrite(figures / "07_history.png", frame)
    make_gif([frame, frame + 50], out / "gifs/predictions.gif", fps=2)
    return out, params


def test_run_table_reads_checkpoint_history_and_profile(outputs):
    out, params = outputs
    table = run_table(out)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["run"] == "unet" and row["model"] == "unet" and row["dataset"] == "cityscapes"
    assert row["params"] == params and row["epochs"] == 3
    assert row["best_miou"] == pytest.approx(0.30) and row["best_epoch"] == 2 and row["mdice"] == pytest.approx(0.35)
    assert row["latency_ms"] == pytest.approx(12.5) and row["peak_memory_mb"] == pytest.approx(30.0)


def test_report_links_every_output_and_flags_error_cells(outputs):
    out, params = outputs
    path = write_report(out)
    assert path == out / "README.md"
    text = path.read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    expected = {"notebooks/00_quick_tour.ipynb", "notebooks/07_training.ipynb", "figures/07_history.png",
                "gifs/predictions.gif", "tables/profile.csv"}
    assert expected <= set(links)
    assert all((out / link).is_file() for link in links), links
    assert "Quick tour" in text and "ZeroDivisionError" in text
    assert text.count("**error**") == 1
    assert f"{params:,}" in text  # the run's parameter count in the comparison table
    assert "| fcn8s |" in text  # the profiled-only model in the latency table


def test_notebook_info_title_and_error(tmp_path):
    _notebook(tmp_path / "a.ipynb", "A title", error=True)
    info = notebook_info(tmp_path / "a.ipynb")
    assert info["title"] == "A title" and info["error"].startswith("code cell 1: ZeroDivisionError")


def test_markdown_table_formats_numbers_and_blanks_nan():
    text = markdown_table(pd.DataFrame({"name": ["a|b"], "params": [1234567.0], "miou": [float("nan")]}))
    assert text.splitlines()[1] == "|---|---:|---:|"
    assert text.splitlines()[2] == "| a\\|b | 1,234,567 |  |"


def test_report_cli_and_errors(tmp_path, capsys, outputs):
    out, _ = outputs
    assert main(["report", "--out", str(out)]) == 0
    assert (out / "README.md").is_file()
    assert main(["report", "--out", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (out / "tables/profile.csv").write_text("model,foo\nunet,1\n")
    with pytest.raises(SeglabError, match="latency_ms"):
        write_report(out)
    assert (out / "README.md").is_file()  # the earlier index is kept
