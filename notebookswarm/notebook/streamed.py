"""Arrow rows of a run for its store, and histograms merged back from them, vectorised.

A history row on disk is the in-memory row (time, endpoint code, the typed columns); a
histogram row is one endpoint of one update: its counters (enough to rebuild the
statistics after a crash) and its latency buckets as two list columns. ``corrected`` rows
hold the latencies from the intended start, where they differ (arrival-rate mode).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from notebookswarm.notebook.slots import Packed
from notebookswarm.stats.histogram import Histogram
from notebookswarm.stats.requests import EndpointStats

INT_COLUMNS = ("requests", "failures", "users", "arrivals", "late", "dropped")
FLOAT_COLUMNS = ("rps", "p50_ms", "p95_ms", "p99_ms", "p99_corrected_ms", "max_ms", "mean_ms")
COUNTERS = ("requests", "failures", "total_ns", "bytes", "n", "min", "max")


class HistRow(NamedTuple):
    """One endpoint's histogram (and counters) in one update, on its way to disk."""

    code: int
    corrected: bool
    buckets: array[int]
    counts: array[int]
    counters: tuple[int, int, int, int, int, int, int]  # as COUNTERS


def history_batch(
    time: array[float],
    endpoint: array[int],
    ints: Mapping[str, array[int]],
    floats: Mapping[str, array[float]],
    begin: int,
) -> pa.RecordBatch:
    """The history rows from index ``begin`` on, as one record batch."""
    columns: dict[str, Any] = {
        "time": np.frombuffer(time, dtype=np.float64)[begin:],
        "endpoint": np.frombuffer(endpoint, dtype=np.int32)[begin:],
    }
    for name in INT_COLUMNS:
        columns[name] = np.frombuffer(ints[name], dtype=np.int64)[begin:]
    for name in FLOAT_COLUMNS:
        columns[name] = np.frombuffer(floats[name], dtype=np.float64)[begin:]
    return pa.record_batch({k: pa.array(v) for k, v in columns.items()})


def histogram_batch(start: float, end: float, rows: Sequence[HistRow]) -> pa.RecordBatch:
    """One update's histogram rows as one record batch."""
    lengths = np.fromiter((len(r.buckets) for r in rows), dtype=np.int32, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    buckets = np.frombuffer(b"".join(r.buckets.tobytes() for r in rows), dtype=np.uint32)
    counts = np.frombuffer(b"".join(r.counts.tobytes() for r in rows), dtype=np.uint64)
    counters = np.array([r.counters for r in rows], dtype=np.int64).reshape(len(rows), 7)
    columns: dict[str, Any] = {
        "start": pa.array(np.full(len(rows), start)),
        "end": pa.array(np.full(len(rows), end)),
        "code": pa.array(np.fromiter((r.code for r in rows), dtype=np.int32, count=len(rows))),
        "corrected": pa.array([r.corrected for r in rows], type=pa.bool_()),
        **{name: pa.array(counters[:, i]) for i, name in enumerate(COUNTERS)},
        "buckets": pa.ListArray.from_arrays(pa.array(offsets), pa.array(buckets)),
        "counts": pa.ListArray.from_arrays(pa.array(offsets), pa.array(counts)),
    }
    return pa.record_batch(columns)


def history_columns(table: pa.Table) -> dict[str, np.ndarray[Any, Any]]:
    """The columns of history rows read back, as numpy arrays."""
    names = ("time", "endpoint", *INT_COLUMNS, *FLOAT_COLUMNS)
    return {name: table[name].to_numpy() for name in names}


def choose(table: pa.Table, corrected: bool) -> pa.Table:
    """Keep one row per update and endpoint: the plain one, or the corrected where it exists."""
    flags = table["corrected"]
    if not corrected:
        return table.filter(pc.invert(flags))
    frame = pd.DataFrame({"end": table["end"].to_numpy(), "code": table["code"].to_numpy()})
    frame["corrected"] = flags.to_numpy(zero_copy_only=False)
    has_twin = frame.groupby(["end", "code"])["corrected"].transform("any").to_numpy()
    keep = frame["corrected"].to_numpy() | ~has_twin
    return table.filter(pa.array(keep))


def merge_rows(table: pa.Table) -> dict[int, Histogram]:
    """Merge histogram rows per endpoint code, exactly (bucket counts add up)."""
    if table.num_rows == 0:
        return {}
    codes = table["code"].to_numpy()
    lengths = pc.list_value_length(table["buckets"]).to_numpy(zero_copy_only=False)
    flat = pd.DataFrame(
        {
            "code": np.repeat(codes, lengths),
            "bucket": pc.list_flatten(table["buckets"]).to_numpy(),
            "count": pc.list_flatten(table["counts"]).to_numpy().astype(np.int64),
        }
    )
    sums = flat.groupby(["code", "bucket"], sort=True)["count"].sum()
    heads = pd.DataFrame({name: table[name].to_numpy() for name in ("code", "n", "min", "max")})
    seen = (
        heads[heads["n"] > 0]
        .groupby("code")
        .agg(n=("n", "sum"), lo=("min", "min"), hi=("max", "max"))
    )
    heads_of = {
        int(code): (int(n), int(lo), int(hi))
        for code, n, lo, hi in zip(
            seen.index.tolist(),
            seen["n"].tolist(),
            seen["lo"].tolist(),
            seen["hi"].tolist(),
            strict=True,
        )
    }
    out: dict[int, Histogram] = {}
    codes_of = sums.index.get_level_values(0).to_numpy()
    buckets_of = sums.index.get_level_values(1).to_numpy()
    counts_of = sums.to_numpy()
    bounds = np.flatnonzero(np.diff(codes_of)) + 1
    for lo_i, hi_i in zip([0, *bounds.tolist()], [*bounds.tolist(), len(codes_of)], strict=True):
        code = int(codes_of[lo_i])
        hist = Histogram()
        hist.buckets = dict(
            zip(buckets_of[lo_i:hi_i].tolist(), counts_of[lo_i:hi_i].tolist(), strict=True)
        )
        hist.count, hist.min, hist.max = heads_of.get(code, (0, 0, 0))
        out[code] = hist
    return out


def counter_sums(table: pa.Table) -> dict[int, tuple[int, int, int, int]]:
    """Requests, failures, total ns and bytes per endpoint code over plain rows."""
    plain = table.filter(pc.invert(table["corrected"]))
    frame = pd.DataFrame(
        {n: plain[n].to_numpy() for n in ("code", "requests", "failures", "total_ns", "bytes")}
    )
    sums = frame.groupby("code").sum()
    values = sums[["requests", "failures", "total_ns", "bytes"]].to_numpy().tolist()
    return {
        int(code): (int(r), int(f), int(t), int(b))
        for code, (r, f, t, b) in zip(sums.index.tolist(), values, strict=True)
    }


def by_minute(table: pa.Table) -> Iterable[tuple[float, float, pa.Table]]:
    """Split histogram rows into minutes of their updates' ends: (start, end, rows)."""
    minutes = np.floor(table["end"].to_numpy() / 60.0)
    for minute in np.unique(minutes):
        part = table.filter(pa.array(minutes == minute))
        yield float(pc.min(part["start"]).as_py()), float(pc.max(part["end"]).as_py()), part


def hist_row(code: int, corrected: bool, packed: Packed, stats: EndpointStats | None) -> HistRow:
    """One endpoint's histogram row of an update; ``stats`` None for a corrected one."""
    counters = (
        (0, 0, 0, 0)
        if stats is None
        else (stats.requests, stats.failures, stats.total_ns, stats.bytes)
    )
    return HistRow(
        code,
        corrected,
        packed.buckets,
        packed.counts,
        (*counters, packed.count, packed.min, packed.max),
    )


def write_event(
    store: Any,
    end: float,
    stats: Mapping[str, Any],
    lost: list[dict[str, Any]],
    failures: list[dict[str, Any]],
) -> None:
    """Append an update's errors, exceptions, arrivals, lost intervals and failures, if any."""
    event: dict[str, Any] = {"end": end}
    for key in ("err", "exc", "arr"):
        if stats.get(key):
            event[key] = stats[key]
    if lost:
        event["lost"] = lost
    if failures:
        event["failures"] = failures
    if len(event) > 1:
        store.add_event(event)
