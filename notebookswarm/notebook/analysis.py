"""Find the bottleneck: capacity and knee of a step load, before/after comparisons.

pandas in, pandas and plotly out::

    cap = capacity(run)            # cap.table: one row per step; cap.knee: the saturation point
    cap.server                     # with watched server metrics: which resource hit its limit
    cmp = compare(before, after)   # cmp.table: per endpoint, side by side, with deltas
    degradation(run)               # which endpoint's p95 degraded first as users grew

A *run* is anything with ``history``, ``percentiles(...)`` and ``meta`` — a
:class:`~notebookswarm.notebook.run.Run` (``swarm.result()``) or ``Run.load(path)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.attribution import Attribution, attribute
from notebookswarm.notebook.frames import AGGREGATED

#: A step's first seconds are left out of its numbers while its new users start.
SETTLE_SECONDS = 1.5
#: The knee is the first step reaching this share of the peak throughput.
KNEE_SHARE = 0.9
#: Little's law is flagged where predicted and actual users differ by more than this.
LITTLE_TOLERANCE = 0.2


@dataclass
class Capacity:
    """What a step load says about capacity (and, with watched server metrics, why)."""

    table: pd.DataFrame
    knee: pd.Series
    #: Which server resource hit its limit, when the run watched the server's metrics
    #: (``swarm.watch``): ``server.sentence``, ``server.table``, ``server.figure()``.
    server: Attribution | None = None

    @property
    def throughput(self) -> float:
        """Requests per second at and after the knee (the plateau's median)."""
        return float(self.knee["throughput"])

    def figure(self) -> Any:
        """Return a plotly figure: throughput and p95 against users, the knee marked."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        t = self.table
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        fig.add_trace(
            go.Scatter(x=t["users"], y=t["throughput"], name="requests/s", mode="lines+markers")
        )
        fig.add_trace(
            go.Scatter(x=t["users"], y=t["p95_ms"], name="p95 ms", mode="lines+markers"),
            secondary_y=True,
        )
        fig.add_vline(
            x=float(self.knee["users"]),
            line_dash="dot",
            annotation_text=f"knee ≈ {self.throughput:.0f} req/s",
        )
        fig.update_layout(title="Capacity", xaxis_title="users")
        fig.update_yaxes(title_text="requests/s", secondary_y=False)
        fig.update_yaxes(title_text="p95 (ms)", secondary_y=True)
        return fig


def _steps(run: Any) -> list[tuple[float, float, int]]:
    steps = [tuple(s) for s in (run.meta.get("steps") or [])]
    if not steps:
        raise ConfigError(
            "this run has no steps: run it with swarm.step_load(start=..., step=..., "
            "every=..., until=...) first"
        )
    return [(float(a), float(b), int(n)) for a, b, n in steps]


def capacity(run: Any, think_time: float = 0.0) -> Capacity:
    """Return one row per step (users, throughput, p50/p95/p99, failure ratio) and the knee.

    ``think_time``: the users' mean wait per request, in seconds, for the Little's-law
    check (users ≈ throughput x (response time + think time)). Where it fails by more
    than 20%, ``littles_law_ok`` is False: the generator was saturated (see
    ``swarm.workers``) or requests waited to be sent (coordinated omission).
    """
    history = run.history
    aggregated = history[history["name"] == AGGREGATED]
    times = aggregated["time"].map(lambda t: t.timestamp())
    rows = []
    for start, end, users in _steps(run):
        settled = start + min(SETTLE_SECONDS, (end - start) / 3)
        part = aggregated[(times > settled) & (times <= end)]
        span = _span(part, times)
        requests = int(part["requests"].sum())
        failures = int(part["failures"].sum())
        throughput = requests / span if span > 0 else 0.0
        mean_ms = _weighted_mean(part)
        p = run.percentiles([0.5, 0.95, 0.99], start=settled, end=end, by=None)
        p50, p95, p99 = (
            float(p[c].iloc[0]) if len(p) else math.nan for c in ("p50_ms", "p95_ms", "p99_ms")
        )
        predicted = throughput * (mean_ms / 1000.0 + think_time)
        rows.append(
            {
                "users": users,
                "throughput": throughput,
                "requests": requests,
                "failure_ratio": failures / requests if requests else 0.0,
                "mean_ms": mean_ms,
                "p50_ms": p50,
                "p95_ms": p95,
                "p99_ms": p99,
                "predicted_users": predicted,
                "littles_law_ok": bool(
                    users and abs(predicted - users) / users <= LITTLE_TOLERANCE
                ),
            }
        )
    table = pd.DataFrame(rows).astype(
        {"users": "int64", "requests": "int64", "littles_law_ok": "bool"}
    )
    knee = _knee(table)
    server = getattr(run, "server", None)
    if not isinstance(server, pd.DataFrame) or server.empty:
        return Capacity(table, knee)
    found = attribute(server, _steps(run), table, knee, history, SETTLE_SECONDS)
    return Capacity(table, knee, found)


def _span(part: pd.DataFrame, times: pd.Series) -> float:
    """Seconds the rows cover: each row is one update of about one second."""
    if part.empty:
        return 0.0
    stamps = times.loc[part.index].sort_values()
    if len(stamps) == 1:
        return 1.0
    gaps = stamps.diff().dropna()
    return float(stamps.iloc[-1] - stamps.iloc[0] + gaps.mean())


def _weighted_mean(part: pd.DataFrame) -> float:
    n = part["requests"].sum()
    if not n:
        return math.nan
    return float((part["mean_ms"].fillna(0) * part["requests"]).sum() / n)


def _knee(table: pd.DataFrame) -> pd.Series:
    """The first step reaching 90% of the peak throughput, with the plateau's throughput."""
    if table.empty:
        raise ConfigError("the step load produced no measurements: run it longer")
    peak = table["throughput"].max()
    first = int((table["throughput"] >= KNEE_SHARE * peak).to_numpy().argmax())
    knee = table.iloc[first].copy()
    knee["throughput"] = float(table["throughput"].iloc[first:].median())
    return knee


@dataclass
class Comparison:
    """Two runs side by side, per endpoint."""

    table: pd.DataFrame
    figure: Any


_COMPARED = ["requests", "rps", "failure_ratio", "p50_ms", "p95_ms", "p99_ms", "max_ms"]


def compare(before: Any, after: Any, labels: tuple[str, str] = ("before", "after")) -> Comparison:
    """Compare two runs per endpoint: both values, absolute and relative change.

    ``table`` has a row per ``(method, name)`` (Aggregated last) and, per measure,
    columns ``<measure>_<before>``, ``<measure>_<after>``, ``<measure>_delta`` (after -
    before) and ``<measure>_change`` (delta ÷ before). ``figure`` overlays both runs'
    throughput and p95 over time.
    """
    a, b = labels
    left = before.stats.set_index(["method", "name"])[_COMPARED]
    right = after.stats.set_index(["method", "name"])[_COMPARED]
    joined = left.add_suffix(f"_{a}").join(right.add_suffix(f"_{b}"), how="outer")
    for measure in _COMPARED:
        x, y = joined[f"{measure}_{a}"], joined[f"{measure}_{b}"]
        joined[f"{measure}_delta"] = y - x
        joined[f"{measure}_change"] = (y - x) / x.where(x != 0)
    order = [f"{m}_{s}" for m in _COMPARED for s in (a, b, "delta", "change")]
    table = joined[order].reset_index()
    is_total = table["name"] == AGGREGATED
    table = pd.concat([table[~is_total], table[is_total]], ignore_index=True)
    return Comparison(table, _overlay(before, after, labels))


def _overlay(before: Any, after: Any, labels: tuple[str, str]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, subplot_titles=("requests/s", "p95 (ms)")
    )
    for run, label in zip((before, after), labels, strict=True):
        h = run.history
        agg = h[h["name"] == AGGREGATED]
        if agg.empty:
            continue
        seconds = (agg["time"] - agg["time"].iloc[0]).dt.total_seconds()
        fig.add_trace(go.Scatter(x=seconds, y=agg["rps"], name=f"{label} rps"), row=1, col=1)
        fig.add_trace(go.Scatter(x=seconds, y=agg["p95_ms"], name=f"{label} p95"), row=2, col=1)
    fig.update_xaxes(title_text="seconds since start", row=2, col=1)
    fig.update_layout(title="Did it help?")
    return fig


def degradation(run: Any, factor: float = 2.0) -> pd.DataFrame:
    """Return, per endpoint, the first step where its p95 passed ``factor`` x its first
    step's p95 — the endpoints that degraded first come first (never: NaN users)."""
    rows = []
    steps = _steps(run)
    per_step = []
    for start, end, users in steps:
        settled = start + min(SETTLE_SECONDS, (end - start) / 3)
        p = run.percentiles([0.95], start=settled, end=end, by=["method", "name"])
        per_step.append((users, p["p95_ms"]))
    endpoints = sorted({key for _, p in per_step for key in p.index})
    for key in endpoints:
        series = [(users, float(p.get(key, math.nan))) for users, p in per_step]
        base = next((v for _, v in series if not math.isnan(v)), math.nan)
        when = next((u for u, v in series if v > factor * base), None)
        rows.append(
            {
                "method": key[0],
                "name": key[1],
                "baseline_p95_ms": base,
                "degraded_at_users": when,
                "p95_ms_at_end": series[-1][1],
            }
        )
    frame = pd.DataFrame(
        rows, columns=["method", "name", "baseline_p95_ms", "degraded_at_users", "p95_ms_at_end"]
    )
    frame["degraded_at_users"] = frame["degraded_at_users"].astype("Float64")
    return frame.sort_values("degraded_at_users", na_position="last", kind="stable").reset_index(
        drop=True
    )
