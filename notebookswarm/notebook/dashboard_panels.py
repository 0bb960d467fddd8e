"""What the dashboard's failure, exception and server panels show, without any widget.

- :func:`failures_html` and :func:`exceptions_html` draw the top rows of a
  :class:`~notebookswarm.notebook.failures.FailureLog` (the model keeps one, fed by every
  update frame) as Locust's Failures and Exceptions tabs list them;
- :func:`traceback_choices` lists the exceptions for the traceback picker, oldest first, so
  the list only grows while a run goes on and a picked entry stays where it was;
- :class:`ServerSeries` keeps the watched server metrics of the charts' window, fed the
  watcher's new rows at each redraw, one series per (source, metric, labels, kind).

``notebookswarm.notebook.dashboard`` and ``dashboard_server`` draw these with ipywidgets
and plotly; nothing here imports either.
"""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import Final

import pandas as pd

from notebookswarm.notebook.dashboard_model import html_table
from notebookswarm.notebook.watch import ServerRow

#: Rows each live table shows: the most frequent first.
TOP: Final = 10
FAILURE_HEADERS: Final = ("method", "name", "error", "count", "last seen")
EXCEPTION_HEADERS: Final = ("exception", "count", "last seen")
#: The traceback picker's first entry: no traceback shown.
NO_TRACEBACK: Final = ""
_KIND_SUFFIX: Final = {"rate": " /s", "mean": " (mean)"}


def _clock(seen: pd.Timestamp) -> str:
    # Local wall-clock time, as the charts' time axis shows it.
    return datetime.fromtimestamp(seen.timestamp()).strftime("%H:%M:%S")


def _titled(title: str, table: str, count: int, shown: int) -> str:
    more = f" (top {shown} of {count})" if count > shown else ""
    return f'<div class="nbs-panel-title"><b>{html.escape(title)}</b>{more}</div>{table}'


def failures_html(failures: pd.DataFrame, top: int = TOP) -> str:
    """Return the failures table (method, name, error, count, last seen), or "" if none."""
    if failures.empty:
        return ""
    rows = [
        (r["method"], r["name"], r["error"], int(r["count"]), _clock(r["last_seen"]))
        for r in failures.head(top).to_dict("records")
    ]
    return _titled("Failures", html_table(FAILURE_HEADERS, rows), len(failures), len(rows))


def exceptions_html(exceptions: pd.DataFrame, top: int = TOP) -> str:
    """Return the exceptions table (message, count, last seen), or "" if none."""
    if exceptions.empty:
        return ""
    rows = [
        (r["error"], int(r["count"]), _clock(r["last_seen"]))
        for r in exceptions.head(top).to_dict("records")
    ]
    return _titled(
        "Exceptions in user code", html_table(EXCEPTION_HEADERS, rows), len(exceptions), len(rows)
    )


def traceback_choices(exceptions: pd.DataFrame, width: int = 90) -> list[tuple[str, str]]:
    """Return the picker's ``(label, message)`` entries: none first, then oldest first."""
    choices = [("traceback of… (pick an exception)", NO_TRACEBACK)]
    for message in exceptions.sort_values("first_seen", kind="stable")["error"]:
        text = str(message)
        choices.append((text if len(text) <= width else text[: width - 1] + "…", text))
    return choices


def traceback_html(exceptions: pd.DataFrame, message: str) -> str:
    """Return the latest traceback of the exception ``message`` as a block, or ""."""
    if message == NO_TRACEBACK:
        return ""
    found = exceptions[exceptions["error"] == message]
    if found.empty:
        return ""
    text = str(found["traceback"].iloc[0]) or message
    return (
        '<pre class="nbs-traceback" style="max-height:24em;overflow:auto;font-size:85%;'
        f'background:#f6f6f6;padding:6px">{html.escape(text)}</pre>'
    )


def series_label(row: ServerRow) -> str:
    """Name a watched series the way the picker lists it: ``source: metric{labels} /s``."""
    labels = f"{{{row.labels}}}" if row.labels else ""
    return f"{row.source}: {row.metric}{labels}{_KIND_SUFFIX.get(row.kind, '')}"


class ServerSeries:
    """The watched server metrics of the last ``window`` seconds, series by series."""

    def __init__(self, window: float = 900.0) -> None:
        self.window = window
        self.seen = 0  # rows taken so far: the next ``Watcher.rows(since=...)``
        self._series: dict[str, deque[tuple[float, float]]] = {}

    def feed(self, rows: Iterable[ServerRow]) -> None:
        """Take the watcher's rows since the last call (they come in tick order per source)."""
        latest = -float("inf")
        for row in rows:
            self.seen += 1
            points = self._series.setdefault(series_label(row), deque())
            points.append((row.time, row.value))
            latest = max(latest, row.time)
        for points in self._series.values():
            while points and points[0][0] < latest - self.window:
                points.popleft()

    @property
    def names(self) -> list[str]:
        """Every series seen, sorted, for the picker."""
        return sorted(self._series)

    def points(self, name: str) -> tuple[list[float], list[float]]:
        """Return the times (seconds since the epoch) and values of one series."""
        points = self._series.get(name, ())
        return [t for t, _ in points], [v for _, v in points]
