"""A training run's folder: refusing to overwrite a run by mistake, and writing its tables atomically."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from seglab.errors import SeglabError
from seglab.toolbox.files import atomic_write


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """A one-line error when ``--resume`` has nothing to resume, or when a new run would overwrite an old one."""
    last = out / "last.pt"
    if resume and not last.is_file():
        raise SeglabError(f"--resume given but {last} does not exist; start the run without --resume")
    if not resume and not overwrite and last.is_file():
        raise SeglabError(f"{out} already holds a run (last.pt); pass --resume to continue it, "
                          "--overwrite to start again, or choose another --out")


def write_table(path: str | Path, table: pd.DataFrame) -> None:
    """``table`` as CSV, written atomically."""
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def write_json(path: str | Path, values: dict) -> None:
    """``values`` as indented JSON, written atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(values, indent=2)))
