"""Read a streamed run folder back into a ``RunData``: finalised, or left by a crash.

The totals come from the last checkpoint (written at each full minute, or the final one
``run.save()`` writes) plus the updates on disk after it; errors, exceptions and lost
intervals from ``events.jsonl``; the histograms behind ``percentiles`` are merged per
minute file (and per hour beyond the last hour), and ``history`` reads the rows from disk
when asked. A crash loses at most the update being written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from notebookswarm.cluster import protocol
from notebookswarm.notebook import streamed
from notebookswarm.notebook.rundata import RunData
from notebookswarm.notebook.slots import Packed, Slot, absorb, take_older
from notebookswarm.notebook.store import RunStore
from notebookswarm.stats.requests import EndpointStats, RequestStats


def load_streamed(folder: str | Path) -> tuple[RunData, dict[str, Any]]:
    """Return the run data of a streamed folder and its ``meta.json``."""
    store = RunStore(folder)
    meta = store.meta()
    data = RunData()
    data.store = store  # read only: no runs_dir, so nothing is written
    data.complete = bool(meta.get("complete"))
    data._endpoints = store.endpoints()
    data._codes = {key: code for code, key in enumerate(data._endpoints)}
    span = meta.get("span") or [None, None]
    hi = float(span[1]) if data.complete and span[1] is not None else math.inf
    state = store.read_checkpoint("final.msgpack") if data.complete else None
    state = state or store.read_checkpoint()
    until = _restore_state(data, state)
    after = store.read("histograms", until, hi)
    if after is not None:
        data.total.merge(_stats_of(after, data))
    _replay_events(data, store.events(), until, hi)
    _rebuild_slots(data, store, hi)
    data._cut = data.last if data.last is not None else math.inf  # all rows are on disk
    return data, meta


def _restore_state(data: RunData, state: dict[str, Any] | None) -> float:
    """Take the checkpoint's totals and state; return the end it was taken at."""
    if state is None:
        return -math.inf
    data.total = RequestStats.from_wire(state["total"])
    data.state = str(state["state"])
    data.users, data.target_users = int(state["users"]), int(state["target_users"])
    data.spawn_rate, data.dropped = float(state["spawn_rate"]), int(state["dropped"])
    data.updates = int(state["updates"])
    data.worker_rows = [protocol.WorkerRow(**row) for row in state["workers"]]
    data.first = state["first"]
    until = state["until"]
    return -math.inf if until is None else float(until)


def _stats_of(table: pa.Table, data: RunData) -> RequestStats:
    """The statistics of the update rows in ``table`` (counters and histograms)."""
    out = RequestStats()
    plain = streamed.merge_rows(streamed.choose(table, corrected=False))
    has_corrected = set(table.filter(table["corrected"])["code"].to_pylist())
    late = streamed.merge_rows(streamed.choose(table, corrected=True)) if has_corrected else {}
    for code, (requests, failures, total_ns, nbytes) in streamed.counter_sums(table).items():
        stats = EndpointStats(requests, failures, total_ns, nbytes)
        if code in plain:
            stats.latency = plain[code]
        if code in has_corrected:
            stats.corrected = late[code]
        out.endpoints[data._endpoints[code]] = stats
    return out


def _replay_events(data: RunData, events: list[dict[str, Any]], until: float, hi: float) -> None:
    for event in events:
        end = float(event["end"])
        if end > hi:
            break
        data.lost += event.get("lost", [])
        data.failures += event.get("failures", [])
        if end > until:
            wire = {"e": [], "err": event.get("err", []), "exc": event.get("exc", [])}
            if event.get("arr"):
                wire["arr"] = event["arr"]
            data.total.merge(RequestStats.from_wire(wire))


def _rebuild_slots(data: RunData, store: RunStore, hi: float) -> None:
    """Merge the histograms per minute file; minutes older than an hour per hour."""
    minutes = store.minutes("histograms")
    for i in range(0, len(minutes), 60):  # an hour's files at a time bounds the memory
        table = store.read_minutes("histograms", minutes[i], minutes[i : i + 60][-1])
        if table is not None and hi < math.inf:
            table = table.filter(pc.less_equal(table["end"], hi))
        if table is None or not table.num_rows:
            continue
        for start, end, part in streamed.by_minute(table):
            data._minutes.append(_slot(data, start, end, part))
    if data._minutes:
        first, last = data._minutes[0].start, data._minutes[-1].end
        data.first = first if data.first is None else min(first, float(data.first))
        data.last = last
        absorb(data._hours, take_older(data._minutes, last - data.minute_seconds), 3600.0)


def _slot(data: RunData, start: float, end: float, rows: pa.Table) -> Slot:
    slot = Slot(start, end)
    for code, hist in streamed.merge_rows(streamed.choose(rows, corrected=False)).items():
        slot.histograms[data._endpoints[code]] = Packed.pack(hist)
    late = rows.filter(rows["corrected"])
    if late.num_rows:
        codes = set(late["code"].to_pylist())
        merged = streamed.merge_rows(streamed.choose(rows, corrected=True))
        for code in codes:
            slot.corrected[data._endpoints[code]] = Packed.pack(merged[code])
    return slot
