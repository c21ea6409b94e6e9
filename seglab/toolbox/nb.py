"""Small helpers every notebook uses: parameter validation (papermill only logs unknown names), output folders,
and the results JSON that tests/test_notebooks.py reads. Notebook pattern::

    nb.begin(globals())                 # first code cell
    epochs = 3                          # the cell tagged `parameters` ...
    nb.declare(globals())               # ... ends so; papermill's injected cell lands after it
    params = nb.parameters(globals())   # next cell: one-line error for unknown names or wrong types
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from seglab.errors import SeglabError

_BASELINE = "_seglab_baseline"
_DECLARED = "_seglab_parameters"


def begin(namespace: dict[str, Any]) -> None:
    """Remember which names exist before the parameters cell."""
    namespace[_BASELINE] = set(namespace) | {_BASELINE}


def declare(namespace: dict[str, Any]) -> None:
    """At the end of the parameters cell: remember the parameter names and their default values."""
    baseline = namespace.get(_BASELINE)
    if baseline is None:
        raise SeglabError("call nb.begin(globals()) in a cell before the parameters cell")
    namespace[_DECLARED] = {k: namespace[k] for k in namespace if k not in baseline and not k.startswith("_")}


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def parameters(namespace: dict[str, Any]) -> SimpleNamespace:
    """Check injected parameters: unknown names and wrong types raise one clear error; returns the values."""
    declared = namespace.get(_DECLARED)
    if declared is None:
        raise SeglabError("call nb.declare(globals()) at the end of the parameters cell")
    baseline = namespace[_BASELINE]
    unknown = sorted(k for k in namespace if k not in baseline and k not in declared and not k.startswith("_")
                     and k not in ("In", "Out", "get_ipython", "exit", "quit"))
    if unknown:
        raise SeglabError(f"unknown notebook parameter(s) {', '.join(unknown)}; valid parameters: "
                          f"{', '.join(sorted(declared))}")
    for name, default in declared.items():
        if not _type_ok(default, namespace[name]):
            raise SeglabError(f"parameter {name} must be {type(default).__name__} like its default {default!r}, "
                              f"got {namespace[name]!r}")
    return SimpleNamespace(**{name: namespace[name] for name in declared})


def project_root() -> Path:
    """The checkout's top folder (where pyproject.toml is), so notebooks work from notebooks/ or the top level."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "pyproject.toml").is_file() and (folder / "seglab").is_dir():
            return folder
    return Path.cwd()


def path(value: str | os.PathLike) -> Path:
    """A parameter path: absolute paths stay, relative ones are taken from the project root."""
    value = Path(value).expanduser()
    return value if value.is_absolute() else project_root() / value


def outputs_dir(root: str | os.PathLike, *parts: str) -> Path:
    """The folder ``root/parts...`` (root relative to the project root), created on first use."""
    folder = path(root).joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_results(path: str | os.PathLike, **values: Any) -> Path:
    """Write the small JSON of headline results a notebook produces (tests assert on it)."""
    from seglab.toolbox.files import atomic_write

    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(values, indent=2, default=float)))
    return path
