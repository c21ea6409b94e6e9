"""TrainConfig is the one description of a run: the CLI flags, the notebooks and config.json all derive from it."""
from __future__ import annotations

import ast
import dataclasses
import json
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from seglab.toolbox.cli import build_parser, main
from seglab.config import PRESET_DIR, TrainConfig, field_names, preset_names
from seglab.errors import SeglabError

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _train_parser():
    parser = build_parser()
    return next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith(" train"))


def test_train_has_one_flag_per_field_with_its_help_and_choices():
    actions = {a.dest: a for a in _train_parser()._actions}
    for field in dataclasses.fields(TrainConfig):
        action = actions[field.name]
        assert action.option_strings[0] == "--" + field.name.replace("_", "-")
        assert field.metadata["help"] in action.help
        if field.metadata["choices"]:
            assert tuple(action.choices) == field.metadata["choices"]
    assert set(actions) - set(field_names()) == {"help", "preset", "resume", "overwrite"}


def test_parsed_flags_give_the_config_the_flags_say(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr("seglab.engine.fit", lambda config, **kw: seen.setdefault("config", config) and [])
    assert main(["train", "--model", "fcn8s", "--model-options", "backbone=vgg13", "--crop", "64,96", "--lr", "0.01",
                 "--momentum", "0.8", "--memory-format", "contiguous", "--class-weights", "enet", "--out", str(tmp_path)]) == 0
    config = seen["config"]
    assert (config.model, config.model_options, config.crop, config.lr) == ("fcn8s", {"backbone": "vgg13"}, (64, 96),
                                                                            0.01)
    assert (config.momentum, config.memory_format, config.class_weights) == (0.8, "contiguous", "enet")
    expected = dataclasses.replace(TrainConfig(), model="fcn8s", model_options={"backbone": "vgg13"}, crop=(64, 96),
                                   lr=0.01, momentum=0.8, memory_format="contiguous", class_weights="enet", out=str(tmp_path))
    assert config == expected  # every other field keeps the dataclass default


@pytest.mark.parametrize("argv, fragment", [
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--zoom-range", "2,1"], "--zoom-range must be LOW,HIGH"),
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--grad-clip", "-1"], "--grad-clip must be a zero or positive number"),
    (["--crop", "0,5"], "--crop must be two positive sizes"),
])
def test_bad_values_are_one_line(argv, fragment, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_round_trip_and_unknown_names():
    config = TrainConfig(crop=(32, 48), model_options={"depth": 3})
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(SeglabError, match="unknown training option"):
        TrainConfig.from_dict({"lrr": 0.1})


def test_from_params_takes_the_fields_named_like_parameters():
    params = SimpleNamespace(lr=0.5, epochs=3, crop=[32, 64], data_root="x", run_name="y")
    config = TrainConfig.from_params(params, out="runs/y")
    assert (config.lr, config.epochs, config.crop, config.out) == (0.5, 3, (32, 64), "runs/y")


def _code_cells(path: Path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            yield ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_derive_the_run_from_their_parameters(path):
    for tree in _code_cells(path):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                assert not (name == "TrainConfig" and len(node.keywords) > 4), f"{path.name} spells out a TrainConfig"
                assert name not in ("native_size", "eval_transforms"), f"{path.name} recomputes the run's data set-up"


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_a_valid_recipe(name):
    config = TrainConfig.preset(name)
    config.check()
    written = tomllib.loads((PRESET_DIR / f"{name}.toml").read_text())
    assert written and all(getattr(config, k) == (tuple(v) if isinstance(v, list) else v) for k, v in written.items())


def test_preset_values_reach_train_and_flags_change_them(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr("seglab.engine.fit", lambda config, **kw: seen.setdefault("config", config) and [])
    assert main(["train", "--preset", "minicity_demo", "--epochs", "3", "--out", str(tmp_path)]) == 0
    assert seen["config"] == TrainConfig.preset("minicity_demo", epochs=3, out=str(tmp_path))
    assert seen["config"].class_uniform == 1.0 and seen["config"].in_memory is True  # from the file, not defaults


def test_from_params_applies_the_preset_then_parameters_then_overrides():
    params = SimpleNamespace(preset="minicity_brief", model="fcn8s", overrides={"epochs": 2, "lr": 0.5}, other=1)
    config = TrainConfig.from_params(params, lr=0.25)
    assert config == TrainConfig.preset("minicity_brief", model="fcn8s", epochs=2, lr=0.25)


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--preset", "no_such_recipe"], "no preset 'no_such_recipe': use one of"),
])
def test_unknown_preset_is_one_line(argv, fragment, capsys):
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
