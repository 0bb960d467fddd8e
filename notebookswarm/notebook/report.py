"""One self-contained HTML report of a run that works offline.

plotly.js is embedded once in the file and every chart is drawn from data in the file, so
the report opens without a network and can be mailed, archived or attached to a ticket.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

import pandas as pd

from notebookswarm.notebook.frames import AGGREGATED


def _figures(run: Any) -> list[Any]:
    import plotly.graph_objects as go

    history = run.history
    agg = history[history["name"] == AGGREGATED]
    figures = []
    if not agg.empty:
        x = agg["time"]
        load = go.Figure()
        load.add_trace(go.Scatter(x=x, y=agg["rps"], name="requests/s"))
        failures = agg["failures"] / (agg["requests"] / agg["rps"]).where(agg["rps"] > 0)
        load.add_trace(go.Scatter(x=x, y=failures.fillna(0), name="failures/s"))
        load.add_trace(go.Scatter(x=x, y=agg["users"], name="users", yaxis="y2"))
        load.update_layout(
            title="Throughput and users",
            yaxis2={"overlaying": "y", "side": "right", "title": "users"},
        )
        figures.append(load)
        latency = go.Figure()
        for column in ("p50_ms", "p95_ms", "p99_ms"):
            latency.add_trace(go.Scatter(x=x, y=agg[column], name=column.removesuffix("_ms")))
        corrected = agg["p99_corrected_ms"]
        if not corrected.fillna(0).equals(agg["p99_ms"].fillna(0)):  # the open model
            latency.add_trace(
                go.Scatter(
                    x=x, y=corrected, name="p99 from the intended start", line={"dash": "dot"}
                )
            )
        latency.update_layout(title="Latency (ms)", yaxis_type="log")
        figures.append(latency)
    if run.meta.get("steps"):
        from notebookswarm.notebook.analysis import capacity

        cap = capacity(run)
        figures.append(cap.figure())
        if cap.server is not None:
            figures.append(cap.server.figure())
    return figures


def _server_part(run: Any) -> str:
    """The watched server's side: why it saturated (after a step load), and scrape errors."""
    server = getattr(run, "server", None)
    if not isinstance(server, pd.DataFrame) or server.empty:
        return ""
    parts = ["<h2>The server's side</h2>"]
    if run.meta.get("steps"):
        from notebookswarm.notebook.analysis import capacity

        found = capacity(run).server
        if found is not None:
            parts.append(f"<p><b>Why:</b> {html.escape(found.sentence)}</p>")
            parts.append(
                _table(found.table.drop(columns="evidence"), "Evidence, likely limit first")
            )
    watched = server.groupby(["source", "metric"]).size().rename("samples").reset_index()
    parts.append(_table(watched, "Metrics watched"))
    parts.append(_table(run.server_errors, "Scrapes that failed"))
    return "".join(parts)


def _table(frame: pd.DataFrame, title: str) -> str:
    if frame.empty:
        return f"<h2>{html.escape(title)}</h2><p>None.</p>"
    body = frame.to_html(
        index=False, float_format=lambda v: f"{v:.2f}", na_rep="", classes="data", border=0
    )
    return f"<h2>{html.escape(title)}</h2>{body}"


def _when(stamp: Any) -> str:
    if not isinstance(stamp, int | float):
        return "—"
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_html(run: Any, title: str = "notebookswarm run") -> str:
    """Return the report as one HTML document (plotly.js inline, no external URLs)."""
    from plotly.offline import get_plotlyjs

    meta = run.meta
    facts = [
        ("host", meta.get("host") or "—"),
        ("started", _when(meta.get("started"))),
        ("ended", _when(meta.get("ended"))),
        ("users", meta.get("users", "—")),
    ]
    charts = "".join(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            include_mathjax=False,
            config={"displaylogo": False},
        )
        for fig in _figures(run)
    )
    exceptions = run.exceptions.assign(traceback=lambda f: f["traceback"].str.slice(0, 2000))
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<p>" + " · ".join(f"<b>{k}</b> {html.escape(str(v))}" for k, v in facts) + "</p>",
        charts,
        _table(run.stats, "Statistics per endpoint"),
        _table(run.errors, "Failures"),
        _table(exceptions, "Exceptions in user code"),
        _table(run.workers, "Workers"),
        _server_part(run),
    ]
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table.data{border-collapse:collapse;font-size:13px}"
        "table.data td,table.data th{padding:2px 8px;border-bottom:1px solid #ddd}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{style}</style><script>{get_plotlyjs()}</script></head>"
        f"<body>{''.join(parts)}</body></html>"
    )


def write_html(run: Any, path: str | Path, title: str = "notebookswarm run") -> Path:
    """Write the report to ``path`` and return it."""
    out = Path(path)
    out.write_text(render_html(run, title), encoding="utf-8")
    return out
