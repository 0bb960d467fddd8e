"""What the dashboard shows, computed from update frames without any widget.

:class:`DashboardModel` is fed the master's update frames and answers with plain data:
the chart points of a bounded time window, the current requests per second of each
endpoint, the worker rows, the failures and exceptions seen (a
:class:`~notebookswarm.notebook.failures.FailureLog`), the overload warning and what the
master said once (``notices``), and whether the view is frozen (the swarm
stopped). :class:`Steering` decides which controller call a moved control needs and when a
frame should move the controls (a change made from code). :func:`endpoint_rows` joins the
swarm's cumulative ``stats`` DataFrame with the current rates into the endpoint table.

``notebookswarm.notebook.dashboard`` draws all of this with ipywidgets and plotly; nothing here
imports either, so the logic is tested by feeding frames and reading values.
"""

from __future__ import annotations

import html
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from notebookswarm.cluster import protocol
from notebookswarm.notebook.failures import FailureLog
from notebookswarm.notebook.frames import AGGREGATED
from notebookswarm.stats.requests import RequestStats

ACTIVE = ("spawning", "running", "stopping")
"""States in which the charts move; in any other the dashboard freezes."""
STEERABLE = ("spawning", "running")
"""States in which a moved control is sent (``set`` on an idle master would start it)."""
_NS_PER_MS = 1_000_000
WARNING = "latencies may include load-generator delay"
#: What the master said once (too many names, a stuck worker) the dashboard keeps showing.
MAX_NOTICES = 5
_TABLE_STYLE = (
    "<style>.nbs-table{border-collapse:collapse;margin:4px 0}"
    ".nbs-table th,.nbs-table td{padding:2px 12px}"
    ".nbs-table th{border-bottom:1px solid #bbb}</style>"
)
_SERIES = (
    "time",
    "rps",
    "failures_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "users",
    "target_users",
)


@dataclass(frozen=True)
class Point:
    """One update's values on the charts; latencies are None when it had no requests."""

    time: float  # the update's end, seconds since the epoch
    rps: float
    failures_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    users: int
    target_users: int
    gap: bool = False  # the first point after an idle spell: the lines break before it


@dataclass(frozen=True)
class EndpointRow:
    """One line of the endpoint table: cumulative counts and latencies, current rate."""

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class WorkerRow:
    """One line of the worker table."""

    id: str
    host: str
    state: str
    users: int
    cpu_percent: float
    loop_lag_ms: float
    rps: float
    overloaded: bool


class DashboardModel:
    """Chart points, current rates, workers and warning, updated one frame at a time."""

    def __init__(self, window: float = 900.0) -> None:
        if not window > 0:
            raise ValueError(f"window={window!r}: pass the seconds the charts keep, e.g. 900")
        self.window = window
        self.points: deque[Point] = deque()
        self.current_rps: dict[tuple[str, str], float] = {}
        self.workers: list[WorkerRow] = []
        self.overloaded: list[str] = []
        self.state = "ready"
        self.users = 0
        self.target_users = 0
        self.spawn_rate = 0.0
        self.frames = 0
        self.failures = FailureLog()
        self.notices: list[str] = []
        self._idle = False

    def feed(self, frame: protocol.Update) -> None:
        """Take one update frame (the one ``Swarm.on_frame`` callbacks receive)."""
        self.frames += 1
        self.state = frame.state
        self.users = frame.users
        self.target_users = frame.target_users
        self.spawn_rate = frame.spawn_rate
        self.workers = [_worker_row(row) for row in frame.workers]
        self.overloaded = list(frame.overloaded)
        self.note(frame.warnings)
        if not frame.reports:
            return  # a state change between seconds: it holds no report to chart
        delta = RequestStats.from_wire(frame.stats)
        self.failures.add(delta, frame.end)
        total = delta.total()
        if self.state not in ACTIVE and total.requests == 0:
            self._idle = True
            return  # idle: the charts stay frozen on the last run
        start, end = frame.start, frame.end
        span = frame.span or end - start
        per_s = 1.0 / span if span > 0 else 0.0
        self.current_rps = {key: s.requests * per_s for key, s in delta.endpoints.items()}
        p50, p95, p99 = (
            (v / _NS_PER_MS for v in total.latency.percentiles((0.5, 0.95, 0.99)))
            if total.requests
            else (None, None, None)
        )
        gap = self._idle and bool(self.points)
        self._idle = False
        self.points.append(
            Point(
                end,
                total.requests * per_s,
                total.failures * per_s,
                p50,
                p95,
                p99,
                self.users,
                self.target_users,
                gap,
            )
        )
        while self.points and self.points[0].time < end - self.window:
            self.points.popleft()

    def seed(self, history: pd.DataFrame) -> None:
        """Start the charts from ``swarm.history`` (a dashboard opened mid-run or after it)."""
        rows = history[history["name"] == AGGREGATED]
        if rows.empty:
            return
        times = rows["time"].astype("int64").to_numpy() / 1e9
        last = float(times[-1])
        for t, row in zip(times, rows.to_dict("records"), strict=True):
            if t < last - self.window:
                continue
            n, rps = int(row["requests"]), float(row["rps"])
            p50, p95, p99 = (_or_none(row[c]) for c in ("p50_ms", "p95_ms", "p99_ms"))
            fails = rps * int(row["failures"]) / n if n else 0.0
            users = int(row["users"])
            self.points.append(Point(float(t), rps, fails, p50, p95, p99, users, users))

    def reset_failures(self) -> None:
        """Forget the failures and exceptions seen (the dashboard's Reset stats)."""
        self.failures = FailureLog()

    def note(self, warnings: Iterable[str]) -> None:
        """Keep what the master said once (``swarm.warnings``), the latest few, no repeats."""
        for text in warnings:
            if text not in self.notices:
                self.notices.append(text)
        del self.notices[:-MAX_NOTICES]

    @property
    def frozen(self) -> bool:
        """Say whether the swarm is idle, so the charts show the final state of the run."""
        return self.state not in ACTIVE

    @property
    def warning(self) -> str:
        """The overload warning to show, or "" when every worker keeps up."""
        if not self.overloaded:
            return ""
        rows = {w.id: w for w in self.workers}
        described = ", ".join(
            f"{w} (CPU {rows[w].cpu_percent:.0f}%, loop lag {rows[w].loop_lag_ms:.0f} ms)"
            if w in rows
            else w
            for w in self.overloaded
        )
        return (
            f"Load generator overloaded: {described}. The {WARNING}: "
            "add workers or run fewer users per worker."
        )

    @property
    def warnings(self) -> list[str]:
        """Every line the warning area shows: the overload warning, then the notices."""
        return ([self.warning] if self.overloaded else []) + self.notices

    def series(self) -> dict[str, list[Any]]:
        """Return the chart columns of the window: ``time`` and one list per trace; a
        None row separates runs, so no line is drawn across the time the swarm stood."""
        columns: dict[str, list[Any]] = {name: [] for name in _SERIES}
        for p in self.points:
            if p.gap:
                for name in _SERIES:
                    columns[name].append(p.time - 1e-3 if name == "time" else None)
            for name in _SERIES:
                columns[name].append(getattr(p, name))
        return columns

    def status(self) -> dict[str, Any]:
        """Return the headline numbers: state, users, target, rate, failures, workers."""
        last = self.points[-1] if self.points else None
        return {
            "state": self.state,
            "users": self.users,
            "target_users": self.target_users,
            "rps": last.rps if last and not self.frozen else 0.0,
            "failures_per_s": last.failures_per_s if last and not self.frozen else 0.0,
            "workers": sum(1 for w in self.workers if w.state != "lost"),
        }


class Steering:
    """Decide what a moved control sends, and when a frame moves the controls.

    A control sends only what differs from the value last sent or last reported, and only
    while the swarm runs (``set`` on an idle master would start it). A frame moves the
    controls only when the master's target changed since the previous frame or the swarm
    just started, so a frame still in flight never drags a control back.
    """

    def __init__(self) -> None:
        self.users: int | None = None
        self.spawn_rate: float | None = None
        self.steerable = False
        self._seen: tuple[str, int, float] | None = None

    def started(self, users: int, spawn_rate: float) -> None:
        """Note that the dashboard started the swarm with these values."""
        self.users, self.spawn_rate, self.steerable = users, spawn_rate, True

    def stopped(self) -> None:
        """Note that the dashboard asked the swarm to stop."""
        self.steerable = False

    def users_moved(self, users: int) -> bool:
        """Say whether the controller must be told ``set_users(users)``."""
        if users == self.users:
            return False
        self.users = users
        return self.steerable

    def spawn_rate_moved(self, spawn_rate: float) -> bool:
        """Say whether the controller must be told ``set_spawn_rate(spawn_rate)``."""
        if self.spawn_rate is not None and math.isclose(spawn_rate, self.spawn_rate):
            return False
        self.spawn_rate = spawn_rate
        return self.steerable

    def frame(
        self, state: str, target_users: int, spawn_rate: float
    ) -> tuple[int | None, float | None]:
        """Take a frame's state and targets; return the (users, rate) to show, None to keep."""
        seen = self._seen
        self._seen = (state, target_users, spawn_rate)
        if seen is None or seen[0] != state:
            self.steerable = state in STEERABLE
        fresh = seen is None or (seen[0] not in STEERABLE and state in STEERABLE)
        users = rate = None
        if (
            target_users >= 1
            and target_users != self.users
            and (seen is None or fresh or seen[1] != target_users)
        ):
            users = self.users = target_users
        if (
            spawn_rate > 0
            and (self.spawn_rate is None or not math.isclose(spawn_rate, self.spawn_rate))
            and (seen is None or fresh or not math.isclose(seen[2], spawn_rate))
        ):
            rate = self.spawn_rate = spawn_rate
        return users, rate


def endpoint_rows(
    stats: pd.DataFrame, current_rps: Mapping[tuple[str, str], float]
) -> list[EndpointRow]:
    """Join ``swarm.stats`` (cumulative) with the current rate of each endpoint."""
    out = []
    for row in stats.to_dict("records"):
        method, name = str(row["method"]), str(row["name"])
        if name == AGGREGATED and not method:
            rps = sum(current_rps.values())
        else:
            rps = current_rps.get((method, name), 0.0)
        out.append(
            EndpointRow(
                method,
                name,
                int(row["requests"]),
                int(row["failures"]),
                rps,
                *(float(row[c]) for c in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
            )
        )
    return out


def html_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], marked: Iterable[bool] = ()
) -> str:
    """Return an HTML table: numbers right-aligned, NaN as "–", marked rows highlighted."""
    rows = [list(row) for row in rows]
    marks = list(marked)
    numeric = [_is_number(v) for v in rows[0]] if rows else [False] * len(headers)
    head = "".join(
        f'<th style="text-align:{"right" if n else "left"}">{html.escape(h)}</th>'
        for h, n in zip(headers, numeric, strict=True)
    )
    lines = []
    for i, row in enumerate(rows):
        flag = (
            ' class="nbs-overloaded" style="background:#fff3cd"'
            if i < len(marks) and marks[i]
            else ""
        )
        lines.append(f"<tr{flag}>{''.join(_cell(v) for v in row)}</tr>")
    return f'{_TABLE_STYLE}<table class="nbs-table"><tr>{head}</tr>{"".join(lines)}</table>'


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if not _is_number(value):
        return f'<td style="text-align:left">{html.escape(str(value))}</td>'
    if isinstance(value, float):
        text = "–" if math.isnan(value) else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return f'<td style="text-align:right">{text}</td>'


def _worker_row(row: protocol.WorkerRow) -> WorkerRow:
    return WorkerRow(
        row.id,
        row.host,
        row.state,
        row.users,
        row.cpu_percent,
        row.loop_lag * 1000.0,
        row.rps,
        row.overloaded,
    )


def _or_none(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number
