"""Sample the server's own metrics beside a load test, one thread per source, on a time grid.

::

    watcher = Watcher(every=1.0, start=run_start)       # ticks at run_start + n seconds
    watcher.watch("http://127.0.0.1:8080/metrics")      # Prometheus text exposition
    watcher.watch(target_pid, name="app", children=True)  # a local process (psutil)
    watcher.watch(lambda: {"db_connections": count()}, name="db")  # anything else
    ...
    watcher.frame()    # time, source, metric, labels, kind, value (see exposition.py)
    watcher.errors()   # time, source, kind, message, seconds
    watcher.stop()

Each source has its own daemon thread, so a slow or dead source never holds back another
(nor the caller). Every tick ``start + n * every`` (on ``clock``, the wall clock by
default, as the run's history) each source is read once, with a deadline of ``timeout``
seconds; the rows are stamped with the tick, not with the moment the answer came, so
every source's rows land on the same grid as each other and as the history. A tick that
gives no rows gives an error row instead: ``down`` (refused, process gone), ``timeout``
(no answer within ``timeout``), ``http`` (a status other than 200), ``garbage`` (HTML or
text that does not parse), ``error`` (the callable raised) or ``missed`` (the previous
read of that source was still running when the tick came). Nothing is raised to the
caller.

Rows are kept in typed arrays (about 20 bytes each): 200 series a second for an hour is
about 15 MB.
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, NamedTuple

import pandas as pd

from notebookswarm._checks import check_rate
from notebookswarm.errors import ConfigError
from notebookswarm.notebook.exposition import Snapshot, interval_rows
from notebookswarm.notebook.sources import ScrapeError, Source, source_of

#: Seconds a source may take to answer before its tick counts as a ``timeout``.
DEFAULT_TIMEOUT: Final = 2.0
FRAME_COLUMNS: Final = ["time", "source", "metric", "labels", "kind", "value"]
ERROR_COLUMNS: Final = ["time", "source", "kind", "message", "seconds"]
# A tick a hair early on a float grid is still that tick.
_EPSILON: Final = 1e-6


class ServerRow(NamedTuple):
    """One value of one series at one tick (seconds since the epoch)."""

    time: float
    source: str
    metric: str
    labels: str
    kind: str
    value: float


class ScrapeFailure(NamedTuple):
    """A tick of one source that gave no rows, and why."""

    time: float
    source: str
    kind: str
    message: str
    seconds: float  # how long the read ran before it failed; NaN if none was started


def first_index(now: float, start: float, every: float) -> int:
    """Return the index of the first tick ``start + n * every`` (n ≥ 0) not before ``now``."""
    if now <= start:
        return 0
    return max(0, math.ceil((now - start) / every - _EPSILON))


def grid_start(now: float, every: float = 1.0) -> float:
    """Return the whole multiple of ``every`` seconds at or before ``now`` (the default grid)."""
    return math.floor(now / every) * every


class Watcher:
    """Sample sources on a shared grid in background threads; read the rows as DataFrames."""

    def __init__(
        self,
        every: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        start: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.every = check_rate("every", every, "seconds")
        self.timeout = check_rate("timeout", timeout, "seconds")
        self.clock = clock
        #: Ticks fall on ``start + n * every``: pass the run's own grid to share its seconds.
        self.start = grid_start(clock(), self.every) if start is None else float(start)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._loops: dict[str, _Loop] = {}
        self._time = array("d")
        self._code = array("i")
        self._value = array("d")
        self._series: list[tuple[str, str, str, str]] = []  # source, metric, labels, kind
        self._codes: dict[tuple[str, str, str, str], int] = {}
        self._failures: list[ScrapeFailure] = []

    def watch(
        self,
        target: object,
        name: str | None = None,
        every: float | None = None,
        timeout: float | None = None,
        children: bool = False,
    ) -> str:
        """Start sampling ``target`` (a URL, a pid, a callable); return its source name.

        ``every``/``timeout`` default to the watcher's; ``children=True`` adds a process's
        descendants to it.
        """
        if self._stopped.is_set():
            raise ConfigError("this watcher was stopped: make a new one to watch more")
        source = source_of(target, name, children)
        with self._lock:
            if source.name in self._loops:
                raise ConfigError(
                    f"a source named {source.name!r} is already watched: pass another name="
                )
            loop = _Loop(
                self,
                source,
                self.every if every is None else check_rate("every", every, "seconds"),
                self.timeout if timeout is None else check_rate("timeout", timeout, "seconds"),
            )
            self._loops[source.name] = loop
        loop.thread.start()
        return source.name

    @property
    def sources(self) -> list[str]:
        """The names of the sources watched."""
        with self._lock:
            return list(self._loops)

    def stop(self, timeout: float | None = None) -> None:
        """Stop sampling and wait for every source's thread (a read in progress is abandoned)."""
        self._stopped.set()
        with self._lock:
            loops = list(self._loops.values())
        for loop in loops:
            loop.thread.join(timeout if timeout is not None else loop.timeout + 1.0)

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- recording (called from the sources' threads) -------------------------------------

    def _record(
        self, tick: float, source: str, snapshot: Snapshot, before: Snapshot | None
    ) -> None:
        rows = interval_rows(before, snapshot)
        with self._lock:
            for metric, labels, kind, value in rows:
                key = (source, metric, labels, kind)
                code = self._codes.get(key)
                if code is None:
                    code = self._codes[key] = len(self._series)
                    self._series.append(key)
                self._time.append(tick)
                self._code.append(code)
                self._value.append(value)

    def _fail(self, failure: ScrapeFailure) -> None:
        with self._lock:
            self._failures.append(failure)

    # --- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._time)

    def rows(self, since: int = 0) -> list[ServerRow]:
        """Return the rows from the ``since``-th on, in the order they came (for live views)."""
        with self._lock:
            series = self._series
            return [
                ServerRow(t, *series[c], v)
                for t, c, v in zip(
                    self._time[since:], self._code[since:], self._value[since:], strict=True
                )
            ]

    def frame(self) -> pd.DataFrame:
        """Return every row: time (UTC), source, metric, labels, kind, value."""
        with self._lock:
            times = pd.Series(self._time, dtype="float64")
            codes = pd.Series(self._code, dtype="int64").to_numpy()
            values = pd.Series(self._value, dtype="float64")
            series = list(self._series)
        columns = {
            name: pd.Series(
                pd.array([s[i] for s in series], dtype="string").take(codes) if len(codes) else [],
                dtype="string",
            )
            for i, name in enumerate(("source", "metric", "labels", "kind"))
        }
        frame = pd.DataFrame({"time": _utc(times), **columns, "value": values})
        return frame[FRAME_COLUMNS]

    def errors(self) -> pd.DataFrame:
        """Return every tick that gave no rows: time (UTC), source, kind, message, seconds."""
        with self._lock:
            failures = list(self._failures)
        frame = pd.DataFrame(failures, columns=ERROR_COLUMNS)
        frame["time"] = _utc(frame["time"].astype("float64"))
        return frame.astype(
            {"source": "string", "kind": "string", "message": "string", "seconds": "float64"}
        )

    def __repr__(self) -> str:
        return f"<Watcher {len(self)} rows from {', '.join(self.sources) or 'no source'}>"


def _utc(seconds: pd.Series[float]) -> pd.Series[Any]:
    stamps = pd.to_datetime(seconds, unit="s", utc=True)
    return stamps.astype("datetime64[ns, UTC]")


class _Loop:
    """One source's thread: wait for each tick, read once with a deadline, record."""

    def __init__(self, watcher: Watcher, source: Source, every: float, timeout: float) -> None:
        self.watcher = watcher
        self.source = source
        self.every = every
        self.timeout = timeout
        self.previous: Snapshot | None = None
        self.reading: threading.Thread | None = None
        self.reading_since = 0.0
        self.thread = threading.Thread(
            target=self.run, name=f"notebookswarm-watch {source.name}", daemon=True
        )

    def run(self) -> None:
        w = self.watcher
        index = first_index(w.clock(), w.start, self.every)
        while not w._stopped.is_set():
            tick = w.start + index * self.every
            # Event.wait runs on the monotonic clock; check ``clock`` again after it.
            if w._stopped.wait(max(0.0, tick - w.clock())):
                return
            if w.clock() < tick - _EPSILON:
                continue
            self.sample(tick)
            after = first_index(w.clock(), w.start, self.every)
            for missed in range(index + 1, after):
                self.fail(w.start + missed * self.every, "missed", self._busy_message(), math.nan)
            index = max(index + 1, after)

    def _busy_message(self) -> str:
        return (
            f"skipped: reading {self.source.name} took longer than "
            f"{self.every:g} s (the previous read was still running)"
        )

    def fail(self, tick: float, kind: str, message: str, seconds: float) -> None:
        self.watcher._fail(ScrapeFailure(tick, self.source.name, kind, message, seconds))

    def sample(self, tick: float) -> None:
        """Read the source once for ``tick``, waiting at most ``timeout`` for the answer."""
        if self.reading is not None and self.reading.is_alive():
            ran = time.monotonic() - self.reading_since
            self.fail(tick, "missed", f"{self._busy_message()[:-1]}, {ran:.1f} s so far)", ran)
            return
        result: list[Snapshot | ScrapeError] = []
        done = threading.Event()
        clock, timeout = self.watcher.clock, self.timeout

        def read() -> None:
            try:
                result.append(self.source.scrape(clock, timeout))
            except ScrapeError as exc:
                result.append(exc)
            except Exception as exc:  # a source's bug is a failed tick, not a dead thread
                result.append(ScrapeError("error", f"{type(exc).__name__}: {exc}"))
            finally:
                done.set()

        # The read runs in a thread of its own so that a hung callable costs this source
        # its ticks (as ``missed``) but never stops this loop from keeping time.
        self.reading = threading.Thread(target=read, daemon=True)
        self.reading_since = began = time.monotonic()
        self.reading.start()
        if not done.wait(timeout):
            self.fail(
                tick, "timeout", f"no answer from {self.source.name} in {timeout:g} s", timeout
            )
            return
        outcome = result[0]
        if isinstance(outcome, ScrapeError):
            self.fail(tick, outcome.kind, str(outcome), time.monotonic() - began)
            return
        self.watcher._record(tick, self.source.name, outcome, self.previous)
        self.previous = outcome
