"""Failures and exceptions with when each was first and last seen, for live tables.

The cumulative ``errors``/``exceptions`` frames say how often; a live view also needs
*when* — a failure that stopped a minute ago reads differently from one still happening,
as in Locust's Failures and Exceptions tabs. :class:`FailureLog` is fed each update's
delta (``RequestStats``) with the update's time and answers the top rows::

    log.add(delta, end)                     # on the controller's thread, under its lock
    log.failures(limit=20)                  # method, name, error, count, first_seen, last_seen
    log.exceptions(limit=20)                # error, count, first_seen, last_seen, traceback

Memory follows the distinct failures, which workers already bound per interval; past
``max_kinds`` distinct ones, new kinds are counted under one overflow row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeVar

import pandas as pd

from notebookswarm.stats.requests import RequestStats

FAILURE_COLUMNS: Final = ["method", "name", "error", "count", "first_seen", "last_seen"]
EXCEPTION_COLUMNS: Final = ["error", "count", "first_seen", "last_seen", "traceback"]
#: The row under which distinct failures beyond ``max_kinds`` are counted.
OVERFLOW: Final = "(more distinct failures than the live table keeps)"
_K = TypeVar("_K", tuple[str, str, str], str)


@dataclass
class _Seen:
    count: int
    first: float
    last: float
    traceback: str = ""
    error: str = ""


class FailureLog:
    """Failures by ``(method, name, error)`` and exceptions by site, with first/last seen."""

    def __init__(self, max_kinds: int = 1000) -> None:
        self.max_kinds = max_kinds
        self._failures: dict[tuple[str, str, str], _Seen] = {}
        self._exceptions: dict[str, _Seen] = {}

    def add(self, delta: RequestStats, time: float) -> None:
        """Count one update's failures and exceptions as seen at ``time`` (its end)."""
        for key, count in delta.errors.items():
            if key not in self._failures and len(self._failures) >= self.max_kinds:
                key = ("", "", OVERFLOW)
            _bump(self._failures, key, count, time)
        for site, record in delta.exceptions.items():
            if site not in self._exceptions and len(self._exceptions) >= self.max_kinds:
                site = OVERFLOW
            seen = _bump(self._exceptions, site, record.count, time)
            seen.error, seen.traceback = record.error, record.traceback  # the latest example

    def failures(self, limit: int | None = None) -> pd.DataFrame:
        """Return failures most frequent first (ties: most recent first), ``limit`` rows."""
        rows = [(*key, s.count, s.first, s.last) for key, s in self._failures.items()]
        frame = pd.DataFrame(rows, columns=FAILURE_COLUMNS)
        return _finish(frame, limit, {"method": "string", "name": "string", "error": "string"})

    def exceptions(self, limit: int | None = None) -> pd.DataFrame:
        """Return exceptions most frequent first with their latest traceback, ``limit`` rows."""
        rows = [
            (s.error or site, s.count, s.first, s.last, s.traceback)
            for site, s in self._exceptions.items()
        ]
        frame = pd.DataFrame(rows, columns=EXCEPTION_COLUMNS)
        return _finish(frame, limit, {"error": "string", "traceback": "string"})


def _bump(table: dict[_K, _Seen], key: _K, count: int, time: float) -> _Seen:
    seen = table.get(key)
    if seen is None:
        seen = table[key] = _Seen(0, time, time)
    seen.count += count
    seen.last = max(seen.last, time)
    return seen


def _finish(frame: pd.DataFrame, limit: int | None, strings: dict[str, str]) -> pd.DataFrame:
    frame = frame.astype({**strings, "count": "int64"})
    for column in ("first_seen", "last_seen"):
        frame[column] = pd.to_datetime(frame[column].astype("float64"), unit="s", utc=True)
    frame = frame.sort_values(["count", "last_seen"], ascending=False, kind="stable")
    if limit is not None:
        frame = frame.head(limit)
    return frame.reset_index(drop=True)
