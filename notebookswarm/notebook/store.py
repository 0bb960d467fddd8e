"""Stream a run to a folder as it goes, so a crashed kernel or CLI leaves a readable run.

Layout of a streamed run folder (``notebookswarm-runs/2024-05-01T12-30-05/`` by default)::

    meta.json           format, "streamed", "complete" (false until run.save() finalises)
    endpoints.jsonl     [code, method, name], one a line, before any row that uses the code
    events.jsonl        per update that had them: errors, exceptions, arrivals, lost, failures
    checkpoint.msgpack  the cumulative statistics at the end of the last full minute
    history/M.arrows    the history rows of minute M (epoch seconds // 60), one IPC batch
    histograms/M.arrows per update; each closed minute is rewritten as M.parquet (zstd)

Why Arrow IPC appends and then Parquet (measured, docs/performance.md): appending an
update's ~100 rows to an uncompressed IPC stream costs ~0.05 ms and is on disk (in the page
cache, so it survives the process) when ``ingest`` returns, so a killed controller loses
at most the update it was writing. Parquet written per update would cost milliseconds and
hold one footer per second; Parquet per minute alone would lose up to a minute. So the open
minute is IPC, and a background thread rewrites each closed minute as zstd Parquet (~35 ms,
a third of the disk: ~40 MB an hour for 100 endpoints instead of ~145) off the receive
thread. A reader takes whichever file of a minute exists; a torn last IPC batch is dropped.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import queue
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

FORMAT = 2
KINDS = ("history", "histograms")
#: The column each kind's rows are filtered on (an update's end, epoch seconds).
TIME_COLUMN = {"history": "time", "histograms": "end"}


def folder_for(runs_dir: str | Path, started: float) -> Path:
    """Return a new folder under ``runs_dir`` named by ``started`` (local time)."""
    root = Path(runs_dir)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.localtime(started))
    folder, n = root / stamp, 1
    while folder.exists():
        n += 1
        folder = root / f"{stamp}-{n}"
    return folder


def is_streamed(folder: str | Path) -> bool:
    """Say whether ``folder`` holds a streamed run (complete or not)."""
    meta = Path(folder) / "meta.json"
    if not meta.is_file():
        return False
    try:
        return bool(json.loads(meta.read_text()).get("streamed"))
    except ValueError:
        return False


def release_heap() -> None:
    """Hand freed heap back to the system: glibc and Arrow's allocator keep it otherwise, and
    the controller's resident memory would carry the largest query's peak for good."""
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing more to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class RunStore:
    """The folder of one streamed run: appended update by update, read by time window.

    One writer (the controller's receive thread, under its owner's lock) appends; reads
    come under the same lock. A copy of a ``RunData`` shares its store (``__deepcopy__``).
    """

    def __init__(self, folder: str | Path, writing: bool = False) -> None:
        self.folder = Path(folder)
        self._writers: dict[str, tuple[Any, ipc.RecordBatchStreamWriter]] = {}
        self._minute: int | None = None
        self._files = threading.Lock()  # a reader's listing vs. the converter's swap
        self._todo: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._converter: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self.error: str | None = None
        # A run dropped without close() (a collected swarm) still closes its open files.
        weakref.finalize(self, _close_sinks, self._writers)
        if writing:
            for kind in KINDS:
                (self.folder / kind).mkdir(parents=True, exist_ok=True)

    @classmethod
    def create(cls, runs_dir: str | Path, started: float) -> RunStore:
        """Start a streamed run in a new folder under ``runs_dir``."""
        store = cls(folder_for(runs_dir, started), writing=True)
        store.write_meta(
            {"format": FORMAT, "streamed": True, "complete": False, "started": started}
        )
        return store

    def __deepcopy__(self, memo: dict[int, Any]) -> RunStore:
        return self  # snapshots read the same folder, up to their own last update

    # --- writing ---------------------------------------------------------------------

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Replace ``meta.json`` atomically."""
        _write_atomically(self.folder / "meta.json", json.dumps(meta, default=str).encode())

    def add_endpoints(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """Name new endpoint codes (before the rows that use them are appended)."""
        lines = "".join(json.dumps(list(row)) + "\n" for row in rows)
        with open(self.folder / "endpoints.jsonl", "a", encoding="utf-8") as out:
            out.write(lines)

    def add_event(self, event: dict[str, Any]) -> None:
        """Append one update's errors, exceptions, arrivals, lost intervals or failures."""
        with open(self.folder / "events.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(event, default=str) + "\n")

    def minute_ends(self, end: float) -> bool:
        """Say whether an update ending at ``end`` opens a new minute (checkpoint first)."""
        return self._minute is not None and math.floor(end / 60.0) > self._minute

    def append(self, end: float, batches: dict[str, pa.RecordBatch]) -> None:
        """Append one update's rows (``history`` and ``histograms`` record batches)."""
        minute = math.floor(end / 60.0)
        if self._minute is None or minute > self._minute:
            self._rotate(minute)
        for kind, batch in batches.items():
            sink, writer = self._writer(kind, batch.schema)
            writer.write_batch(batch)
            sink.flush()  # in the page cache now: a killed process loses nothing of it

    def _writer(self, kind: str, schema: pa.Schema) -> tuple[Any, ipc.RecordBatchStreamWriter]:
        open_ = self._writers.get(kind)
        if open_ is None:
            path = self.folder / kind / f"{self._minute}.arrows"
            sink = open(path, "ab")  # noqa: SIM115 - kept open for the minute's appends
            open_ = self._writers[kind] = (sink, ipc.new_stream(sink, schema))
        return open_

    def _rotate(self, minute: int) -> None:
        closed = self._minute
        self._close_writers()
        self._minute = minute
        if closed is not None:
            self._convert_later(closed)

    def _close_writers(self) -> None:
        _close_sinks(self._writers)

    def checkpoint(self, state: dict[str, Any], name: str = "checkpoint.msgpack") -> None:
        """Replace a checkpoint (cumulative statistics up to ``state["until"]``)."""
        _write_atomically(self.folder / name, msgpack.packb(state))

    def _convert_later(self, minute: int) -> None:
        self._idle.clear()
        self._todo.put(minute)
        if self._converter is None:
            self._converter = threading.Thread(
                target=self._convert_loop, name="notebookswarm-store", daemon=True
            )
            self._converter.start()

    def _convert_loop(self) -> None:
        while True:
            try:
                minute = self._todo.get(timeout=0.5)
            except queue.Empty:
                self._idle.set()
                continue
            if minute is None:
                self._idle.set()
                return
            for kind in KINDS:
                try:
                    self._convert(kind, minute)
                except (OSError, pa.ArrowException) as exc:  # the IPC file stays readable
                    self.error = f"rewriting minute {minute} of {kind} as Parquet: {exc}"
            release_heap()  # once a minute, off the receive thread
            if self._todo.empty():
                self._idle.set()

    def _convert(self, kind: str, minute: int) -> None:
        source = self.folder / kind / f"{minute}.arrows"
        if not source.is_file():
            return
        table = _read_stream(source)
        if table is None:
            return
        target = source.with_suffix(".parquet")
        tmp = target.with_name(target.name + ".tmp")
        pq.write_table(table, tmp, compression="zstd")
        with self._files:
            os.replace(tmp, target)
            source.unlink()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every closed minute has been rewritten as Parquet."""
        deadline = time.monotonic() + timeout
        while not self._idle.wait(0.05) and time.monotonic() < deadline:
            pass

    def close(self) -> None:
        """Close the open minute's files and rewrite it as Parquet too; then stop the thread."""
        self._close_writers()
        if self._minute is not None:
            self._convert_later(self._minute)
            self._minute = None
        self.flush()
        if self._converter is not None:
            self._todo.put(None)
            self._converter.join(5.0)
            self._converter = None

    # --- reading ---------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """The run's ``meta.json``."""
        meta: dict[str, Any] = json.loads((self.folder / "meta.json").read_text())
        return meta

    def endpoints(self) -> list[tuple[str, str]]:
        """Every endpoint named so far, in code order."""
        path = self.folder / "endpoints.jsonl"
        rows = _json_lines(path) if path.is_file() else []
        named = {int(code): (str(method), str(name)) for code, method, name in rows}
        return [named[code] for code in range(len(named)) if code in named]

    def events(self) -> list[dict[str, Any]]:
        """Every event line written (a torn last line is dropped)."""
        path = self.folder / "events.jsonl"
        return _json_lines(path) if path.is_file() else []

    def read_checkpoint(self, name: str = "checkpoint.msgpack") -> dict[str, Any] | None:
        """The last checkpoint (or the final one), or None before the first full minute."""
        path = self.folder / name
        if not path.is_file():
            return None
        state: dict[str, Any] = msgpack.unpackb(path.read_bytes(), strict_map_key=False)
        return state

    def minutes(self, kind: str = "histograms") -> list[int]:
        """The minutes (epoch seconds // 60) that have rows of ``kind``, in order."""
        folder = self.folder / kind
        names = os.listdir(folder) if folder.is_dir() else []
        stems = {name.partition(".")[0] for name in names if not name.endswith(".tmp")}
        return sorted(int(stem) for stem in stems if stem.lstrip("-").isdigit())

    def read(self, kind: str, lo: float = -math.inf, hi: float = math.inf) -> pa.Table | None:
        """Rows of ``kind`` whose update ended in ``(lo, hi]``; None when there are none.

        Only the minutes the window touches are opened (the file names are minutes).
        """
        first = -math.inf if lo == -math.inf else math.floor(lo / 60.0)
        last = math.inf if hi == math.inf else math.floor(hi / 60.0)
        table = self.read_minutes(kind, first, last)
        if table is None:
            return None
        column = table[TIME_COLUMN[kind]]
        keep = pc.and_(pc.greater(column, lo), pc.less_equal(column, hi))
        table = table.filter(keep)
        return table if table.num_rows else None

    def read_minutes(self, kind: str, first: float, last: float) -> pa.Table | None:
        """Every row of ``kind`` in the minute files ``first`` to ``last``; None if none."""
        tables = [t for t in self._pieces(kind, first, last) if t.num_rows]
        return pa.concat_tables(tables) if tables else None

    def _pieces(self, kind: str, first: float, last: float) -> Iterator[pa.Table]:
        folder = self.folder / kind
        with self._files:
            names = os.listdir(folder) if folder.is_dir() else []
            minutes: dict[int, Path] = {}
            for name in names:
                stem, _, suffix = name.partition(".")
                if suffix in ("arrows", "parquet") and stem.lstrip("-").isdigit():
                    m = int(stem)
                    if first <= m <= last and (m not in minutes or suffix == "parquet"):
                        minutes[m] = folder / name
            read = [_read_piece(minutes[m]) for m in sorted(minutes)]
        yield from (t for t in read if t is not None)


def _read_piece(path: Path) -> pa.Table | None:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    return _read_stream(path)


def _read_stream(path: Path) -> pa.Table | None:
    """Every whole batch of an IPC stream; a batch torn by a crash ends the reading."""
    batches: list[pa.RecordBatch] = []
    try:
        # Read into memory rather than map it: the file may be appended to meanwhile.
        reader = ipc.open_stream(pa.BufferReader(path.read_bytes()))
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
    except (pa.ArrowInvalid, OSError):
        pass  # an empty file, or a batch torn by a crash: keep what came before
    if not batches:
        return None
    return pa.Table.from_batches(batches)


def _json_lines(path: Path) -> list[Any]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            break  # torn by a crash: everything before it stands
    return out


def _close_sinks(writers: dict[str, tuple[Any, ipc.RecordBatchStreamWriter]]) -> None:
    """Close each open minute file's writer and file, and forget them."""
    for sink, writer in writers.values():
        writer.close()
        sink.close()
    writers.clear()
