"""The book (`make book`) built from the notebooks tests/test_notebooks.py has just executed with tiny parameters,
checked as files and in Chromium: every page is there and loads, no link or image is broken, code is highlighted,
and each notebook page says how long the notebook ran and where.

This file sorts right after test_notebooks.py, so in a full run it finds that module's executed notebooks under
pytest's temporary folder; run alone, it executes two quick notebooks itself.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "outputs" / "screenshots"
ALONE = ("01", "02")  # notebooks executed here when test_notebooks.py did not run in this session


def _book_module():
    spec = importlib.util.spec_from_file_location("seglab_docs_book", ROOT / "docs" / "book.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["seglab_docs_book"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def executed(tmp_path_factory, request) -> Path:
    """The folder of notebooks test_notebooks.py executed in this session, or two notebooks executed here."""
    found = sorted(tmp_path_factory.getbasetemp().glob("notebooks[0-9]*/executed/[0-9][0-9]_*.ipynb"))
    # runs that raised (test_notebooks.py also runs notebook 00 with a wrong parameter on purpose) stay out
    good = [p for p in found if not json.loads(p.read_text())["metadata"].get("papermill", {}).get("exception")]
    if good:
        folder = tmp_path_factory.mktemp("book_notebooks")
        for path in good:
            shutil.copyfile(path, folder / path.name)
        return folder
    import papermill
    from test_notebooks import TINY, resolve

    folder = tmp_path_factory.mktemp("book_notebooks")
    paths = {f"@{name}": str(request.getfixturevalue(name)) for name in ("minicity", "minivoc")}
    paths["@scratch"] = str(folder / "scratch")
    for number in ALONE:
        source = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
        parameters = {key: resolve(value, paths) for key, value in TINY[number].items()}
        papermill.execute_notebook(str(source), str(folder / source.name), kernel_name="python3", cwd=str(ROOT),
                                   parameters={**parameters, "out_dir": str(folder / "outputs")}, progress_bar=False)
    return folder


@pytest.fixture(scope="module")
def book(executed, tmp_path_factory) -> Path:
    module = _book_module()
    module.stamp(sorted(executed.glob("[0-9][0-9]_*.ipynb")))  # they ran on this machine
    site = tmp_path_factory.mktemp("book")
    module.build(executed, site)
    return site


class _Refs(HTMLParser):
    """Every href and src of a page, and the text of highlighted code spans."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.refs.append((tag, value))


def _local_target(page: Path, ref: str) -> Path | None:
    """The file a relative reference of ``page`` points at (None for anchors, data: and external URLs)."""
    url = urlparse(ref)
    if url.scheme or ref.startswith("#") or not url.path:
        return None
    return (page.parent / unquote(url.path)).resolve()


def test_book_has_every_page_and_no_broken_reference(book, executed):
    notebooks = sorted(executed.glob("[0-9][0-9]_*.ipynb"))
    assert (book / "index.html").is_file()
    pages = sorted(book.rglob("*.html"))
    for notebook in notebooks:
        page = book / "notebooks" / f"{notebook.stem}.html"
        assert page.is_file(), f"no page for {notebook.name}"
        html = page.read_text()
        assert re.search(r"Executed by papermill on [^<]+ cores[^<]*: [\d.]+ s in all", html), page.name
        assert 'class="highlight-ipynb' in html and re.search(r'<span class="(k|kn|nb|s1|s2)">', html), \
            f"{page.name}: code cells are not highlighted"
        outputs = [o for c in json.loads(notebook.read_text())["cells"] for o in c.get("outputs", [])]
        gifs = sum("image/gif" in o.get("data", {}) for o in outputs)
        pngs = sum("image/png" in o.get("data", {}) for o in outputs)
        assert html.count('src="data:image/gif;base64,') >= gifs, f"{page.name}: a GIF is not shown"
        assert html.count('src="data:image/png;base64,') >= pngs, f"{page.name}: a figure is not shown"
    for doc in (ROOT / "docs").glob("*.md"):
        assert (book / f"{doc.stem}.html").is_file(), f"no page for docs/{doc.name}"
    broken = []
    for page in pages:
        parser = _Refs()
        parser.feed(page.read_text())
        for tag, ref in parser.refs:
            target = _local_target(page, ref)
            if target is not None and not target.exists():
                broken.append(f"{page.relative_to(book)}: <{tag}> {ref}")
    assert not broken, "broken references: " + "; ".join(broken[:20])
    external = [ref for page in pages for ref in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)',
                                                             page.read_text())]
    assert not external, f"the book loads files from the internet: {sorted(set(external))[:5]}"


@pytest.mark.browser
def test_book_in_chromium(book):
    """Every page loads from file:// with no failed request and no broken image; formulas are typeset; code keywords
    have their own colour; screenshots of the home page and the first notebook page."""
    from test_browser import CHROMIUM, _require, chromium_page

    _require(Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK), f"no Chromium at {CHROMIUM}")
    pytest.importorskip("playwright", reason="Playwright for Python is not installed")
    pages = sorted(p for p in book.rglob("*.html") if p.name != "404.html")
    failed: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_page(book.parent / "book-profile") as page:
        # not about:blank (MathJax's frame), nor the TeX fonts MathJax tries for \mathcal before its STIX-Web ones,
        # which the book ships and which draw the formula
        page.on("requestfailed", lambda r: r.url.startswith(("file:", "http")) and "/fonts/HTML-CSS/TeX/" not in r.url
                and failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.url} ({r.status})"))
        for path in pages:
            page.goto(path.as_uri(), wait_until="load")
            assert page.title(), path.name
            broken = page.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                                   ".map(i => i.src.slice(0, 80))")
            assert not broken, f"{path.name}: images that did not load: {broken}"
            if path.parent.name == "notebooks":
                page.wait_for_function("() => !window.MathJax || (MathJax.isReady && MathJax.Hub.queue.pending === 0)",
                                       timeout=30_000)  # formulas typeset from the book's own MathJax
                assert page.locator(".MathJax_Error, .merror").count() == 0, f"{path.name}: a formula failed"
                colours = page.evaluate("""() => {
                  const k = document.querySelector('.highlight-ipynb .k, .highlight-ipynb .kn');
                  const n = document.querySelector('.highlight-ipynb .n');
                  return k && n ? [getComputedStyle(k).color, getComputedStyle(n).color] : null; }""")
                assert colours and colours[0] != colours[1], f"{path.name}: keywords are not coloured: {colours}"
        assert not failed, f"requests that failed: {failed[:5]}"
        page.goto((book / "index.html").as_uri())
        page.screenshot(path=str(SCREENSHOTS / "book_home.png"))
        first = min(p for p in pages if p.parent.name == "notebooks")
        page.goto(first.as_uri())
        page.screenshot(path=str(SCREENSHOTS / "book_notebook.png"))
    assert (SCREENSHOTS / "book_home.png").stat().st_size > 10_000


def test_progress_bars_stay_out_of_the_pages_and_other_widgets_get_a_note():
    book = _book_module()
    widget = "application/vnd.jupyter.widget-view+json"
    bar = {"output_type": "display_data", "data": {widget: {}, "text/plain": "evaluate:   0%|   | 0/10 [00:00<?, ?it/s]"}}
    app = {"output_type": "display_data", "data": {widget: {}, "text/plain": "VBox(children=(HTML(value='…'),))"}}
    assert book.is_progress_bar(bar) and not book.is_progress_bar(app)
    book.static_output(app["data"])
    assert widget not in app["data"] and "interactive widget" in app["data"]["text/html"]
