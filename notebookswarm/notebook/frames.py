"""Turn statistics into pandas DataFrames with documented columns and stable dtypes.

Columns of :func:`stats_frame` (one row per ``(method, name)``, then ``Aggregated``):

=============== ======= =====================================================
column          dtype   meaning
=============== ======= =====================================================
method          string  HTTP method ("" on the Aggregated row)
name            string  the request's name (its URL unless ``name=`` was given)
requests        int64   requests completed
failures        int64   of which failed
failure_ratio   float64 failures / requests (0 when there were none)
rps             float64 requests per second over the span
mean_ms         float64 mean latency
min_ms .. max_ms float64 exact minimum and maximum latency
p50_ms, p90_ms, p95_ms, p99_ms, p999_ms  float64  percentiles (within 1%, clamped to min/max)
p50/p95/p99/max_corrected_ms  float64  the same from each request's intended start
                (arrival-rate mode: coordinated omission corrected; else equal)
bytes           int64   response body bytes received
=============== ======= =====================================================
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from notebookswarm.stats.requests import EndpointStats, RequestStats

AGGREGATED = "Aggregated"
PERCENTILES = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99, "p999_ms": 0.999}
#: Latency from the intended start (arrival-rate mode); equal to the above otherwise.
CORRECTED = {
    "p50_corrected_ms": 0.5,
    "p95_corrected_ms": 0.95,
    "p99_corrected_ms": 0.99,
    "max_corrected_ms": 1.0,
}
STATS_COLUMNS = [
    "method",
    "name",
    "requests",
    "failures",
    "failure_ratio",
    "rps",
    "mean_ms",
    "min_ms",
    "max_ms",
    *PERCENTILES,
    *CORRECTED,
    "bytes",
]
_INTS = ("requests", "failures", "bytes")
_NS_PER_MS = 1_000_000


def endpoint_row(method: str, name: str, stats: EndpointStats, seconds: float) -> dict[str, Any]:
    """Return one row of :func:`stats_frame` for one endpoint's stats over ``seconds``."""
    n = stats.requests
    hist = stats.latency
    row: dict[str, Any] = {
        "method": method,
        "name": name,
        "requests": n,
        "failures": stats.failures,
        "failure_ratio": stats.failures / n if n else 0.0,
        "rps": n / seconds if seconds > 0 else 0.0,
        "mean_ms": stats.total_ns / n / _NS_PER_MS if n else float("nan"),
        "min_ms": hist.min / _NS_PER_MS if n else float("nan"),
        "max_ms": hist.max / _NS_PER_MS if n else float("nan"),
        "bytes": stats.bytes,
    }
    for columns, histogram in ((PERCENTILES, hist), (CORRECTED, stats.corrected_latency)):
        values = histogram.percentiles(columns.values())
        for column, value in zip(columns, values, strict=True):
            row[column] = value / _NS_PER_MS if n else float("nan")
    return row


def stats_frame(stats: RequestStats, seconds: float) -> pd.DataFrame:
    """Return per-endpoint stats plus an ``Aggregated`` row; ``seconds`` is the span for rps."""
    rows = [
        endpoint_row(method, name, s, seconds)
        for (method, name), s in sorted(
            stats.endpoints.items(), key=lambda kv: (kv[0][1], kv[0][0])
        )
    ]
    rows.append(endpoint_row("", AGGREGATED, stats.total(), seconds))
    frame = pd.DataFrame(rows, columns=STATS_COLUMNS)
    return frame.astype({"method": "string", "name": "string", **dict.fromkeys(_INTS, "int64")})


def errors_frame(stats: RequestStats) -> pd.DataFrame:
    """Return failures grouped by ``(method, name, error)`` with a ``count``, most first."""
    rows = [
        {"method": m, "name": n, "error": e, "count": c} for (m, n, e), c in stats.errors.items()
    ]
    frame = pd.DataFrame(rows, columns=["method", "name", "error", "count"])
    frame = frame.astype(
        {"method": "string", "name": "string", "error": "string", "count": "int64"}
    )
    return frame.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)


def exceptions_frame(stats: RequestStats) -> pd.DataFrame:
    """Return exceptions raised by user code: ``error``, ``count``, ``traceback``, most first."""
    rows = [
        {"error": r.error, "count": r.count, "traceback": r.traceback}
        for r in stats.exceptions.values()
    ]
    frame = pd.DataFrame(rows, columns=["error", "count", "traceback"])
    frame = frame.astype({"error": "string", "count": "int64", "traceback": "string"})
    return frame.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)
