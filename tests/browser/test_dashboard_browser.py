"""The quickstart notebook's dashboard in JupyterLab 4 and Notebook 7, with real input."""

from __future__ import annotations

import time

from notebookswarm.testing import CountingServer

from lab import (
    ALL_RAN,
    CHART_FILL,
    LIVE_LAST_Y,
    STATIC_DRAWN,
    Page,
    command,
    live_points,
    open_notebook,
    run_all,
    screenshot,
    text,
    wait_live_points,
    wait_text,
)

QUICKSTART = "01-quickstart.ipynb"
STATE = ".nbs-status .nbs-state"
USERS = ".nbs-status .nbs-users"
USERS_TRACE = 5
# The count in the exceptions table's first row (0 before there is one).
EXCEPTION_COUNT = """() => {
  const c = document.querySelectorAll('.nbs-exceptions tr:nth-child(2) td');
  return c.length > 1 ? Number(c[1].textContent.replace(/,/g, '')) : 0; }"""


def test_dashboard_steers_and_follows_in_jupyterlab(page: Page, target: CountingServer) -> None:
    """In JupyterLab the charts grow live and fill the width, the keyboard-moved users
    slider changes the master's user count within 3 s and the users chart follows, Stop
    ends the traffic, a re-opened notebook shows the static copy, and no JavaScript error
    is logged."""
    open_notebook(page, QUICKSTART)
    run_all(page)

    # Live while the notebook's cells run (its last cells wait 10 s, then stop).
    first = wait_live_points(page, more_than=1, timeout=60)
    wait_live_points(page, more_than=first + 2)
    assert page.page.locator(".nbs-chart .scatterlayer .trace").count() > 0  # drawn, not just data
    # The live plot fills the dashboard's width (plotly's widget first draws it 700 px wide).
    page.page.wait_for_function(f"() => ({CHART_FILL})() > 0.9", timeout=10_000)
    page.page.wait_for_function(ALL_RAN, timeout=90_000)
    wait_text(page, STATE, "stopped")

    # Stopped: the static copy replaces the live chart.
    page.page.wait_for_function(STATIC_DRAWN)
    assert page.page.locator(".nbs-chart").is_hidden()

    # Start again from the dashboard; the live chart comes back and grows.
    page.page.locator("button.nbs-start").click()
    wait_text(page, STATE, "running")
    before = live_points(page)
    wait_live_points(page, more_than=before + 1)
    requests_running = target.count()

    # Move the users slider with the keyboard: the master reports the new count within 3 s.
    users = int(text(page, USERS))
    handle = page.page.locator(".nbs-users-slider .noUi-handle")
    handle.focus()
    for _ in range(5):
        handle.press("ArrowRight")
    moved = time.monotonic()
    wait_text(page, USERS, str(users + 5), timeout=3)
    assert time.monotonic() - moved < 3.0
    page.page.wait_for_function(
        f"() => ({LIVE_LAST_Y})({USERS_TRACE}) === {users + 5}", timeout=3000
    )
    assert text(page, ".nbs-status .nbs-target") == str(users + 5)
    screenshot(page, "dashboard-lab-live.png", ".nbs-dashboard")
    assert target.count() > requests_running

    # Stop from the dashboard: the target receives nothing more.
    page.page.locator("button.nbs-stop").click()
    wait_text(page, STATE, "stopped")
    stopped_at = target.count()
    watch_until = time.monotonic() + 3
    while time.monotonic() < watch_until:  # watching for stray traffic is the behaviour
        assert target.count() == stopped_at
        time.sleep(0.1)
    screenshot(page, "dashboard-lab-stopped.png")
    assert page.errors == []

    # Saved and opened again without its kernel's widgets: the static copy still draws.
    command(page, "docmanager:save")
    for session in page.jupyter.api("GET", "/api/sessions"):
        page.jupyter.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)
    page.page.reload(wait_until="domcontentloaded")
    page.page.wait_for_function(STATIC_DRAWN, timeout=60_000)
    screenshot(page, "dashboard-lab-reopened.png", ".jp-RenderedPlotly")


def test_dashboard_runs_in_notebook_7(page: Page) -> None:
    """In Notebook 7 the same notebook draws the dashboard with growing live charts and
    no JavaScript error."""
    open_notebook(page, QUICKSTART, ui="notebook")
    run_all(page)
    first = wait_live_points(page, more_than=1, timeout=60)
    wait_live_points(page, more_than=first + 2)
    screenshot(page, "dashboard-notebook7.png", ".nbs-dashboard")
    page.page.wait_for_function(ALL_RAN, timeout=90_000)
    wait_text(page, STATE, "stopped")
    # Notebook 7.6 throws this from its own shortcut settings on every page load, before
    # any cell runs (a plain `jupyter notebook` with no notebookswarm does too).
    notebook_own = "pageerror: Cannot read properties of undefined (reading 'schema')"
    assert [e for e in page.errors if e != notebook_own] == []


FAILING_CELLS = [
    """
import os
import notebookswarm as nbs

class Flaky(nbs.HttpUser):
    wait_time = nbs.constant(0.1)

    @nbs.task(2)
    def home(self):
        self.client.get("/")

    @nbs.task(2)
    def broken(self):
        self.client.get("/broken")

    @nbs.task(1)
    def crash(self):
        {}["token"]

swarm = nbs.Swarm(Flaky, host=os.environ["NOTEBOOKSWARM_TARGET"], workers=1)
swarm.watch(lambda: {"queue_depth": 3.0}, name="probe")
swarm.dashboard()
""",
    "swarm.start(4, spawn_rate=20)",
]


def _failing_notebook(page: Page, name: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)"}
    nb.cells = [nbformat.v4.new_code_cell(cell.strip()) for cell in FAILING_CELLS]
    nbformat.write(nb, page.jupyter.root / name)


def test_dashboard_lists_failures_exceptions_and_server_metrics(
    page: Page, target: CountingServer
) -> None:
    """While a swarm hits an endpoint that answers 500 and a task raises, the dashboard in
    JupyterLab shows the failure row with its error text and the exception with its count
    growing; picking the exception shows its traceback; picking a watched metric draws it
    in a second chart; no JavaScript error is logged."""
    target.route("/broken", status=500)
    _failing_notebook(page, "failing.ipynb")
    open_notebook(page, "failing.ipynb")
    run_all(page)

    failures = ".nbs-failures"
    page.page.wait_for_function(
        """([s, error]) => [...document.querySelectorAll(s + ' tr')].some(
             r => r.textContent.includes('/broken') && r.textContent.includes(error))""",
        arg=[failures, "HTTP 500 Internal Server Error"],
        timeout=60_000,
    )
    row = page.page.locator(f"{failures} tr", has_text="/broken").first
    assert "GET" in row.text_content()
    count = EXCEPTION_COUNT
    first = int(page.page.evaluate(count))
    page.page.wait_for_function(f"() => ({count})() > {first}", timeout=10_000)
    assert "KeyError" in text(page, ".nbs-exceptions")

    # The traceback on demand: pick the exception in the dropdown.
    page.page.locator(".nbs-traceback-picker select").select_option(index=1)
    page.page.wait_for_function(
        """() => { const t = document.querySelector('.nbs-traceback');
                   return !!t && t.textContent.includes('Traceback')
                              && t.textContent.includes("KeyError: 'token'"); }""",
        timeout=10_000,
    )
    picked = page.page.locator(".nbs-traceback-picker select").input_value()
    time.sleep(1.5)  # three redraws later the picked traceback is still shown
    assert page.page.locator(".nbs-traceback-picker select").input_value() == picked
    assert "Traceback" in text(page, ".nbs-traceback")

    # A watched metric, picked by name, gets a chart of its own.
    page.page.locator(".nbs-server-picker select").select_option(label="probe: queue_depth")
    page.page.wait_for_function(
        """() => { const gd = document.querySelector('.nbs-server-chart .js-plotly-plot');
                   return !!gd && gd.data && gd.data.length === 1 && gd.data[0].y.length > 1
                          && gd.data[0].y.every(v => v === 3); }""",
        timeout=20_000,
    )
    screenshot(page, "dashboard-lab-failures.png", ".nbs-dashboard")
    page.page.locator("button.nbs-stop").click()
    wait_text(page, STATE, "stopped")
    assert page.errors == []
