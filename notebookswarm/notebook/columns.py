"""The history table's rows in memory: typed append-only columns, trimmed from the front.

About 100 bytes per endpoint and update; each row's percentiles are computed once, when
the update arrives.
"""

from __future__ import annotations

import bisect
import math
from array import array
from typing import Any

import numpy as np
import pandas as pd

from notebookswarm.cluster import protocol
from notebookswarm.notebook import streamed
from notebookswarm.stats.requests import EndpointStats

_NS_PER_MS = 1_000_000
#: The history's typed columns; the table is time, method, name and these, in this order.
INT_HEAD = ("requests", "failures")
FLOAT_COLUMNS = streamed.FLOAT_COLUMNS
INT_TAIL = ("users", "arrivals", "late", "dropped")
HISTORY_COLUMNS = ["time", "method", "name", *INT_HEAD, *FLOAT_COLUMNS, *INT_TAIL]
WORKER_COLUMNS = [
    "id",
    "host",
    "pid",
    "cores",
    "state",
    "users",
    "cpu_percent",
    "loop_lag_ms",
    "rps",
    "last_seen",
    "overloaded",
    "error",
]


class Columns:
    """Append-only typed columns for the history table."""

    def __init__(self) -> None:
        self.time = array("d")
        self.endpoint = array("i")
        self.ints = {name: array("q") for name in (*INT_HEAD, *INT_TAIL)}
        self.floats = {name: array("d") for name in FLOAT_COLUMNS}

    def add(
        self,
        time: float,
        endpoint: int,
        stats: EndpointStats,
        span: float,
        users: int,
        arrivals: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        n = stats.requests
        p50, p95, p99 = stats.latency.percentiles([0.5, 0.95, 0.99])
        self.time.append(time)
        self.endpoint.append(endpoint)
        self.ints["requests"].append(n)
        self.ints["failures"].append(stats.failures)
        self.ints["users"].append(users)
        for name, count in zip(("arrivals", "late", "dropped"), arrivals, strict=True):
            self.ints[name].append(count)
        nan = math.nan
        values = {
            "rps": n / span if span > 0 else 0.0,
            "p50_ms": p50 / _NS_PER_MS if n else nan,
            "p95_ms": p95 / _NS_PER_MS if n else nan,
            "p99_ms": p99 / _NS_PER_MS if n else nan,
            "p99_corrected_ms": stats.corrected_latency.percentile(0.99) / _NS_PER_MS if n else nan,
            "max_ms": stats.latency.max / _NS_PER_MS if n else nan,
            "mean_ms": stats.total_ns / n / _NS_PER_MS if n else nan,
        }
        for name, value in values.items():
            self.floats[name].append(value)

    def __len__(self) -> int:
        return len(self.time)

    def trim(self, upto: float) -> None:
        """Forget the rows stamped at or before ``upto`` (they are on disk)."""
        k = bisect.bisect_right(self.time, upto)
        del self.time[:k]
        del self.endpoint[:k]
        for ints in self.ints.values():
            del ints[:k]
        for floats in self.floats.values():
            del floats[:k]

    def batch(self, begin: int) -> Any:
        """The rows from ``begin`` on, as an Arrow record batch for the store."""
        return streamed.history_batch(self.time, self.endpoint, self.ints, self.floats, begin)

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        """Every column as a numpy array (copies: the arrays may grow meanwhile)."""
        out: dict[str, np.ndarray[Any, Any]] = {
            "time": np.array(self.time, dtype=np.float64),
            "endpoint": np.array(self.endpoint, dtype=np.int32),
        }
        out.update({k: np.array(v, dtype=np.int64) for k, v in self.ints.items()})
        out.update({k: np.array(v, dtype=np.float64) for k, v in self.floats.items()})
        return out


def workers_frame(workers: list[protocol.WorkerRow]) -> pd.DataFrame:
    """One row per worker as the last update described it (columns ``WORKER_COLUMNS``)."""
    rows = [
        {
            **{k: getattr(row, k) for k in WORKER_COLUMNS if k != "loop_lag_ms"},
            "loop_lag_ms": row.loop_lag * 1000.0,
        }
        for row in workers
    ]
    frame = pd.DataFrame(rows, columns=WORKER_COLUMNS)
    frame["last_seen"] = pd.to_datetime(
        frame["last_seen"].astype("float64"), unit="s", utc=True
    ).astype("datetime64[ns, UTC]")
    return frame.astype(
        {
            "id": "string",
            "host": "string",
            "pid": "int64",
            "cores": "int64",
            "state": "string",
            "users": "int64",
            "cpu_percent": "float64",
            "loop_lag_ms": "float64",
            "rps": "float64",
            "overloaded": "bool",
            "error": "string",
        }
    )
