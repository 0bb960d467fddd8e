"""Everything a controller keeps of a run, built from the master's update frames.

:class:`RunData` ingests one update frame at a time (on the controller's background
thread, under the owner's lock) and answers with pandas DataFrames:

- ``stats()``: cumulative, one row per endpoint plus ``Aggregated`` (see ``frames``);
- ``history()``: tidy, one row per update (about one a second) per endpoint that had
  requests in it, plus an ``Aggregated`` row for every update;
- ``errors()``, ``exceptions()``, ``workers()``;
- ``percentiles(q, start, end, by)``: exact over a window, merged from stored histograms.

Memory is bounded: history rows are scalars in typed arrays (about 100 bytes per
endpoint and second), and the per-update histograms behind ``percentiles`` are packed
into typed arrays; those older than ``fine_seconds`` (10 minutes) are merged per minute.
An hour of 100 endpoints stays under 150 MB (tests/test_rundata.py measures it). Windows
reaching back further than ``fine_seconds`` are therefore resolved to the minute.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from notebookswarm.cluster import protocol
from notebookswarm.notebook.frames import (
    AGGREGATED,
    errors_frame,
    exceptions_frame,
    stats_frame,
)
from notebookswarm.stats.histogram import Histogram
from notebookswarm.stats.requests import EndpointStats, RequestStats

_NS_PER_MS = 1_000_000
#: The history's typed columns; the table is time, method, name and these, in this order.
_INT_HEAD = ("requests", "failures")
_FLOAT_COLUMNS = ("rps", "p50_ms", "p95_ms", "p99_ms", "p99_corrected_ms", "max_ms", "mean_ms")
_INT_TAIL = ("users", "arrivals", "late", "dropped")
HISTORY_COLUMNS = ["time", "method", "name", *_INT_HEAD, *_FLOAT_COLUMNS, *_INT_TAIL]
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


@dataclass
class Packed:
    """A histogram packed into typed arrays: a few bytes per bucket, not a dict entry."""

    buckets: array[int]
    counts: array[int]
    count: int
    min: int
    max: int

    @classmethod
    def pack(cls, hist: Histogram) -> Packed:
        """Pack a histogram."""
        keys = sorted(hist.buckets)
        return cls(
            array("I", keys),
            array("Q", [hist.buckets[k] for k in keys]),
            hist.count,
            hist.min,
            hist.max,
        )

    def unpack(self) -> Histogram:
        """Rebuild the histogram."""
        hist = Histogram()
        hist.buckets = dict(zip(self.buckets, self.counts, strict=True))
        hist.count, hist.min, hist.max = self.count, self.min, self.max
        return hist


@dataclass
class Slot:
    """The histograms of one span of time, per endpoint key ``(method, name)``."""

    start: float
    end: float
    histograms: dict[tuple[str, str], Packed] = field(default_factory=dict)
    #: From the intended start, where it differs (arrival-rate mode).
    corrected: dict[tuple[str, str], Packed] = field(default_factory=dict)


class _Columns:
    """Append-only typed columns for the history table."""

    def __init__(self) -> None:
        self.time = array("d")
        self.endpoint = array("i")
        self.ints = {name: array("q") for name in (*_INT_HEAD, *_INT_TAIL)}
        self.floats = {name: array("d") for name in _FLOAT_COLUMNS}

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


class RunData:
    """The data of one run, fed with update frames, read as DataFrames."""

    def __init__(self, fine_seconds: float = 600.0) -> None:
        self.fine_seconds = fine_seconds
        self.total = RequestStats()
        self.slots: list[Slot] = []
        self._coarse_until = 0  # slots before this index are merged per minute
        self._columns = _Columns()
        self._endpoints: list[tuple[str, str]] = []
        self._codes: dict[tuple[str, str], int] = {}
        self.workers_rows: list[dict[str, Any]] = []
        self.lost: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.first: float | None = None
        self.last: float | None = None
        self.state = "ready"
        self.users = 0
        self.target_users = 0
        self.spawn_rate = 0.0
        self.dropped = 0
        self.arrivals: tuple[int, ...] = (0, 0, 0)  # open model: due, late, dropped
        self.overloaded: list[str] = []
        self.updates = 0
        self.last_rps = 0.0
        self.last_failure_ratio = 0.0

    def _code(self, key: tuple[str, str]) -> int:
        code = self._codes.get(key)
        if code is None:
            code = self._codes[key] = len(self._endpoints)
            self._endpoints.append(key)
        return code

    def ingest(self, update: protocol.Update) -> None:
        """Add one update frame from the master (decoded and checked by the protocol)."""
        start, end = update.start, update.end
        delta = RequestStats.from_wire(update.stats)
        self.total.merge(delta)
        self.state = update.state
        self.users = update.users
        self.target_users = update.target_users
        self.spawn_rate = update.spawn_rate
        self.dropped = update.dropped
        self.overloaded = list(update.overloaded)
        self.workers_rows = [dataclasses.asdict(row) for row in update.workers]
        self.lost += [dataclasses.asdict(lost) for lost in update.lost]
        self.failures += [dataclasses.asdict(failure) for failure in update.failures]
        self.updates += 1
        if not update.reports:
            return  # a state change between seconds: no requests to tabulate
        if self.first is None:
            self.first = start
        self.last = end
        # Rates divide by the workers' time the delta covers, not by the gap between
        # updates: the update sent at a graceful stop comes early but holds a full report.
        span = update.span or end - start
        slot = Slot(start, end)
        for key, stats in delta.endpoints.items():
            self._columns.add(end, self._code(key), stats, span, self.users)
            slot.histograms[key] = Packed.pack(stats.latency)
            if stats.corrected is not None:
                slot.corrected[key] = Packed.pack(stats.corrected)
        aggregated = delta.total()
        counts = (delta.arrivals, delta.late, delta.dropped)
        self.arrivals = tuple(a + b for a, b in zip(self.arrivals, counts, strict=True))
        self._columns.add(end, self._code(("", AGGREGATED)), aggregated, span, self.users, counts)
        self.last_rps = aggregated.requests / span if span > 0 else 0.0
        n = aggregated.requests
        self.last_failure_ratio = aggregated.failures / n if n else 0.0
        self.slots.append(slot)
        self._compact(end)

    def _compact(self, now: float) -> None:
        """Merge slots older than ``fine_seconds`` into one slot per minute."""
        i = self._coarse_until
        old = [s for s in self.slots[i:] if s.end < now - self.fine_seconds]
        if not old:
            return
        merged: list[Slot] = []
        for slot in old:
            minute = math.floor(slot.start / 60.0)
            if merged and math.floor(merged[-1].start / 60.0) == minute:
                _merge_into(merged[-1], slot)
            elif self.slots[:i] and math.floor(self.slots[i - 1].start / 60.0) == minute:
                _merge_into(self.slots[i - 1], slot)
            else:
                merged.append(
                    Slot(slot.start, slot.end, dict(slot.histograms), dict(slot.corrected))
                )
        self.slots = self.slots[:i] + merged + self.slots[i + len(old) :]
        self._coarse_until = i + len(merged)

    # --- reading -----------------------------------------------------------------------

    def duration(self) -> float:
        """Seconds from the first update's start to the last update's end."""
        if self.first is None or self.last is None:
            return 0.0
        return self.last - self.first

    def stats(self) -> pd.DataFrame:
        """Cumulative per-endpoint stats plus ``Aggregated`` (columns: see ``frames``)."""
        return stats_frame(self.total, self.duration())

    def history(self) -> pd.DataFrame:
        """One row per update per endpoint with requests, plus ``Aggregated`` every update."""
        c = self._columns
        codes = pd.Series(c.endpoint, dtype="int64")
        methods = pd.array([m for m, _ in self._endpoints], dtype="string")
        names = pd.array([n for _, n in self._endpoints], dtype="string")
        frame = pd.DataFrame(
            {
                "time": pd.to_datetime(pd.Series(c.time, dtype="float64"), unit="s", utc=True),
                "method": pd.Series(
                    methods.take(codes.to_numpy()) if len(codes) else [], dtype="string"
                ),
                "name": pd.Series(
                    names.take(codes.to_numpy()) if len(codes) else [], dtype="string"
                ),
                **{k: pd.Series(v, dtype="int64") for k, v in c.ints.items()},
                **{k: pd.Series(v, dtype="float64") for k, v in c.floats.items()},
            }
        )
        frame["time"] = frame["time"].astype("datetime64[ns, UTC]")
        return frame[HISTORY_COLUMNS]

    def errors(self) -> pd.DataFrame:
        """Failures grouped by ``(method, name, error)`` with a count."""
        return errors_frame(self.total)

    def exceptions(self) -> pd.DataFrame:
        """Exceptions raised by user code: error, count, traceback."""
        return exceptions_frame(self.total)

    def workers(self) -> pd.DataFrame:
        """One row per worker as the last update described it."""
        rows = [
            {
                **{k: row.get(k) for k in WORKER_COLUMNS if k in row},
                "loop_lag_ms": float(row.get("loop_lag", 0.0)) * 1000.0,
                "overloaded": bool(row.get("overloaded", False)),
            }
            for row in self.workers_rows
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

    def percentiles(
        self,
        q: Sequence[float] = (0.5, 0.95, 0.99),
        start: Any = None,
        end: Any = None,
        by: str | Sequence[str] | None = "name",
        corrected: bool = False,
    ) -> pd.DataFrame:
        """Exact percentiles (ms, within 1%) of the requests in the updates of a window.

        ``corrected=True``: from each request's intended start (arrival-rate mode).

        An update is in the window when it ended after ``start`` and not after ``end``.

        ``start``/``end``: anything ``pd.Timestamp`` accepts (naive means UTC) or seconds
        since the epoch; None leaves that side open. ``by``: ``"name"``, ``"method"``,
        ``["method", "name"]`` or None for everything together. A request belongs to the
        update that brought it (``history``'s ``time``); updates older than
        ``fine_seconds`` are merged per minute.
        """
        qs = list(q)
        lo, hi = _seconds(start, -math.inf), _seconds(end, math.inf)
        keys = _group_keys(by)
        merged: dict[tuple[str, ...], Histogram] = {}
        for slot in self.slots:
            if slot.end <= lo or slot.end > hi:
                continue
            for (method, name), packed in slot.histograms.items():
                if corrected:
                    packed = slot.corrected.get((method, name), packed)
                group = tuple({"method": method, "name": name}[k] for k in keys)
                hist = merged.setdefault(group, Histogram())
                hist.merge(packed.unpack())
        columns = [_label(x) for x in qs]
        rows = []
        for group, hist in sorted(merged.items()):
            values = [v / _NS_PER_MS for v in hist.percentiles(qs)]
            rows.append([*group, hist.count, *values])
        frame = pd.DataFrame(rows, columns=[*keys, "requests", *columns])
        frame = frame.astype(
            {
                "requests": "int64",
                **dict.fromkeys(columns, "float64"),
                **dict.fromkeys(keys, "string"),
            }
        )
        return frame.set_index(keys) if keys else frame

    def snapshot(self) -> RunData:
        """Return an independent copy (what ``Swarm.result()`` hands out)."""
        return copy.deepcopy(self)


def _merge_into(target: Slot, slot: Slot) -> None:
    target.end = max(target.end, slot.end)
    for key in set(target.corrected) | set(slot.corrected):  # before histograms change
        mine = target.corrected.get(key) or target.histograms.get(key)
        theirs = slot.corrected.get(key) or slot.histograms.get(key)
        target.corrected[key] = _sum(mine, theirs)
    for key, packed in slot.histograms.items():
        target.histograms[key] = _sum(target.histograms.get(key), packed)


def _sum(a: Packed | None, b: Packed | None) -> Packed:
    if a is None or b is None:
        result = a or b
        assert result is not None
        return result
    hist = a.unpack()
    hist.merge(b.unpack())
    return Packed.pack(hist)


def _seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return float(stamp.timestamp())


def _group_keys(by: str | Sequence[str] | None) -> list[str]:
    from notebookswarm.errors import ConfigError

    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    for key in keys:
        if key not in ("method", "name"):
            raise ConfigError(f"by={by!r}: group by 'name', 'method', ['method', 'name'] or None")
    return keys


def _label(q: float) -> str:
    if not 0 < q <= 1:
        from notebookswarm.errors import ConfigError

        raise ConfigError(f"quantile {q!r} is outside (0, 1]: pass 0.99 for p99")
    text = f"{q * 100:.4f}".rstrip("0").rstrip(".").replace(".", "_")
    return f"p{text}_ms"


def rows_of(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return plain dict copies (for saving)."""
    return [dict(item) for item in items]
