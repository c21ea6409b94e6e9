"""The outputs index: ``<out_dir>/README.md`` linking every executed notebook, figure, GIF and table, with a model
comparison table (params and mIoU of each training run, latency and memory from notebook 10's profile CSV).

`make demo` calls it last (``python -m seglab report --out outputs``), so one page shows what the demo produced.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from seglab.errors import SeglabError
from seglab.toolbox.files import atomic_write

PROFILE_CSV = Path("tables") / "profile.csv"
RUN_COLUMNS = ["run", "model", "dataset", "params", "epochs", "best_miou", "best_epoch", "mdice", "latency_ms",
               "peak_memory_mb"]


# ------------------------------------------------------------------------------------------------ reading
def notebook_info(path: str | Path) -> dict:
    """Title (first markdown heading) and the first error of an executed notebook, read as plain JSON."""
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError) as exc:
        return {"title": Path(path).stem, "error": f"unreadable notebook ({exc})"}
    markdown = next((cell for cell in cells if cell.get("cell_type") == "markdown"), {})
    lines = "".join(markdown.get("source", "")).splitlines()
    title = next((line.lstrip("#").strip() for line in lines if line.startswith("#")), None) or Path(path).stem
    for number, cell in enumerate((c for c in cells if c.get("cell_type") == "code"), 1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = (str(output.get("evalue", "")).splitlines() or [""])[0]
                return {"title": title, "error": f"code cell {number}: {output.get('ename')}: {message}"}
    return {"title": title, "error": None}


def _run_params(run: Path) -> float:
    """Trainable parameters of the run's model, rebuilt from its checkpoint (NaN when there is none)."""
    from seglab.checkpoint import model_from_checkpoint

    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            try:
                model, _ = model_from_checkpoint(run / name)
            except SeglabError:
                continue
            return float(sum(p.numel() for p in model.parameters()))
    return math.nan


def run_table(out_dir: str | Path) -> pd.DataFrame:
    """One row per training run in ``<out_dir>/runs/*/history.csv``: model, dataset, params, best mIoU (and the
    mDice of that epoch), joined with latency and peak memory of the same architecture from the profile CSV."""
    out_dir = Path(out_dir)
    rows = []
    for history_path in sorted(out_dir.glob("runs/*/history.csv")):
        run = history_path.parent
        history = pd.read_csv(history_path)
        config_path = run / "config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        row = {"run": run.name, "model": config.get("model", run.name), "dataset": config.get("dataset", ""),
               "params": _run_params(run), "epochs": len(history)}
        if len(history) and history["miou"].notna().any():
            best = history.loc[history["miou"].idxmax()]
            row.update(best_miou=float(best["miou"]), best_epoch=int(best["epoch"]), mdice=float(best["mdice"]))
        rows.append(row)
    table = pd.DataFrame(rows, columns=RUN_COLUMNS)
    profile = read_profile(out_dir)
    if len(table) and profile is not None:
        per_model = profile.drop_duplicates("model", keep="last").set_index("model")
        table["latency_ms"] = table["model"].map(per_model["latency_ms"])
        table["peak_memory_mb"] = table["model"].map(per_model["peak_memory_mb"])
    return table


def read_profile(out_dir: str | Path) -> pd.DataFrame | None:
    """Notebook 10's ``<out_dir>/tables/profile.csv`` (None when notebook 10 has not run)."""
    path = Path(out_dir) / PROFILE_CSV
    if not path.is_file():
        return None
    profile = pd.read_csv(path)
    missing = {"model", "latency_ms", "peak_memory_mb"} - set(profile.columns)
    if missing:
        raise SeglabError(f"{path} lacks column(s) {', '.join(sorted(missing))}; rerun notebook 10 to rewrite it")
    return profile


# ------------------------------------------------------------------------------------------------ writing
def _cell(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() or abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, headers: dict[str, str] | None = None) -> str:
    """A GitHub-flavoured markdown table of ``frame`` (columns renamed by ``headers``; NaN cells empty)."""
    headers = headers or {}
    names = [headers.get(c, c) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in values) + " |" for values in frame.itertuples(index=False)]
    return "\n".join(lines)


def build_report(out_dir: str | Path = "outputs") -> str:
    """The markdown text of the outputs index (see ``write_report``)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise SeglabError(f"outputs folder {out_dir} does not exist; run `make demo` (or the notebooks) first")

    def link(path: Path) -> str:
        return Path(os.path.relpath(path, out_dir)).as_posix()

    parts = ["# seglab demo outputs", "",
             "Written by `python -m seglab report` after `make demo`; every link is relative to this folder.", "",
             "## Executed notebooks", ""]
    notebooks = sorted(out_dir.glob("notebooks/*.ipynb"))
    for path in notebooks:
        info = notebook_info(path)
        status = f" — **error** in {info['error']}" if info["error"] else ""
        parts.append(f"- [{path.stem}]({link(path)}): {info['title']}{status}")
    if not notebooks:
        parts.append(f"No executed notebooks yet (`make demo` writes them to {out_dir / 'notebooks'}).")

    parts += ["", "## Model comparison", ""]
    runs = run_table(out_dir)
    if len(runs):
        parts += ["Params are counted on each run's checkpoint; mIoU and mDice are the best validation epoch in "
                  "the run's `history.csv`; latency (median) and peak memory are notebook 10's measurements of the "
                  "same architecture with its default options (`tables/profile.csv`).", "",
                  markdown_table(runs, {"best_miou": "best mIoU", "best_epoch": "at epoch", "mdice": "mDice",
                                        "latency_ms": "latency (ms)", "peak_memory_mb": "peak memory (MB)"}), ""]
    else:
        parts += ["No training runs yet (`runs/*/history.csv`).", ""]
    profile = read_profile(out_dir)
    if profile is not None:
        columns = [c for c in ("model", "device", "precision", "height", "width", "params_m", "gflops",
                               "latency_ms", "achieved_gflops_per_s", "peak_memory_mb") if c in profile]
        parts += ["### Latency and memory (notebook 10)", "", markdown_table(profile[columns]), ""]

    gifs = sorted(out_dir.glob("gifs/*.gif"))
    if gifs:
        parts += ["## Prediction GIFs", ""] + [f"![{p.stem}]({link(p)})" for p in gifs] + [""]
    figures = sorted(out_dir.glob("figures/*.png"))
    parts += ["## Figures", ""] + (["No figures yet.", ""] if not figures else [])
    for path in figures:
        parts += [f"### {path.stem}", "", f"![{path.stem}]({link(path)})", ""]
    tables = sorted(out_dir.glob("tables/*.csv")) + sorted(out_dir.glob("results/*.json"))
    if tables:
        parts += ["## Tables and results", ""] + [f"- [{link(p)}]({link(p)})" for p in tables] + [""]
    return "\n".join(parts)


def write_report(out_dir: str | Path = "outputs") -> Path:
    """Write ``<out_dir>/README.md`` (atomically) and return its path."""
    text = build_report(out_dir)
    path = Path(out_dir) / "README.md"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
