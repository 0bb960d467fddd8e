"""Draw an attribution: the step load on top, the likely limits below, on one time axis."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

from notebookswarm.notebook.frames import AGGREGATED


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def attribution_figure(
    table: pd.DataFrame,
    server: pd.DataFrame,
    steps: Sequence[tuple[float, float, int]],
    knee_users: int,
    history: pd.DataFrame | None,
    top: int = 3,
) -> Any:
    """Return a plotly figure with shared time: users and p95, then each top-ranked series.

    ``table`` is an attribution's evidence (ranked), ``server`` the watched rows.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    chosen = table.head(top)
    titles = ["users and p95 (ms)", *(str(e) for e in chosen["evidence"])]
    fig = make_subplots(
        rows=len(titles),
        cols=1,
        shared_xaxes=True,
        subplot_titles=titles,
        specs=[[{"secondary_y": True}], *([{}] for _ in range(len(chosen)))],
        vertical_spacing=0.08,
    )
    x, y = [], []
    for start, end, users in steps:
        x += [_utc(start), _utc(end)]
        y += [users, users]
    fig.add_trace(go.Scatter(x=x, y=y, name="users", line={"shape": "hv"}), row=1, col=1)
    if history is not None and not history.empty:
        agg = history[history["name"] == AGGREGATED]
        fig.add_trace(
            go.Scatter(x=agg["time"], y=agg["p95_ms"], name="p95 ms"),
            row=1,
            col=1,
            secondary_y=True,
        )
    for row, (_, item) in enumerate(chosen.iterrows(), start=2):
        series = _series(server, item["source"], item["metric"], item["labels"], item["kind"])
        fig.add_trace(
            go.Scatter(x=series["time"], y=series["value"], name=item["metric"]), row=row, col=1
        )
        if item["rule"] == "held at its bound" and pd.notna(item["bound"]):
            fig.add_hline(y=float(item["bound"]), line_dash="dot", row=row, col=1)
    knee = next((s for s in steps if s[2] == knee_users), None)
    if knee is not None:
        fig.add_vline(x=_utc(knee[0]), line_dash="dot", row="all", col=1)
    fig.update_layout(
        title=f"Why it saturates: {chosen['metric'].iloc[0] if len(chosen) else 'no limit found'}",
        height=260 * len(titles),
        showlegend=False,
    )
    return fig


def _series(server: pd.DataFrame, source: str, metric: str, labels: str, kind: str) -> pd.DataFrame:
    mask = (
        (server["source"] == source)
        & (server["metric"] == metric)
        & (server["labels"] == labels)
        & (server["kind"] == kind)
    )
    return server.loc[mask, ["time", "value"]].sort_values("time")
