"""Steps in a Jupyter page: open a notebook, run it, read the dashboard, take screenshots."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class Jupyter:
    """A running Jupyter server: its URL, token and the folder it serves."""

    url: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str, timeout: float = 5.0) -> Any:
        """Call the REST API; return the decoded JSON body (None when empty)."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None


@dataclass
class Page:
    """A Playwright page with the server it talks to and the JavaScript errors it logged."""

    page: Any
    jupyter: Jupyter
    errors: list[str] = field(default_factory=list)


KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""
ALL_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""
# The live chart is the FigureWidget's graph div; plotly keeps the traces on it as .data.
LIVE_POINTS = """(i) => {
  const gd = document.querySelector('.nbs-chart .js-plotly-plot');
  return gd && gd.data && gd.data[i] ? gd.data[i].x.length : -1;
}"""
LIVE_LAST_Y = """(i) => {
  const gd = document.querySelector('.nbs-chart .js-plotly-plot');
  const y = gd && gd.data && gd.data[i] ? gd.data[i].y : [];
  return y.length ? y[y.length - 1] : null;
}"""
# How wide the live plot is drawn, as a fraction of the dashboard's own width.
CHART_FILL = """() => {
  const svg = document.querySelector('.nbs-chart .js-plotly-plot .main-svg');
  const box = document.querySelector('.nbs-dashboard');
  if (!svg || !box) return 0;
  return svg.getBoundingClientRect().width / box.getBoundingClientRect().width;
}"""
# The static copy, drawn by the plotly mime renderer: a graph div, or (in a notebook saved
# after it was drawn) the PNG the renderer stored beside the figure.
STATIC_DRAWN = """() => {
  const r = document.querySelector('.jp-RenderedPlotly');
  if (!r) return false;
  if (r.data && r.data.length && r.data[0].x.length > 2) return true;
  const img = r.querySelector('img.plot-img');
  return !!img && img.src.startsWith('data:image/png') && img.naturalWidth > 0
    && img.style.display !== 'none';
}"""


def open_notebook(page: Page, name: str, ui: str = "lab") -> None:
    """Open a notebook in JupyterLab (``lab``) or Notebook 7 (``notebook``); wait for its
    kernel."""
    j = page.jupyter
    path = f"/lab/tree/{name}" if ui == "lab" else f"/notebooks/{name}"
    page.page.goto(f"{j.url}{path}?token={j.token}", wait_until="domcontentloaded")
    page.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.page.wait_for_function(KERNEL_IDLE, timeout=60_000)


def run_all(page: Page) -> None:
    """Start running every cell, as Run All does; return at once (the command's promise
    would resolve only when the last cell is done)."""
    page.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def command(page: Page, name: str) -> None:
    """Execute a Jupyter command by id (``docmanager:save``, ...) and wait for it."""
    page.page.evaluate("(c) => window.jupyterapp.commands.execute(c)", name)


def live_points(page: Page, trace: int = 0) -> int:
    """Points of a trace in the live chart (-1 when the chart is not drawn)."""
    return int(page.page.evaluate(LIVE_POINTS, trace))


def wait_live_points(page: Page, more_than: int, trace: int = 0, timeout: float = 15) -> int:
    """Wait until a live trace has more than ``more_than`` points; return how many."""
    page.page.wait_for_function(
        f"([i, n]) => ({LIVE_POINTS})(i) > n", arg=[trace, more_than], timeout=timeout * 1000
    )
    return live_points(page, trace)


def text(page: Page, selector: str) -> str:
    """The text of the first element matching ``selector``."""
    return str(page.page.locator(selector).first.text_content()).strip()


def wait_text(page: Page, selector: str, wanted: str, timeout: float = 30) -> None:
    """Wait until the first element matching ``selector`` reads ``wanted``."""
    page.page.wait_for_function(
        """([s, t]) => { const e = document.querySelector(s);
                         return !!e && e.textContent.trim() === t; }""",
        arg=[selector, wanted],
        timeout=timeout * 1000,
    )


def screenshot(page: Page, name: str, selector: str | None = None) -> Path:
    """Save a screenshot of the page (or of one element) to test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    target: Any = page.page.locator(selector).first if selector else page.page
    target.screenshot(path=str(path))
    return path
