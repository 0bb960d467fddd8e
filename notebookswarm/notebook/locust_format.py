"""A run's statistics in Locust 2.x's shapes: its four CSV files and its ``--json`` list.

Scripts and dashboards written for ``locust --csv PREFIX`` read these files unchanged:
``PREFIX_stats.csv``, ``PREFIX_stats_history.csv``, ``PREFIX_failures.csv`` and
``PREFIX_exceptions.csv`` carry Locust's header rows in Locust's column order, with our
extra columns (latency from the intended start, for the open model) after Locust's.

Where the numbers differ from Locust's, ours are the better-defined ones:

- percentiles come from our histograms (within 1%, never above the max), where Locust
  rounds each latency to two significant digits first;
- the files are written once, after a graceful stop, so they hold every request (Locust's
  are its last periodic snapshot);
- a history row's Requests/s and Failures/s cover its own update (about a second), where
  Locust averages the last ten; its percentiles are cumulative, or over the last 10 s
  with ``full_history`` (as Locust's), from the stored histograms (merged per minute
  beyond ten minutes: see ``RunData``).

Everything here is pure over the run's DataFrames and stored histograms.
"""

from __future__ import annotations

import csv
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from notebookswarm.notebook.frames import AGGREGATED
from notebookswarm.notebook.rundata import Slot
from notebookswarm.stats.histogram import Histogram, bucket_value

#: Locust's PERCENTILES_TO_REPORT and how it labels them.
QUANTILES = (0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0)
PERCENTILE_LABELS = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%"]
PERCENTILE_LABELS.append("100%")
STATS_HEADER = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *PERCENTILE_LABELS,
]
#: Ours, after Locust's: percentiles from each request's intended start (the open model).
STATS_EXTRA = ["Corrected 50%", "Corrected 95%", "Corrected 99%", "Corrected 100%"]
_STATS_EXTRA_COLUMNS = ["p50_corrected_ms", "p95_corrected_ms", "p99_corrected_ms"]
_STATS_EXTRA_COLUMNS.append("max_corrected_ms")
HISTORY_HEADER = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *PERCENTILE_LABELS,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
FAILURES_HEADER = ["Method", "Name", "Error", "Occurrences"]
EXCEPTIONS_HEADER = ["Count", "Message", "Traceback", "Nodes"]
WINDOW = 10.0  # seconds of Locust's "current" percentiles
_NS_PER_MS = 1_000_000
Key = tuple[str, str]
_TOTAL: Key = ("", AGGREGATED)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _ms(ns: int) -> int:
    return round(ns / _NS_PER_MS)


def _float(value: Any) -> float:
    number = float(value)
    return 0.0 if math.isnan(number) else round(number, 3)


def merged(slots: Iterable[Slot]) -> dict[Key, Histogram]:
    """Merge stored histograms per ``(method, name)``, plus the Aggregated one."""
    out: dict[Key, Histogram] = {}
    for slot in slots:
        for key, packed in slot.histograms.items():
            hist = packed.unpack()
            out.setdefault(key, Histogram()).merge(hist)
            out.setdefault(_TOTAL, Histogram()).merge(hist)
    return out


def _percentiles(hist: Histogram | None) -> list[Any]:
    if hist is None or hist.count == 0:
        return ["N/A"] * len(QUANTILES)
    return [_ms(v) for v in hist.percentiles(QUANTILES)]


def stats_rows(stats: pd.DataFrame, hists: Mapping[Key, Histogram]) -> list[list[Any]]:
    """Return ``_stats.csv``'s data rows: one per endpoint, then Aggregated."""
    rows = []
    for r in _records(stats):
        key = (str(r["method"]), str(r["name"]))
        n = int(r["requests"])
        hist = hists.get(key)
        per_second = float(r["rps"]) / n if n else 0.0  # 1 / the run's duration
        locust = [
            str(r["method"]),
            str(r["name"]),
            n,
            int(r["failures"]),
            _ms(hist.percentile(0.5)) if hist is not None and n else 0,
            _float(r["mean_ms"]) if n else 0.0,
            _float(r["min_ms"]) if n else 0,
            _float(r["max_ms"]) if n else 0,
            int(r["bytes"]) / n if n else 0,
            _float(r["rps"]),
            round(int(r["failures"]) * per_second, 6),
            *_percentiles(hist if n else None),
        ]
        extra = [round(float(r[c])) if n else "N/A" for c in _STATS_EXTRA_COLUMNS]
        rows.append(locust + extra)
    return rows


def failures_rows(errors: pd.DataFrame) -> list[list[Any]]:
    """Return ``_failures.csv``'s data rows, most frequent first."""
    return [
        [str(e["method"]), str(e["name"]), str(e["error"]), int(e["count"])]
        for e in _records(errors)
    ]


def exceptions_rows(exceptions: pd.DataFrame) -> list[list[Any]]:
    """Return ``_exceptions.csv``'s data rows (we do not track which worker raised)."""
    return [
        [int(e["count"]), str(e["error"]), str(e["traceback"]), ""] for e in _records(exceptions)
    ]


class _Running:
    """Per endpoint: the histograms so far and of the last ``WINDOW`` seconds."""

    def __init__(self, slots: Sequence[Slot]) -> None:
        self._slots = sorted(slots, key=lambda s: s.end)
        self._next = 0
        self.total: dict[Key, Histogram] = {}
        self._recent: deque[Slot] = deque()

    def advance(self, until: float) -> None:
        while self._next < len(self._slots) and self._slots[self._next].end <= until:
            slot = self._slots[self._next]
            self._next += 1
            self._recent.append(slot)
            for key, hist in merged([slot]).items():
                self.total.setdefault(key, Histogram()).merge(hist)
        while self._recent and self._recent[0].end <= until - WINDOW:
            self._recent.popleft()

    def window(self) -> dict[Key, Histogram]:
        return merged(self._recent)


def history_rows(
    history: pd.DataFrame,
    slots: Sequence[Slot],
    average_size: Mapping[Key, float],
    full_history: bool = False,
) -> list[list[Any]]:
    """Return ``_stats_history.csv``'s rows: Aggregated per update (every endpoint too with
    ``full_history``), with running totals as Locust writes them."""
    running = _Running(slots)
    sums: dict[Key, list[float]] = {}  # requests, failures, latency sum (ms), max, bytes
    has_bytes = "bytes" in history.columns
    rows = []
    for time, part in history.groupby("time", sort=True):
        stamp = float(pd.Timestamp(str(time)).timestamp())
        running.advance(stamp)
        window = running.window() if full_history else running.total
        for r in _records(part):
            key = (str(r["method"]), str(r["name"]))
            n, failed = int(r["requests"]), int(r["failures"])
            acc = sums.setdefault(key, [0.0, 0.0, 0.0, 0.0, 0.0])
            acc[0] += n
            acc[1] += failed
            acc[2] += float(r["mean_ms"]) * n if n else 0.0
            acc[3] = max(acc[3], float(r["max_ms"]) if n else 0.0)
            acc[4] += int(r["bytes"]) if has_bytes else 0
            if key != _TOTAL and not full_history:
                continue
            total = running.total.get(key)
            count = int(acc[0])
            size = (acc[4] / count if has_bytes else average_size.get(key, 0)) if count else 0
            rps = float(r["rps"])
            rows.append(
                [
                    int(stamp),
                    int(r["users"]),
                    str(r["method"]),
                    str(r["name"]),
                    f"{rps:2f}",
                    f"{rps * failed / n if n else 0.0:2f}",
                    *_percentiles(window.get(key)),
                    count,
                    int(acc[1]),
                    _ms(total.percentile(0.5)) if total is not None and count else 0,
                    round(acc[2] / count, 3) if count else 0.0,
                    round(total.min / _NS_PER_MS, 3) if total is not None and count else 0,
                    round(acc[3], 3),
                    size,
                ]
            )
    return rows


def write_csv(
    prefix: str | Path,
    stats: pd.DataFrame,
    history: pd.DataFrame,
    errors: pd.DataFrame,
    exceptions: pd.DataFrame,
    slots: Sequence[Slot],
    full_history: bool = False,
) -> list[Path]:
    """Write the four files beside ``prefix`` (its folders are made); return their paths."""
    base = str(prefix)
    Path(base).parent.mkdir(parents=True, exist_ok=True)
    hists = merged(slots)
    sizes = {
        (str(r["method"]), str(r["name"])): int(r["bytes"]) / max(1, int(r["requests"]))
        for r in _records(stats)
    }
    files = {
        "_stats.csv": [STATS_HEADER + STATS_EXTRA, *stats_rows(stats, hists)],
        "_stats_history.csv": [HISTORY_HEADER, *history_rows(history, slots, sizes, full_history)],
        "_failures.csv": [FAILURES_HEADER, *failures_rows(errors)],
        "_exceptions.csv": [EXCEPTIONS_HEADER, *exceptions_rows(exceptions)],
    }
    written = []
    for suffix, rows in files.items():
        path = Path(base + suffix)
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
        written.append(path)
    return written


def _locust_rounded(ms: float) -> int:
    """Round a latency as Locust keys its ``response_times`` (two significant digits)."""
    digits = 0 if ms < 100 else -1 if ms < 1000 else -2 if ms < 10000 else -3
    return int(round(ms, digits))


def to_json(
    stats: pd.DataFrame, history: pd.DataFrame, slots: Sequence[Slot], start: float | None
) -> list[dict[str, Any]]:
    """Return what ``locust --json`` prints: one dict per endpoint that saw requests."""
    hists = merged(slots)
    per_second: dict[Key, tuple[dict[int, int], dict[int, int], float | None]] = {}
    for r in _records(history):
        if int(r["requests"]) == 0:
            continue
        key = (str(r["method"]), str(r["name"]))
        second = pd.Timestamp(r["time"]).timestamp()
        reqs, fails, _ = per_second.setdefault(key, ({}, {}, None))
        reqs[int(second)] = reqs.get(int(second), 0) + int(r["requests"])
        if int(r["failures"]):
            fails[int(second)] = fails.get(int(second), 0) + int(r["failures"])
        per_second[key] = (reqs, fails, second)
    out = []
    for r in _records(stats):
        key = (str(r["method"]), str(r["name"]))
        n = int(r["requests"])
        if key == _TOTAL or (n == 0 and int(r["failures"]) == 0):
            continue
        reqs, fails, last = per_second.get(key, ({}, {}, None))
        times: dict[int, int] = {}
        hist = hists.get(key)
        for bucket, count in hist.buckets.items() if hist is not None else ():
            rounded = _locust_rounded(bucket_value(bucket) / _NS_PER_MS)
            times[rounded] = times.get(rounded, 0) + count
        out.append(
            {
                "name": str(r["name"]),
                "method": str(r["method"]),
                "last_request_timestamp": last,
                "start_time": start,
                "num_requests": n,
                "num_none_requests": 0,
                "num_failures": int(r["failures"]),
                "total_response_time": round(float(r["mean_ms"]) * n, 3) if n else 0,
                "max_response_time": _float(r["max_ms"]) if n else 0,
                "min_response_time": _float(r["min_ms"]) if n else None,
                "total_content_length": int(r["bytes"]),
                "response_times": dict(sorted(times.items())),
                "num_reqs_per_sec": reqs,
                "num_fail_per_sec": fails,
            }
        )
    return out
