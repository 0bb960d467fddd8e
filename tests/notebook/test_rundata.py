"""RunData: update payloads in, documented DataFrames out, exact window percentiles, bounded
memory. Pure: synthetic payloads, no sockets, no processes."""

from __future__ import annotations

import gc
import math
import random
import tracemalloc
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.frames import STATS_COLUMNS, stats_frame
from notebookswarm.notebook.rundata import HISTORY_COLUMNS, WORKER_COLUMNS, RunData
from notebookswarm.stats.requests import RequestStats

from updates import as_update

T0 = 60 * 28_333_334  # a whole minute, in November 2023
Key = tuple[str, str]
Latencies = dict[Key, list[int]]

STATS_DTYPES = {
    **dict.fromkeys(STATS_COLUMNS, "float64"),
    "method": "string",
    "name": "string",
    "requests": "int64",
    "failures": "int64",
    "bytes": "int64",
}
HISTORY_DTYPES = {
    **dict.fromkeys(HISTORY_COLUMNS, "float64"),
    "time": "datetime64[ns, UTC]",
    "method": "string",
    "name": "string",
    "requests": "int64",
    "failures": "int64",
    "users": "int64",
    "arrivals": "int64",
    "late": "int64",
    "dropped": "int64",
}
WORKER_DTYPES = {
    "id": "string",
    "host": "string",
    "pid": "int64",
    "cores": "int64",
    "state": "string",
    "users": "int64",
    "cpu_percent": "float64",
    "loop_lag_ms": "float64",
    "rps": "float64",
    "last_seen": "datetime64[ns, UTC]",
    "overloaded": "bool",
    "error": "string",
}
ERRORS_DTYPES = {"method": "string", "name": "string", "error": "string", "count": "int64"}
EXCEPTIONS_DTYPES = {"error": "string", "count": "int64", "traceback": "string"}


def dtypes_of(frame: pd.DataFrame) -> dict[str, str]:
    return {column: str(dtype) for column, dtype in frame.dtypes.items()}


def payload(
    start: float,
    end: float,
    stats: RequestStats,
    users: int = 10,
    state: str = "running",
    workers: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """An update payload shaped like the master's."""
    return {
        "start": start,
        "end": end,
        "state": state,
        "users": users,
        "target_users": users,
        "spawn_rate": 5.0,
        "stats": stats.to_wire(),
        "workers": list(workers),
        "lost": [],
        "failures": [],
        "dropped": 0,
    }


def record(stats: RequestStats, latencies: Latencies, key: Key, ns: int, error: str | None) -> None:
    stats.record_request(key[0], key[1], ns, 100, error)
    latencies.setdefault(key, []).append(ns)


def random_update(
    rng: random.Random, keys: Sequence[Key], per_key: int
) -> tuple[RequestStats, Latencies]:
    """A delta with up to ``per_key`` requests per endpoint, latencies 0.1 ms to ~10 s."""
    stats, latencies = RequestStats(), {}
    for key in keys:
        for _ in range(rng.randint(0, per_key)):
            ns = int(rng.lognormvariate(math.log(20e6), 1.5)) + 100_000
            record(stats, latencies, key, ns, "HTTP 500" if rng.random() < 0.1 else None)
    return stats, latencies


def exact(values: Sequence[int], q: float) -> float:
    """The nearest-rank ``q`` quantile, in milliseconds."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1] / 1e6


KEYS: list[Key] = [("GET", "/a"), ("POST", "/a"), ("GET", "/b")]


@pytest.fixture(scope="module")
def timeline() -> list[tuple[dict[str, Any], Latencies]]:
    """40 one-second updates over three endpoints (two share a name), with raw latencies."""
    rng = random.Random(7)
    out = []
    for i in range(40):
        stats, latencies = random_update(rng, KEYS, 60)
        out.append((payload(T0 + i, T0 + i + 1, stats, users=i), latencies))
    return out


def fed(updates: Sequence[tuple[dict[str, Any], Latencies]], **kwargs: Any) -> RunData:
    data = RunData(**kwargs)
    for p, _ in updates:
        data.ingest(as_update(p))
    return data


def test_empty_rundata_has_the_documented_columns_and_dtypes() -> None:
    """A RunData that saw no update answers with empty frames of the documented shape."""
    data = RunData()
    stats = data.stats()
    assert list(stats.columns) == STATS_COLUMNS
    assert dtypes_of(stats) == STATS_DTYPES
    assert stats["name"].tolist() == ["Aggregated"]
    assert stats["requests"].tolist() == [0]
    history = data.history()
    assert list(history.columns) == HISTORY_COLUMNS
    assert dtypes_of(history) == HISTORY_DTYPES
    assert len(history) == 0
    workers = data.workers()
    assert list(workers.columns) == WORKER_COLUMNS
    assert dtypes_of(workers) == WORKER_DTYPES
    assert len(workers) == 0
    assert dtypes_of(data.errors()) == ERRORS_DTYPES
    assert dtypes_of(data.exceptions()) == EXCEPTIONS_DTYPES
    pct = data.percentiles([0.5, 0.99], by=None)
    assert list(pct.columns) == ["requests", "p50_ms", "p99_ms"]
    assert len(pct) == 0
    assert data.duration() == 0.0


def test_stats_equal_the_merge_of_every_delta(timeline: list[Any]) -> None:
    """stats() is the exact merge of every ingested delta, with stable dtypes."""
    data = fed(timeline)
    merged = RequestStats()
    for p, _ in timeline:
        merged.merge(RequestStats.from_wire(p["stats"]))
    stats = data.stats()
    assert dtypes_of(stats) == STATS_DTYPES
    pd.testing.assert_frame_equal(stats, stats_frame(merged, 40.0))
    rows = stats.set_index(["method", "name"])
    for key in KEYS:
        expected = merged.endpoints[key]
        assert rows.loc[key, "requests"] == expected.requests
        assert rows.loc[key, "failures"] == expected.failures
    total = sum(len(v) for _, lat in timeline for v in lat.values())
    assert rows.loc[("", "Aggregated"), "requests"] == total
    assert data.duration() == 40.0


def test_errors_and_exceptions_are_grouped_with_counts() -> None:
    """Failures are counted per (method, name, error) and user exceptions per site."""
    stats = RequestStats()
    for _ in range(3):
        stats.record_request("GET", "/x", 1_000_000, 0, "HTTP 503")
    stats.record_request("POST", "/y", 1_000_000, 0, "timeout")
    try:
        raise KeyError("token")
    except KeyError as exc:
        stats.record_exception(exc)
    data = RunData()
    data.ingest(as_update(payload(T0, T0 + 1, stats)))
    data.ingest(as_update(payload(T0 + 1, T0 + 2, stats)))
    errors = data.errors()
    assert dtypes_of(errors) == ERRORS_DTYPES
    assert errors.values.tolist() == [["GET", "/x", "HTTP 503", 6], ["POST", "/y", "timeout", 2]]
    exceptions = data.exceptions()
    assert dtypes_of(exceptions) == EXCEPTIONS_DTYPES
    assert exceptions["count"].tolist() == [2]
    assert exceptions["error"].tolist() == ["KeyError: 'token'"]
    assert "raise KeyError" in exceptions["traceback"][0]


def test_history_has_a_row_per_update_and_endpoint_plus_aggregated() -> None:
    """history() has one row per update for each endpoint with requests and one Aggregated
    row per update, stamped with the update's end in UTC, with its requests and users."""
    rng = random.Random(3)
    data = RunData()
    expected: list[tuple[pd.Timestamp, str, str, int, int]] = []
    for i in range(12):
        keys = [("GET", "/a")] if i % 3 else KEYS  # some endpoints skip some updates
        stats, latencies = RequestStats(), {}
        if i != 5:  # an update with no requests at all
            for key in keys:
                for _ in range(rng.randint(1, 20)):
                    record(stats, latencies, key, rng.randint(10**5, 10**9), None)
        end = T0 + i + 1.5
        data.ingest(as_update(payload(T0 + i + 0.5, end, stats, users=100 + i)))
        stamp = pd.Timestamp(end, unit="s", tz="UTC")
        for key, values in latencies.items():
            expected.append((stamp, key[0], key[1], len(values), 100 + i))
        total = sum(len(v) for v in latencies.values())
        expected.append((stamp, "", "Aggregated", total, 100 + i))
    history = data.history()
    assert dtypes_of(history) == HISTORY_DTYPES
    assert str(history["time"].dt.tz) == "UTC"
    got = sorted(
        zip(
            history["time"].dt.round("us"),
            history["method"],
            history["name"],
            history["requests"],
            history["users"],
            strict=True,
        )
    )
    assert got == sorted(expected)
    aggregated = history[history["name"] == "Aggregated"]
    assert len(aggregated) == 12
    assert aggregated["requests"].iloc[5] == 0
    assert math.isnan(aggregated["p50_ms"].iloc[5])
    busy = aggregated.iloc[0]
    assert busy["rps"] == busy["requests"]  # one-second updates


def _utc(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


@pytest.mark.parametrize(
    ("start", "end", "lo", "hi"),
    [
        (T0 + 10, T0 + 20, T0 + 10, T0 + 20),
        (None, T0 + 5, -math.inf, T0 + 5),
        (T0 + 30, None, T0 + 30, math.inf),
        (_utc(T0 + 3), _utc(T0 + 17), T0 + 3, T0 + 17),
        (
            _utc(T0 + 3).tz_localize(None).isoformat(),
            _utc(T0 + 17).tz_localize(None),
            T0 + 3,
            T0 + 17,
        ),
    ],
)
def test_window_percentiles_are_exact_within_one_percent(
    timeline: list[Any], start: Any, end: Any, lo: float, hi: float
) -> None:
    """percentiles() over a window equals the exact nearest-rank percentile of the latencies
    of the updates in it (start < end <= stop) within 1%, by name, by method and name,
    and for everything together; naive times count as UTC."""
    data = fed(timeline)
    chosen = [lat for p, lat in timeline if lo < p["end"] <= hi]
    assert chosen
    qs = [0.5, 0.9, 0.99, 0.999, 1.0]
    labels = ["p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "p100_ms"]

    def check(frame: pd.DataFrame, groups: dict[Any, list[int]]) -> None:
        assert list(frame.columns) == ["requests", *labels]
        assert dtypes_of(frame) == {"requests": "int64", **dict.fromkeys(labels, "float64")}
        assert sorted(frame.index) == sorted(groups)
        for group, values in groups.items():
            row = frame.loc[group]
            assert row["requests"] == len(values)
            for q, label in zip(qs, labels, strict=True):
                assert row[label] == pytest.approx(exact(values, q), rel=0.01), (group, q)

    by_name: dict[Any, list[int]] = {}
    by_key: dict[Any, list[int]] = {}
    everything: list[int] = []
    for lat in chosen:
        for key, values in lat.items():
            by_name.setdefault(key[1], []).extend(values)
            by_key.setdefault(key, []).extend(values)
            everything.extend(values)

    frame = data.percentiles(qs, start, end, by="name")
    assert frame.index.name == "name"
    check(frame, by_name)
    frame = data.percentiles(qs, start, end, by=["method", "name"])
    assert list(frame.index.names) == ["method", "name"]
    check(frame, by_key)
    frame = data.percentiles(qs, start, end, by=None)
    assert len(frame) == 1
    check(frame, {0: everything})


def test_window_with_no_updates_is_empty(timeline: list[Any]) -> None:
    """A window that holds no update gives an empty frame with the same columns."""
    frame = fed(timeline).percentiles([0.5], T0 + 100, T0 + 200)
    assert list(frame.columns) == ["requests", "p50_ms"]
    assert len(frame) == 0


@pytest.mark.parametrize("by", ["url", ["name", "status"], "Name"])
def test_bad_by_is_a_config_error_naming_it(by: Any) -> None:
    """percentiles(by=...) with an unknown column raises ConfigError naming the value."""
    with pytest.raises(ConfigError, match=repr(by).replace("[", r"\[").replace("]", r"\]")):
        RunData().percentiles(by=by)


@pytest.mark.parametrize("q", [0.0, -0.5, 1.5, 99])
def test_bad_quantile_is_a_config_error_naming_it(timeline: list[Any], q: float) -> None:
    """A quantile outside (0, 1] raises ConfigError naming it, with or without data."""
    for data in (RunData(), fed(timeline[:3])):
        with pytest.raises(ConfigError, match=f"quantile {q!r}"):
            data.percentiles([0.5, q])


def test_compaction_merges_old_slots_per_minute_and_keeps_totals() -> None:
    """With fine_seconds=60, slots older than a minute are merged one per minute; stats,
    history and whole-run or whole-minute percentiles are unchanged and exact within 1%."""
    rng = random.Random(11)
    updates = []
    for i in range(600):
        stats, latencies = random_update(rng, KEYS, 8)
        updates.append((payload(T0 + i, T0 + i + 1, stats), latencies))
    compact = fed(updates, fine_seconds=60)
    full = fed(updates, fine_seconds=10**9)
    assert len(full.slots) == 600
    now = T0 + 600
    coarse = [s for s in compact.slots if s.end < now - 60]
    fine = [s for s in compact.slots if s.end >= now - 60]
    assert len(fine) == 61
    assert [math.floor(s.start / 60) for s in coarse] == list(range(T0 // 60, T0 // 60 + 9))
    # Each merged slot spans its minute; the newest one still waits for its last second.
    assert [s.end - s.start for s in coarse] == [60] * 8 + [59]
    assert len(compact.slots) == len(coarse) + len(fine)

    pd.testing.assert_frame_equal(compact.stats(), full.stats())
    pd.testing.assert_frame_equal(compact.history(), full.history())
    qs = [0.5, 0.95, 0.99, 0.999]
    for by in ("name", None, ["method", "name"]):
        whole = compact.percentiles(qs, by=by)
        pd.testing.assert_frame_equal(whole, full.percentiles(qs, by=by))
    everything = [ns for _, lat in updates for values in lat.values() for ns in values]
    whole = compact.percentiles(qs, by=None).iloc[0]
    assert whole["requests"] == len(everything)
    for q, label in zip(qs, ["p50_ms", "p95_ms", "p99_ms", "p99_9_ms"], strict=True):
        assert whole[label] == pytest.approx(exact(everything, q), rel=0.01)
    # A window on minute boundaries inside the merged part is still exact.
    lo, hi = T0 + 120, T0 + 180
    minute = [ns for p, lat in updates if lo < p["end"] <= hi for v in lat.values() for ns in v]
    got = compact.percentiles([0.5, 0.99], lo, hi, by=None).iloc[0]
    assert got["requests"] == len(minute)
    assert got["p50_ms"] == pytest.approx(exact(minute, 0.5), rel=0.01)
    assert got["p99_ms"] == pytest.approx(exact(minute, 0.99), rel=0.01)


def test_an_hour_of_100_endpoints_stays_under_150_mb() -> None:
    """3600 one-second updates of 100 endpoints each keep the RunData (and the peak while
    ingesting) under the documented 150 MB."""
    rng = random.Random(5)
    keys = [("GET", f"/endpoint/{i}") for i in range(100)]
    patterns = []
    for _ in range(20):
        stats = RequestStats()
        for method, name in keys:
            for _ in range(rng.randint(1, 5)):
                ns = int(rng.lognormvariate(math.log(20e6), 1.0))
                stats.record_request(method, name, ns, 512, None)
        patterns.append(payload(0, 0, stats, users=1000))
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        data = RunData()
        for i in range(3600):
            data.ingest(
                as_update({**patterns[i % len(patterns)], "start": T0 + i, "end": T0 + i + 1})
            )
        gc.collect()
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    retained -= baseline
    peak -= baseline
    assert len(data.history()) == 3600 * 101
    assert retained < 150 * 2**20, f"RunData keeps {retained / 2**20:.0f} MB"
    assert peak < 150 * 2**20, f"ingesting peaked at {peak / 2**20:.0f} MB"


def test_workers_frame_has_documented_columns() -> None:
    """workers() has one row per worker of the last update, loop lag in ms, last seen in UTC."""
    rows = [
        {
            "id": f"w{i}",
            "host": "box",
            "pid": 100 + i,
            "cores": 2,
            "state": "running" if i else "lost",
            "users": 5 * i,
            "cpu_percent": 12.5,
            "loop_lag": 0.002,
            "rps": 3.0,
            "last_seen": T0 + 0.25,
            "error": None,
        }
        for i in range(2)
    ]
    data = RunData()
    data.ingest(as_update(payload(T0, T0 + 1, RequestStats(), workers=rows[:1])))
    data.ingest(as_update(payload(T0 + 1, T0 + 2, RequestStats(), workers=rows)))
    frame = data.workers()
    assert list(frame.columns) == WORKER_COLUMNS
    assert dtypes_of(frame) == WORKER_DTYPES
    assert frame["id"].tolist() == ["w0", "w1"]
    assert frame["state"].tolist() == ["lost", "running"]
    assert frame["users"].tolist() == [0, 5]
    assert frame["loop_lag_ms"].tolist() == pytest.approx([2.0, 2.0])
    assert frame["last_seen"][0] == pd.Timestamp(T0 + 0.25, unit="s", tz="UTC")
    assert frame["error"].isna().all()
    assert not frame["overloaded"].any()


def test_snapshot_is_independent_of_later_ingests(timeline: list[Any]) -> None:
    """A snapshot keeps its frames when the original goes on ingesting."""
    data = fed(timeline[:10])
    snap = data.snapshot()
    stats, history = snap.stats(), snap.history()
    pct = snap.percentiles(by=None)
    for p, _ in timeline[10:]:
        data.ingest(as_update(p))
    assert len(data.history()) > len(history)
    pd.testing.assert_frame_equal(snap.stats(), stats)
    pd.testing.assert_frame_equal(snap.history(), history)
    pd.testing.assert_frame_equal(snap.percentiles(by=None), pct)
    assert snap.users == 9
    assert data.users == 39
