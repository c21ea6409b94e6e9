"""Every worked solution in notebooks/solutions/ runs under papermill with tiny parameters, solves every exercise of
its lesson notebook, and passes each one-line answer check it makes (seglab.toolbox.exercises)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from papermill.translators import PythonTranslator

from conftest import TINY_TRAIN, TINY_UNET
from test_notebooks import ROOT, parameters_cell, run_notebook

from seglab.toolbox.exercises import ANSWERS

SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*_solutions.ipynb"))


def exercises_of(lesson: Path) -> list[str]:
    """The exercise ids ("03.1", ...) of a lesson notebook: the numbered items under its **Exercises** heading."""
    notebook = nbformat.read(lesson, as_version=4)
    text = next(c.source for c in notebook.cells if c.cell_type == "markdown" and "**Exercises**" in c.source)
    items = re.findall(r"^(\d+)\. ", text.split("**Exercises**", 1)[1], flags=re.M)
    return [f"{lesson.name[:2]}.{item}" for item in items]


def tiny_parameters(path: Path, paths: dict[str, str]) -> dict:
    """The tiny value of each parameter the solution declares (datasets, a checkpoint, training overrides)."""
    known = {"data_root": paths["minicity"], "voc_root": paths["minivoc"], "checkpoint": paths["checkpoint"],
             "overrides": {**TINY_TRAIN, "crop": [64, 128]}, "unet_options": TINY_UNET, "out_dir": paths["out"]}
    names = [p.name for p in PythonTranslator.inspect(parameters_cell(nbformat.read(path, as_version=4)))]
    assert "out_dir" in names, f"{path.name}: every solution takes an out_dir parameter"
    return {name: known[name] for name in names if name in known}


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_solves_every_exercise(path, minicity, minivoc, tiny_checkpoint, tmp_path):
    lesson = next((ROOT / "notebooks").glob(f"{path.name[:2]}_*.ipynb"))
    paths = {"minicity": str(minicity), "minivoc": str(minivoc), "checkpoint": str(tiny_checkpoint),
             "out": str(tmp_path / "outputs")}
    run_notebook(path, tmp_path, tiny_parameters(path, paths))
    results = json.loads((tmp_path / "outputs" / "results" / f"{path.stem}.json").read_text())
    assert sorted(results["solved"]) == exercises_of(lesson), f"{path.name} must solve every exercise of {lesson.name}"
    assert all(results["checks"].values()), results["checks"]
    assert set(results["checks"]) <= set(ANSWERS)


def test_every_lesson_with_exercises_has_solutions():
    lessons = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    have = {p.name[:2] for p in SOLUTIONS}
    missing = [p.name for p in lessons if exercises_of(p) and p.name[:2] not in have]
    assert not missing, f"no notebooks/solutions/NN_solutions.ipynb for {missing}"


def test_committed_solutions_are_clean():
    for path in SOLUTIONS:
        notebook = nbformat.read(path, as_version=4)
        assert all(not c.outputs and c.execution_count is None for c in notebook.cells if c.cell_type == "code"), \
            f"{path.name}: clear the outputs before committing"


def test_answer_check_tells_right_from_wrong(capsys):
    from seglab.toolbox.exercises import check

    import inspect

    for exercise, (compute, _) in ANSWERS.items():
        if inspect.signature(compute).parameters:  # depends on a run's results: checked by its solution notebook
            continue
        right = compute()
        assert check(exercise, right)
        wrong = [r + 1 for r in right] if isinstance(right, (list, tuple)) else (not right if isinstance(right, bool)
                                                                                 else right * 2 + 1)
        assert not check(exercise, wrong)
        assert "Hint:" in capsys.readouterr().out
