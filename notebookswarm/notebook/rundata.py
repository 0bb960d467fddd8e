"""Everything a controller keeps of a run, built from the master's update frames.

:class:`RunData` ingests one update frame at a time (on the controller's background
thread, under the owner's lock) and answers with pandas DataFrames:

- ``stats()``: cumulative, one row per endpoint plus ``Aggregated`` (see ``frames``);
- ``history(start, end)``: tidy, one row per update (about one a second) per endpoint that
  had requests in it, plus an ``Aggregated`` row for every update;
- ``errors()``, ``exceptions()``, ``workers()``;
- ``percentiles(q, start, end, by)``: exact over a window, merged from stored histograms.

Streaming (``runs_dir``): every update is appended to a folder under ``runs_dir`` as it is
ingested (see ``store``), so a crashed controller leaves a readable run. Memory then stays
bounded over a day: history rows and per-update histograms older than ``memory_seconds``
(a minute) are kept on disk only, and the histograms behind ``percentiles`` are merged per
minute beyond that and per hour beyond ``minute_seconds`` (an hour). ``history`` and
``percentiles`` read full resolution back from disk, only for the minutes their window
touches. A 24-hour run of 100 endpoints keeps under 300 MB (docs/performance.md).

Without ``runs_dir`` everything stays in memory: history rows in typed arrays (about 100
bytes per endpoint and second) and histograms merged per minute beyond ``fine_seconds``,
so windows reaching back further are resolved to the minute.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from notebookswarm.cluster import protocol
from notebookswarm.notebook import streamed
from notebookswarm.notebook.columns import (
    FLOAT_COLUMNS,
    HISTORY_COLUMNS,
    WORKER_COLUMNS,
    Columns,
    workers_frame,
)
from notebookswarm.notebook.frames import (
    AGGREGATED,
    errors_frame,
    exceptions_frame,
    stats_frame,
)
from notebookswarm.notebook.slots import Key, Packed, Slot, absorb, take_older
from notebookswarm.notebook.store import RunStore, release_heap
from notebookswarm.notebook.windows import percentiles_frame, to_seconds
from notebookswarm.stats.histogram import Histogram
from notebookswarm.stats.requests import RequestStats

__all__ = ["HISTORY_COLUMNS", "WORKER_COLUMNS", "Packed", "RunData", "Slot"]

_NS_PER_MS = 1_000_000
#: The history's typed columns; the table is time, method, name and these, in this order.
#: History rows leave memory in steps of at least this many seconds (one memmove a minute).
_TRIM_STEP = 60.0


class RunData:
    """The data of one run, fed with update frames, read as DataFrames.

    ``runs_dir``: stream the run into a new folder under it (created at the first update
    with requests; ``self.store.folder`` then names it); None keeps it in memory only.
    """

    def __init__(
        self,
        fine_seconds: float = 600.0,
        runs_dir: str | Path | None = None,
        minute_seconds: float = 3600.0,
        memory_seconds: float = 60.0,
    ) -> None:
        self.fine_seconds = fine_seconds
        self.memory_seconds = memory_seconds
        self.minute_seconds = minute_seconds
        self.runs_dir = runs_dir
        self.store: RunStore | None = None
        self.store_error: str | None = None  # why streaming stopped, if it did
        #: False for a run recovered from a folder that was never finalised (a crash).
        self.complete = True
        self.total = RequestStats()
        self._hours: list[Slot] = []  # only when streaming: the disk keeps the minutes
        self._minutes: list[Slot] = []
        self._fine: list[Slot] = []
        self._columns = Columns()
        self._cut = -math.inf  # history rows stamped at or before this are on disk only
        self._endpoints: list[Key] = []
        self._codes: dict[Key, int] = {}
        self._named = 0  # endpoint codes written to the store
        self.worker_rows: list[protocol.WorkerRow] = []  # as the last update described them
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

    @property
    def slots(self) -> list[Slot]:
        """Every stored slot, oldest first: hours, then minutes, then single updates."""
        return [*self._hours, *self._minutes, *self._fine]

    @slots.setter
    def slots(self, slots: list[Slot]) -> None:
        self._hours, self._minutes, self._fine = [], [], list(slots)

    def fresh(self) -> RunData:
        """Return an empty RunData with the same settings (a new folder when streaming)."""
        return RunData(self.fine_seconds, self.runs_dir, self.minute_seconds, self.memory_seconds)

    def _code(self, key: Key) -> int:
        code = self._codes.get(key)
        if code is None:
            code = self._codes[key] = len(self._endpoints)
            self._endpoints.append(key)
        return code

    def ingest(self, update: protocol.Update) -> None:
        """Add one update frame from the master (decoded and checked by the protocol)."""
        start, end = update.start, update.end
        store = self._writing(update)
        if store is not None and store.minute_ends(end):
            self._guarded(self._checkpoint, store)  # the totals up to the last minute
        delta = RequestStats.from_wire(update.stats)
        self.total.merge(delta)
        self.state = update.state
        self.users = update.users
        self.target_users = update.target_users
        self.spawn_rate = update.spawn_rate
        self.dropped = update.dropped
        self.overloaded = list(update.overloaded)
        self.worker_rows = list(update.workers)
        lost = [dataclasses.asdict(lost) for lost in update.lost]
        failures = [dataclasses.asdict(failure) for failure in update.failures]
        self.lost += lost
        self.failures += failures
        self.updates += 1
        if store is not None:
            self._guarded(streamed.write_event, store, end, update.stats, lost, failures)
        if not update.reports:
            return  # a state change between seconds: no requests to tabulate
        if self.first is None:
            self.first = start
        self.last = end
        # Rates divide by the workers' time the delta covers, not by the gap between
        # updates: the update sent at a graceful stop comes early but holds a full report.
        span = update.span or end - start
        slot = Slot(start, end)
        begin = len(self._columns)
        rows: list[streamed.HistRow] = []
        for key, stats in delta.endpoints.items():
            code = self._code(key)
            self._columns.add(end, code, stats, span, self.users)
            slot.histograms[key] = packed = Packed.pack(stats.latency)
            rows.append(streamed.hist_row(code, False, packed, stats))
            if stats.corrected is not None:
                slot.corrected[key] = packed = Packed.pack(stats.corrected)
                rows.append(streamed.hist_row(code, True, packed, None))
        aggregated = delta.total()
        counts = (delta.arrivals, delta.late, delta.dropped)
        self.arrivals = tuple(a + b for a, b in zip(self.arrivals, counts, strict=True))
        self._columns.add(end, self._code(("", AGGREGATED)), aggregated, span, self.users, counts)
        self.last_rps = aggregated.requests / span if span > 0 else 0.0
        n = aggregated.requests
        self.last_failure_ratio = aggregated.failures / n if n else 0.0
        self._fine.append(slot)
        if store is not None:
            self._guarded(self._append, store, start, end, begin, rows)
        self._compact(end)

    # --- streaming ---------------------------------------------------------------------

    def _writing(self, update: protocol.Update) -> RunStore | None:
        """The store to write this update to, created by the first update worth keeping."""
        if self.runs_dir is None or self.store_error is not None:
            return None
        if self.store is None:
            if not (update.reports or update.lost or update.failures):
                return None
            try:
                self.store = RunStore.create(self.runs_dir, update.start)
            except OSError as exc:
                self._stop_streaming(exc)
                return None
        return self.store

    def _guarded(self, write: Any, *args: Any) -> None:
        try:
            write(*args)
        except OSError as exc:  # a full disk costs the stream, never the run in memory
            self._stop_streaming(exc)

    def _stop_streaming(self, exc: OSError) -> None:
        where = self.store.folder if self.store is not None else self.runs_dir
        self.store_error = f"streaming the run to {where} stopped: {exc}"
        print(f"notebookswarm: {self.store_error}; the run stays in memory", file=sys.stderr)

    def _append(
        self, store: RunStore, start: float, end: float, begin: int, rows: list[Any]
    ) -> None:
        named = self._endpoints[self._named :]
        if named:
            store.add_endpoints((self._named + i, m, n) for i, (m, n) in enumerate(named))
            self._named = len(self._endpoints)
        batches = {"history": self._columns.batch(begin)}
        if rows:
            batches["histograms"] = streamed.histogram_batch(start, end, rows)
        store.append(end, batches)

    def _checkpoint(self, store: RunStore, name: str = "checkpoint.msgpack") -> None:
        store.checkpoint(self.state_for_disk(), name)

    def state_for_disk(self) -> dict[str, Any]:
        """What a reader needs beside the rows: the totals and the last known state."""
        return {
            "until": self.last,
            "first": self.first,
            "total": self.total.to_wire(),
            "state": self.state,
            "users": self.users,
            "target_users": self.target_users,
            "spawn_rate": self.spawn_rate,
            "dropped": self.dropped,
            "arrivals": list(self.arrivals),
            "updates": self.updates,
            "workers": [dataclasses.asdict(row) for row in self.worker_rows],
        }

    def finalise(self) -> None:
        """Write the final totals beside the streamed rows (what ``run.save()`` does)."""
        if self.store is not None and self.store_error is None:
            self._checkpoint(self.store, "final.msgpack")
            self.store.flush()

    def close(self) -> None:
        """Close the stream's files (each closed minute is rewritten as Parquet)."""
        if self.store is not None and self.store_error is None:
            self._guarded(self.store.close)

    def _compact(self, now: float) -> None:
        """Merge old slots per minute (and per hour when streaming); drop old history rows."""
        streaming = self.store is not None and self.store_error is None
        # The disk keeps every update: memory needs only the last minute at full grain.
        fine = min(self.fine_seconds, self.memory_seconds) if streaming else self.fine_seconds
        absorb(self._minutes, take_older(self._fine, now - fine), 60.0)
        if not streaming:
            return
        absorb(self._hours, take_older(self._minutes, now - self.minute_seconds), 3600.0)
        cut = now - fine
        if cut - self._cut >= _TRIM_STEP:
            self._columns.trim(cut)
            self._cut = cut

    # --- reading -----------------------------------------------------------------------

    def duration(self) -> float:
        """Seconds from the first update's start to the last update's end."""
        if self.first is None or self.last is None:
            return 0.0
        return self.last - self.first

    def stats(self) -> pd.DataFrame:
        """Cumulative per-endpoint stats plus ``Aggregated`` (columns: see ``frames``)."""
        return stats_frame(self.total, self.duration())

    def history(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """One row per update per endpoint with requests, plus ``Aggregated`` every update.

        ``start``/``end`` (as for ``percentiles``) keep the updates that ended in
        ``(start, end]``; rows older than the memory holds are read from disk.
        """
        lo, hi = to_seconds(start, -math.inf), to_seconds(end, math.inf)
        parts = []
        if self.store is not None and lo < self._cut:
            table = self.store.read("history", lo, min(hi, self._cut))
            if table is not None:
                parts.append(streamed.history_columns(table))
            del table
        memory = self._columns.arrays()
        if lo > -math.inf or hi < math.inf:
            keep = (memory["time"] > lo) & (memory["time"] <= hi)
            memory = {k: v[keep] for k, v in memory.items()}
        parts.append(memory)
        columns = {k: np.concatenate([p[k] for p in parts]) for k in memory}
        del parts, memory
        frame = self._history_frame(columns)
        if len(frame) > 50_000:
            del columns
            release_heap()  # the copies above are garbage now; the frame alone stays
        return frame

    def _history_frame(self, c: Mapping[str, np.ndarray[Any, Any]]) -> pd.DataFrame:
        codes = c["endpoint"].astype(np.int64)
        methods = pd.array([m for m, _ in self._endpoints], dtype="string")
        names = pd.array([n for _, n in self._endpoints], dtype="string")
        empty = pd.array([], dtype="string")
        columns: dict[str, Any] = {
            "time": pd.to_datetime(c["time"], unit="s", utc=True).astype("datetime64[ns, UTC]"),
            "method": methods.take(codes) if len(codes) else empty,
            "name": names.take(codes) if len(codes) else empty,
        }
        for name in HISTORY_COLUMNS[3:]:
            kind = "float64" if name in FLOAT_COLUMNS else "int64"
            columns[name] = c[name].astype(kind, copy=False)
        return pd.DataFrame(columns, copy=False)  # no block consolidation: one copy less

    def errors(self) -> pd.DataFrame:
        """Failures grouped by ``(method, name, error)`` with a count."""
        return errors_frame(self.total)

    def exceptions(self) -> pd.DataFrame:
        """Exceptions raised by user code: error, count, traceback."""
        return exceptions_frame(self.total)

    def workers(self) -> pd.DataFrame:
        """One row per worker as the last update described it."""
        return workers_frame(self.worker_rows)

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
        update that brought it (``history``'s ``time``). In memory only, updates older
        than ``fine_seconds`` are merged per minute; a streamed run reads the updates of
        a merged span its window cuts through back from disk, so every window is exact.
        """
        qs = list(q)
        lo, hi = to_seconds(start, -math.inf), to_seconds(end, math.inf)
        return percentiles_frame(self._window(lo, hi, corrected), qs, by)

    def _window(self, lo: float, hi: float, corrected: bool) -> Iterator[tuple[Key, Histogram]]:
        """The histograms of the updates that ended in ``(lo, hi]``, per endpoint."""
        cuts: list[tuple[float, float]] = []
        streaming = self.store is not None
        merged = self._hours + self._minutes if streaming else []
        for slot in merged:  # the disk holds their updates: cut them exactly
            if slot.end <= lo or slot.start >= hi:
                continue
            if lo <= slot.start and slot.end <= hi:
                yield from _histograms(slot, corrected)
            else:
                cuts.append((max(lo, slot.start), min(hi, slot.end)))
        for slot in self._fine if streaming else self.slots:
            if lo < slot.end <= hi:  # in memory only, a merged slot counts by its end
                yield from _histograms(slot, corrected)
        for a, b in cuts:
            assert self.store is not None
            table = self.store.read("histograms", a, b)
            if table is not None:
                rows = streamed.choose(table, corrected)
                for code, hist in streamed.merge_rows(rows).items():
                    yield self._endpoints[code], hist

    def snapshot(self) -> RunData:
        """Return an independent copy (what ``Swarm.result()`` hands out); a streamed copy
        reads the same folder, up to its own last update."""
        return copy.deepcopy(self)


def _histograms(slot: Slot, corrected: bool) -> Iterator[tuple[Key, Histogram]]:
    for key, packed in slot.histograms.items():
        if corrected:
            packed = slot.corrected.get(key, packed)
        yield key, packed.unpack()


def rows_of(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return plain dict copies (for saving)."""
    return [dict(item) for item in items]
