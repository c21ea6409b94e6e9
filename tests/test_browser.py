"""JupyterLab in headless Chromium: notebook 11's comparison widget reacts to its controls, notebook 00 runs clean.

Starts ``jupyter lab`` from this Python environment on a free 127.0.0.1 port with a token, in a temporary folder
holding copies of the notebooks with tiny parameters injected (as papermill injects them), and drives Debian's
Chromium (``/usr/bin/chromium``, installed by ``make chromium``) with Playwright. Screenshots land in
``outputs/screenshots/``. Skipped without Chromium or Playwright, except under CI (``CI`` set), where that fails.

After `make demo`, the widget test compares the demo's own checkpoints (notebook 11's default ``checkpoints``) on
data/minicity and rewrites README's picture, docs/images/widget.png, from what the browser shows; without them it
trains two tiny models and leaves README's picture alone. The book of the executed notebooks is checked in Chromium
by tests/test_notebooks_book.py with the helpers below.
"""
from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SCREENSHOTS = ROOT / "outputs" / "screenshots"
CHROMIUM = os.environ.get("SEGLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]
TINY_UNET = {"base_width": 8, "depth": 3}
WIDGET_IMAGE = ROOT / "docs" / "images" / "widget.png"  # README's picture, written from the demo's checkpoints
# Lab settings for a quiet, deterministic page: no news/update toasts, every cell kept in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
# Evaluated in the page: 'error' once an output shows a traceback or a broken widget, 'done' once every code cell
# has an execution count, else null (still running).
RUN_STATE_JS = """() => {
  const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')];
  const outputs = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output')];
  if (outputs.some(o => /Traceback|Error displaying widget/.test(o.textContent))) return 'error';
  const prompts = cells.map(c => (c.querySelector('.jp-InputPrompt') || {}).textContent || '');
  return cells.length && prompts.every(p => /\\[\\d+\\]/.test(p)) ? 'done' : null;
}"""


def _require(condition: bool, reason: str) -> None:
    """Skip when a browser prerequisite is missing on a developer machine; under CI that is a failure."""
    if not condition:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{reason} (run `make chromium` / `make test`)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET"):
    request = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


@contextlib.contextmanager
def jupyter_lab(workdir: Path):
    """A JupyterLab server on 127.0.0.1 serving ``workdir``; yields (base URL, token); always stopped afterwards."""
    token, port = secrets.token_hex(16), _free_port()
    state = workdir.parent / f"{workdir.name}-jupyter"
    for name, settings in LAB_SETTINGS.items():
        target = state / "settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(settings))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTER_DATA_DIR": str(state / "data"),
           "JUPYTER_RUNTIME_DIR": str(state / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces")}
    log = (state / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={workdir}", "--ServerApp.terminals_enabled=False", "--LabApp.news_url=",
         "--LabApp.extension_manager=readonly", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{(state / 'server.log').read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                _api(base, token, "/api/status")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not answer in 90 s:\n{(state / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        with contextlib.suppress(OSError, ValueError):  # kernels run in their own sessions: shut them down by API
            for kernel in _api(base, token, "/api/kernels"):
                _api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


@contextlib.contextmanager
def chromium_page(profile: Path):
    """A Playwright page in Debian's Chromium with a fresh profile folder."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1100})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            context.close()


def with_parameters(name: str, workdir: Path, **parameters) -> Path:
    """Copy ``notebooks/<name>`` into ``workdir`` with ``parameters`` injected after its parameters cell."""
    from papermill.iorw import load_notebook_node, write_ipynb
    from papermill.parameterize import parameterize_notebook

    notebook = parameterize_notebook(load_notebook_node(str(NOTEBOOKS / name)), parameters, kernel_name="python3")
    target = workdir / name
    write_ipynb(notebook, str(target))
    return target


def _wait_kernel_idle(base: str, token: str, timeout_s: float = 90) -> None:
    """Wait until the server has a started kernel that is idle (the notebook's kernel)."""
    deadline = time.monotonic() + timeout_s
    while not any(k["execution_state"] == "idle" for k in _api(base, token, "/api/kernels")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no idle kernel after {timeout_s} s: {_api(base, token, '/api/kernels')}")
        time.sleep(0.5)


def run_all(page, base: str, token: str, name: str, timeout_s: float = 150) -> None:
    """Open notebook ``name`` in JupyterLab, choose Run > Run All Cells, wait until every cell ran or one failed."""
    page.goto(f"{base}/lab/tree/{name}?token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell")
    _wait_kernel_idle(base, token)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    state = page.wait_for_function(RUN_STATE_JS, timeout=timeout_s * 1000, polling=500).json_value()
    page.wait_for_timeout(500)  # let the last outputs render
    if state == "error":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"error_{Path(name).stem}.png"), full_page=True)
        errors = [o for o in page.locator(".jp-OutputArea-output").all_inner_texts()
                  if "Traceback" in o or "Error displaying widget" in o]
        pytest.fail(f"{name} shows an error in JupyterLab:\n{errors[0][-3000:]}")


def _first_panel_src(page) -> str:
    return page.locator(".seglab-panels img").first.get_attribute("src")


def _wait_src_change(page, old: str) -> str:
    page.wait_for_function("old => { const i = document.querySelector('.seglab-panels img');"
                           " return i && i.src && i.src !== old; }", arg=old, timeout=30_000)
    return _first_panel_src(page)


@pytest.fixture(scope="module")
def browser_ready():
    _require(Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK), f"no Chromium at {CHROMIUM}")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _require(False, "Playwright for Python is not installed (pip install -e '.[dev]')")


def demo_checkpoints(name: str = "11_compare_models.ipynb") -> list[Path]:
    """The checkpoints notebook 11 compares by default (the demo's runs) that exist in this checkout."""
    cell = next(c for c in json.loads((NOTEBOOKS / name).read_text())["cells"]
                if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    value = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", None) == "checkpoints" for t in node.targets))
    return [ROOT / path for path in ast.literal_eval(value) if (ROOT / path).is_file()]


def test_compare_widget_in_jupyterlab(browser_ready, minicity, tmp_path):
    from seglab.config import TrainConfig
    from seglab.engine import fit
    from seglab.toolbox.files import atomic_write

    demo, demo_data = demo_checkpoints(), ROOT / "data" / "minicity"
    from_demo = len(demo) >= 2 and (demo_data / "leftImg8bit").is_dir()
    if from_demo:
        data, checkpoints = demo_data, demo
    else:
        data, checkpoints = minicity, [tmp_path / "runs" / run / "best.pt" for run in ("unet", "unet_b")]
        for seed, checkpoint in enumerate(checkpoints):
            fit(TrainConfig(model="unet", model_options=TINY_UNET, data=str(minicity), out=str(checkpoint.parent),
                            epochs=1, batch_size=2, crop=(64, 128), max_steps=2, workers=0, precision="fp32",
                            progress=False, seed=seed))
    workdir = tmp_path / "lab"
    workdir.mkdir()
    name = "11_compare_models.ipynb"
    with_parameters(name, workdir, data_root=str(data), out_dir=str(tmp_path / "outputs"),
                    checkpoints=[str(c) for c in checkpoints], figure_images=1, device="cpu", precision="fp32")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with jupyter_lab(workdir) as (base, token), chromium_page(tmp_path / "profile") as page:
        run_all(page, base, token, name)
        page.wait_for_selector(".seglab-compare .seglab-panels img")
        assert page.locator(".seglab-panels img").count() == len(checkpoints)  # one panel per checkpoint
        page.locator(".seglab-compare").scroll_into_view_if_needed()
        first = _first_panel_src(page)
        page.screenshot(path=str(SCREENSHOTS / "widget_prediction.png"))
        if from_demo:  # README's picture: the app as the browser shows it, from the demo's own models
            atomic_write(WIDGET_IMAGE, lambda tmp: page.locator(".seglab-compare").screenshot(path=tmp, type="png"))

        image_name = page.locator(".seglab-compare code").first.inner_text()
        page.locator(".seglab-next").click()
        after_next = _wait_src_change(page, first)
        assert page.locator(".seglab-compare code").first.inner_text() != image_name

        page.locator(".seglab-index .noUi-handle").focus()  # the slider handle, moved with the keyboard
        page.keyboard.press("ArrowRight")
        after_slider = _wait_src_change(page, after_next)

        page.locator(".seglab-view button", has_text="error map").click()
        _wait_src_change(page, after_slider)
        page.screenshot(path=str(SCREENSHOTS / "widget_error_map.png"))

        page.locator(".seglab-view button", has_text="ground truth").click()
        page.wait_for_function("() => document.querySelectorAll('.seglab-panels img').length === 1")
        text = page.locator(".jp-NotebookPanel").inner_text()
        assert "Error displaying widget" not in text and "Traceback" not in text
        assert "mIoU" in page.locator(".seglab-table").inner_text()
    assert (tmp_path / "outputs/figures/11_compare_predictions.png").is_file()
    models = json.loads((tmp_path / "outputs/results/11_compare_models.json").read_text())["models"]
    assert models == [c.parent.name for c in checkpoints]  # each checkpoint named after its run folder


def test_quick_tour_runs_clean_in_jupyterlab(browser_ready, request, tmp_path):
    """Notebook 00 with the tiny parameters tests/test_notebooks.py runs it with: every cell runs, none fails."""
    found = sorted(NOTEBOOKS.glob("00_*.ipynb"))
    if not found:
        pytest.skip("notebooks/00_*.ipynb does not exist yet")
    name = found[0].name
    from test_notebooks import TINY, resolve  # one source for the notebooks' tiny parameters

    tiny = TINY.get(name[:2])
    assert tiny is not None, f"tests/test_notebooks.py has no tiny parameters for {name}"
    paths = {f"@{fixture}": str(request.getfixturevalue(fixture)) for fixture in ("minicity", "minivoc")
             if f"@{fixture}" in json.dumps(tiny)}
    parameters = {key: resolve(value, paths) for key, value in tiny.items()}
    workdir = tmp_path / "lab"
    workdir.mkdir()
    with_parameters(name, workdir, **parameters, out_dir=str(tmp_path / "outputs"))
    with jupyter_lab(workdir) as (base, token), chromium_page(tmp_path / "profile") as page:
        run_all(page, base, token, name)  # fails on any traceback; returns once every code cell has run
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "quick_tour.png"))
        executed = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").all_inner_texts()
        code_cells = [c for c in json.loads((workdir / name).read_text())["cells"] if c["cell_type"] == "code"]
        assert len(executed) == len(code_cells) and all(re.search(r"\[\d+\]", p) for p in executed)
