"""The book: the executed notebooks and the docs pages as one static website (MkDocs + mkdocs-jupyter).

    python docs/book.py build [--notebooks outputs/notebooks] [--out outputs/book]
    python docs/book.py stamp NOTEBOOK...     # record this machine in executed notebooks (`make notebooks` does)

`build` copies README.md (as the home page), docs/*.md, docs/images/ and the executed notebooks into a temporary
folder, points README's and the pages' links at the book's own pages, puts at the top of each notebook how long it
ran and on what machine (papermill records every cell's duration in the notebook's metadata; `stamp` the machine),
and runs `mkdocs build` into ``--out`` (index.html at the top). Nothing is fetched from the internet.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The reference pages in the order of the book's navigation; other pages in docs/ follow in name order.
REFERENCE = ["options.md", "presets.md", "cli.md", "models.md", "model-notes.md", "training.md", "metrics.md",
             "data.md", "real-data.md", "performance.md", "troubleshooting.md"]
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
# MathJax 2 from the jupyter-server-mathjax package, copied into the book so that formulas render offline; the URL
# is relative to the notebook pages, which all sit in notebooks/
MATHJAX_URL = "../mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,local/book"
# the package ships the STIX-Web fonts (as the Jupyter Notebook configures MathJax), not the default TeX fonts,
# and no fast preview, whose PreviewHTML output wants the TeX fonts
MATHJAX_CONFIG = """MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], imageFont: null, preferredFont: null,
                                      webFont: "STIX-Web"},
                    "fast-preview": {disabled: true}, menuSettings: {CHTMLpreview: false}});
MathJax.Ajax.loadComplete("[MathJax]/config/local/book.js");
"""


# ------------------------------------------------------------------------------------------------ the machine
def machine() -> str:
    """This machine in one line: CPU model and cores, the GPU if any, torch's version."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {cores} cores{gpu}, torch {torch.__version__.split('+')[0]}"


def stamp(paths: list[Path]) -> None:
    """Write this machine into each executed notebook's metadata (``seglab.machine``), atomically."""
    import nbformat

    sys.path.insert(0, str(ROOT))
    from seglab.toolbox.files import atomic_write

    where = machine()
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        notebook.metadata.setdefault("seglab", {})["machine"] = where
        atomic_write(path, lambda tmp, nb=notebook: nbformat.write(nb, tmp), durable=False)


# ------------------------------------------------------------------------------------------------ notebook pages
def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def run_note(notebook) -> str:
    """One Markdown paragraph: when, how long (total and the slowest cells) and where the notebook ran."""
    run = notebook.metadata.get("papermill", {})
    where = notebook.metadata.get("seglab", {}).get("machine", "a machine it did not record")
    if run.get("duration") is None:
        return "*This notebook has no papermill record: it was not executed by `make demo`.*"
    cells = [(c.execution_count, c.metadata.get("papermill", {}).get("duration") or 0.0) for c in notebook.cells
             if c.cell_type == "code" and c.execution_count]
    slowest = sorted(cells, key=lambda item: -item[1])[:3]
    ended = str(run.get("end_time", ""))[:16].replace("T", " ")
    return (f"*Executed by papermill on {where}, finished {ended} UTC: {_seconds(run['duration'])} in all; slowest "
            f"cells: {', '.join(f'[{i}] {_seconds(d)}' for i, d in slowest)}.*")


WIDGET = "application/vnd.jupyter.widget-view+json"
PROGRESS_BAR = re.compile(r"\|\s*\d+/\d+ \[")  # tqdm's text: "evaluate:  40%|####  | 4/10 [00:01<00:02, ...]"


def is_progress_bar(output: dict) -> bool:
    """A tqdm progress bar (a widget in a notebook): its saved text is its first frame, so the page leaves it out."""
    data = output.get("data") or {}
    return WIDGET in data and bool(PROGRESS_BAR.search(data.get("text/plain", "")))


def static_output(data: dict | None) -> None:
    """Make an output show in a static page: a GIF (which nbconvert renders as text) as an <img>, a widget (which
    needs a live kernel) as a note."""
    if not data:
        return
    if "image/gif" in data and "text/html" not in data:
        data["text/html"] = f'<img src="data:image/gif;base64,{data["image/gif"].strip()}" alt="animated GIF">'
    if WIDGET in data:
        del data[WIDGET]
        data["text/html"] = ("<p><em>An interactive widget: it responds in JupyterLab (open this notebook there); "
                             "the figures below and the book's home page show what it displays.</em></p>")


def notebook_page(source: Path, target: Path, lesson: Path, pages: dict[Path, str]) -> str:
    """Copy the executed notebook ``source`` to ``target`` with its run note after the title cell and the links of
    its Markdown cells pointed at the book's pages (``lesson``: the notebook in the repository, where its links
    start from); returns its title."""
    import nbformat

    notebook = nbformat.read(source, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source, lesson, pages, html=True)
    # saved widget state would make each page fetch the widget renderer from the internet; offline, the widgets'
    # text fallback shows instead (the comparison app's static figures are outputs of their own)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if "outputs" in cell:
            cell.outputs = [output for output in cell.outputs if not is_progress_bar(output)]
        for output in cell.get("outputs", []):
            static_output(output.get("data"))
    note = nbformat.v4.new_markdown_cell(run_note(notebook))
    first = notebook.cells[0] if notebook.cells else None
    title = source.stem
    if first is not None and first.cell_type == "markdown" and first.source.startswith("# "):
        title = first.source.splitlines()[0][2:].strip()
        notebook.cells.insert(1, note)
    else:
        notebook.cells.insert(0, note)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return title


# ------------------------------------------------------------------------------------------------ Markdown pages
def rewrite_links(text: str, source: Path, pages: dict[Path, str], html: bool = False) -> str:
    """Point relative links of a page at ``source`` (a repository file) to the book's copies (``pages``: repository
    path -> path in the book, relative to the book's top); an image of the repository joins ``pages`` under
    files/; a link to a file the book does not hold becomes plain text, an image that does not exist a note.
    ``html``: link pages by their .html names (in notebooks, which MkDocs does not rewrite)."""
    here = pages[source.resolve()]

    def replace(match: re.Match) -> str:
        bang, label, target = match.groups()
        if re.match(r"[a-z]+:|#", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        file = (source.parent / path).resolve()
        if bang and file not in pages and file.is_file() and file.is_relative_to(ROOT):
            pages[file] = f"files/{file.relative_to(ROOT).as_posix()}"
        book_path = pages.get(file)
        if book_path is None:
            return f"*({label or path}: not generated yet)*" if bang else label
        if html and not bang:
            book_path = re.sub(r"\.(md|ipynb)$", ".html", book_path)
        relative = os.path.relpath(book_path, os.path.dirname(here) or ".")
        return f"{bang}[{label}]({relative}{'#' + anchor if anchor else ''})"

    return LINK.sub(replace, text)


# ------------------------------------------------------------------------------------------------ build
def config(src: Path, site: Path, nav: list) -> dict:
    return {
        "site_name": "seglab", "site_description": "Semantic segmentation in PyTorch, notebook by notebook",
        "docs_dir": str(src), "site_dir": str(site), "use_directory_urls": False, "nav": nav,
        "theme": {"name": "material", "font": False, "features": ["navigation.sections", "toc.follow"]},
        "plugins": ["search", {"mkdocs-jupyter": {"execute": False, "include_source": False,
                                                  "ignore_h1_titles": True, "custom_mathjax_url": MATHJAX_URL}}],
        "markdown_extensions": ["tables", "admonition", {"toc": {"permalink": True}}, "pymdownx.superfences",
                                {"pymdownx.highlight": {"use_pygments": True}}],
    }


def build(notebooks: Path, site: Path) -> Path:
    """Build the book from the executed notebooks in ``notebooks`` (and its solutions/ folder) into ``site``."""
    executed = sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))
    solutions = sorted((notebooks / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if not executed:
        raise SystemExit(f"error: no executed notebooks in {notebooks}; run `make demo` first (or pass --notebooks)")
    with tempfile.TemporaryDirectory(prefix="seglab-book-") as tmp:
        src = Path(tmp) / "docs"
        src.mkdir()
        docs = sorted(DOCS.glob("*.md"), key=lambda p: (p.name not in REFERENCE, REFERENCE.index(p.name)
                                                        if p.name in REFERENCE else 0, p.name))
        # repository file -> its path in the book
        pages = {(ROOT / "README.md").resolve(): "index.md"}
        pages |= {p.resolve(): p.name for p in docs}
        pages |= {p.resolve(): f"images/{p.name}" for p in sorted((DOCS / "images").glob("*")) if p.is_file()}
        for path in executed:
            pages[(ROOT / "notebooks" / path.name).resolve()] = f"notebooks/{path.name}"
        for path in solutions:  # beside the lessons (NN_solutions.ipynb), so every notebook page has one depth
            pages[(ROOT / "notebooks" / "solutions" / path.name).resolve()] = f"notebooks/{path.name}"
        for source, book_path in list(pages.items()):
            if source.suffix == ".md":
                (src / book_path).write_text(rewrite_links(source.read_text(), source, pages))
        nav_notebooks = [{notebook_page(p, src / "notebooks" / p.name, ROOT / "notebooks" / p.name, pages):
                          f"notebooks/{p.name}"} for p in executed]
        nav_solutions = [{notebook_page(p, src / "notebooks" / p.name, ROOT / "notebooks" / "solutions" / p.name,
                                        pages): f"notebooks/{p.name}"} for p in solutions]
        for source, book_path in pages.items():  # images and other files the pages show
            if source.suffix not in (".md", ".ipynb"):
                (src / book_path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, src / book_path)
        import jupyter_server_mathjax

        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", src / "mathjax",
                        ignore=shutil.ignore_patterns("png", "*.py"))  # the PNG fonts are a fallback of old browsers
        (src / "mathjax" / "config" / "local").mkdir(parents=True, exist_ok=True)
        (src / "mathjax" / "config" / "local" / "book.js").write_text(MATHJAX_CONFIG)
        nav = [{"Home": "index.md"}, {"Notebooks": nav_notebooks}]
        nav += [{"Solutions": nav_solutions}] if nav_solutions else []
        nav += [{"Reference": [{_title(p): p.name} for p in docs]}]
        (Path(tmp) / "mkdocs.yml").write_text(json.dumps(config(src, site.resolve(), nav), indent=1))
        result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "--strict", "--clean", "-f",
                                 str(Path(tmp) / "mkdocs.yml")], capture_output=True, text=True, cwd=tmp,
                                env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
        if result.returncode:
            raise SystemExit(f"error: mkdocs build failed:\n{result.stdout}{result.stderr}")
    (site / "404.html").unlink(missing_ok=True)  # a web server's page with absolute links: useless from file://
    print(f"wrote {site / 'index.html'}: {len(executed)} notebooks, {len(solutions)} solutions, {len(docs)} pages "
          f"({datetime.datetime.now():%H:%M:%S})")
    return site / "index.html"


def _title(page: Path) -> str:
    first = page.read_text().splitlines()[0] if page.stat().st_size else page.stem
    return first.lstrip("# ").strip() or page.stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build the book")
    p.add_argument("--notebooks", type=Path, default=ROOT / "outputs" / "notebooks", help="executed notebooks")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "book", help="the website's folder")
    p = sub.add_parser("stamp", help="record this machine in executed notebooks")
    p.add_argument("paths", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "build":
        build(args.notebooks, args.out)
    else:
        stamp(args.paths)


if __name__ == "__main__":
    main()
