"""The HTML report, opened in Chromium: its charts draw, and it asks the network for nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from notebookswarm.notebook.run import Run
from notebookswarm.notebook.rundata import RunData
from notebookswarm.stats.requests import RequestStats

from updates import as_update

T0 = 1_700_000_000.0


def small_run() -> Run:
    """Ten seconds of a step load with two endpoints, one failing now and then."""
    data = RunData()
    steps = []
    for i in range(10):
        users = 10 if i < 5 else 20
        if i in (0, 5):
            steps.append([T0 + i, T0 + i + 5, users])
        delta = RequestStats()
        for n in range(users * 5):
            delta.record_request("GET", "/a", (5 + n % 7) * 1_000_000, 100, None)
            if n % 10 == 0:
                delta.record_request("POST", "/b", 20_000_000, 10, "HTTP 503 Service Unavailable")
        data.ingest(
            as_update(
                {
                    "start": T0 + i,
                    "end": T0 + i + 1,
                    "state": "running",
                    "users": users,
                    "stats": delta.to_wire(),
                    "workers": [],
                    "reports": [["w", i]],
                    "span": 1.0,
                }
            )
        )
    return Run(
        data, {"host": "http://127.0.0.1:1", "started": T0, "ended": T0 + 10, "steps": steps}
    )


def test_report_renders_offline_with_its_charts(browser: Any, tmp_path: Path) -> None:
    """Opened from disk, the report draws its three charts with data, logs no JavaScript
    error, and makes no request outside the file."""
    path = small_run().to_html(tmp_path / "report.html")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(path.as_uri())
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot').length >= 3 && "
            "[...document.querySelectorAll('.js-plotly-plot')].every("
            "  g => g.data && g.data.some(t => t.x &&"
            "    (t.x.length || (t.x._inputArray || []).length)))",  # plain or typed arrays
            timeout=30_000,
        )
        page.screenshot(path=str(Path("test-artifacts") / "report.png"), full_page=False)
    finally:
        context.close()
    assert errors == []
    assert requests and all(url.startswith(("file:", "data:", "blob:")) for url in requests), [
        url for url in requests if not url.startswith(("file:", "data:", "blob:"))
    ]
