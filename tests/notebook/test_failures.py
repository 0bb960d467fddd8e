"""The live failure and exception tables: counts, first and last seen, order, bounds."""

from __future__ import annotations

import pandas as pd

from notebookswarm.notebook.failures import OVERFLOW, FailureLog
from notebookswarm.stats.requests import RequestStats


def delta(*failures: tuple[str, str, str], exception: str | None = None) -> RequestStats:
    """One update's stats holding the given failures (one request each) and an exception."""
    stats = RequestStats()
    for method, name, error in failures:
        stats.record_request(method, name, 1_000_000, 0, error)
    if exception is not None:
        try:
            raise ValueError(exception)
        except ValueError as exc:
            stats.record_exception(exc)
    return stats


def stamp(seconds: float) -> pd.Timestamp:
    """Seconds since the epoch as the frames show them."""
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def test_failures_count_and_remember_when_they_were_seen() -> None:
    """Each failure counts across updates with the first and last update it appeared in;
    the most frequent comes first and `limit` keeps the top rows."""
    log = FailureLog()
    log.add(delta(("GET", "/a", "HTTP 500"), ("GET", "/a", "HTTP 500")), 10.0)
    log.add(delta(("POST", "/b", "timeout")), 11.0)
    log.add(delta(("GET", "/a", "HTTP 500")), 12.0)
    table = log.failures()
    assert table[["method", "name", "error", "count"]].values.tolist() == [
        ["GET", "/a", "HTTP 500", 3],
        ["POST", "/b", "timeout", 1],
    ]
    assert table["first_seen"].tolist() == [stamp(10.0), stamp(11.0)]
    assert table["last_seen"].tolist() == [stamp(12.0), stamp(11.0)]
    assert len(log.failures(limit=1)) == 1


def test_exceptions_keep_the_latest_traceback() -> None:
    """An exception site counts every occurrence and shows its latest message and traceback."""
    log = FailureLog()
    for second in (5.0, 6.0):
        log.add(delta(exception=f"bad value at {second:g}"), second)
    row = log.exceptions().iloc[0]
    assert row["count"] == 2
    assert "bad value at 6" in row["error"] and "ValueError" in row["traceback"]
    assert (row["first_seen"], row["last_seen"]) == (stamp(5.0), stamp(6.0))


def test_distinct_failures_beyond_the_bound_share_one_row() -> None:
    """Past `max_kinds` distinct failures, new ones are counted under the overflow row."""
    log = FailureLog(max_kinds=2)
    log.add(delta(*[("GET", f"/{i}", "HTTP 404") for i in range(5)]), 1.0)
    table = log.failures()
    assert len(table) == 3
    assert table.set_index("error").loc[OVERFLOW, "count"] == 3
