"""Per-endpoint request statistics that merge exactly across intervals and workers.

One :class:`RequestStats` holds what happened in some span of time (one report interval
of one worker, or a whole run merged from many): per ``(method, name)`` an
:class:`EndpointStats`, failures grouped by ``(method, name, error)``, and exceptions
raised by user code grouped by where they were raised. Everything is plain counters and
sparse histograms, so ``merge`` is addition and ``to_wire``/``from_wire`` carry it over
msgpack unchanged.

A worker records into a :class:`StatsRecorder` and calls :meth:`StatsRecorder.take` once
per report interval; that hands over the interval's delta and starts a new one, so a
worker keeps nothing that grows with the length of the run. It keeps at most
``max_names`` distinct request names (see :mod:`notebookswarm.stats.names`): later new
ones are counted under one ``<other names>`` row per method.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from notebookswarm.stats.histogram import Histogram
from notebookswarm.stats.names import DEFAULT_MAX_NAMES, OVERFLOW_NAME, NameLimit

Key = tuple[str, str]
"""An endpoint: ``(method, name)``."""

#: At most this many distinct exception sites are kept per interval; more are counted
#: under one "too many distinct exceptions" entry so a buggy user cannot grow memory.
MAX_EXCEPTION_KINDS = 200
#: At most this many distinct error strings per interval, for the same reason.
MAX_ERROR_KINDS = 1000
_OVERFLOW = "(more distinct errors than notebookswarm keeps per interval)"


@dataclass
class EndpointStats:
    """Counters and latency histograms for one ``(method, name)``.

    ``latency`` is measured from when the request was sent. In arrival-rate mode
    ``corrected`` is measured from when it was meant to start (coordinated omission
    corrected); it is None where the two are the same (users that wait for responses).
    """

    requests: int = 0
    failures: int = 0
    total_ns: int = 0
    bytes: int = 0
    latency: Histogram = field(default_factory=Histogram)
    corrected: Histogram | None = None

    @property
    def corrected_latency(self) -> Histogram:
        """Latency from the intended start: ``corrected``, else the same as ``latency``."""
        return self.latency if self.corrected is None else self.corrected

    def record_late(self, latency_ns: int, late_ns: int, nbytes: int, failed: bool) -> None:
        """Count one request whose start was ``late_ns`` behind its intended time."""
        if self.corrected is None:
            self.corrected = self.latency.copy()
        self.record(latency_ns, nbytes, failed)
        self.corrected.record(latency_ns + late_ns)

    def record(self, latency_ns: int, nbytes: int, failed: bool) -> None:
        """Count one request."""
        self.requests += 1
        if failed:
            self.failures += 1
        self.total_ns += latency_ns
        self.bytes += nbytes
        self.latency.record(latency_ns)

    def merge(self, other: EndpointStats) -> None:
        """Add another span's counts into this one."""
        self.requests += other.requests
        self.failures += other.failures
        self.total_ns += other.total_ns
        self.bytes += other.bytes
        if self.corrected is not None or other.corrected is not None:
            mine = self.corrected if self.corrected is not None else self.latency.copy()
            mine.merge(other.corrected_latency)
            self.corrected = mine
        self.latency.merge(other.latency)

    def to_wire(self) -> dict[str, Any]:
        """Return a msgpack-ready dict."""
        wire = {
            "r": self.requests,
            "f": self.failures,
            "t": self.total_ns,
            "B": self.bytes,
            "h": self.latency.to_wire(),
        }
        if self.corrected is not None:
            wire["c"] = self.corrected.to_wire()
        return wire

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> EndpointStats:
        """Rebuild from :meth:`to_wire` output."""
        return cls(
            requests=int(data["r"]),
            failures=int(data["f"]),
            total_ns=int(data["t"]),
            bytes=int(data["B"]),
            latency=Histogram.from_wire(data["h"]),
            corrected=Histogram.from_wire(data["c"]) if "c" in data else None,
        )


@dataclass
class ExceptionRecord:
    """How often one exception site fired, with the most recent example."""

    count: int
    error: str
    traceback: str


@dataclass
class RequestStats:
    """Everything recorded in one span: endpoints, errors and user-code exceptions."""

    endpoints: dict[Key, EndpointStats] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], int] = field(default_factory=dict)
    exceptions: dict[str, ExceptionRecord] = field(default_factory=dict)
    #: Arrival-rate mode: arrivals due, started late (> LATE_NS behind), and dropped
    #: because no user was free and the backlog was full.
    arrivals: int = 0
    late: int = 0
    dropped: int = 0
    #: Where new names are admitted or folded (a recorder's; None admits every name).
    names: NameLimit | None = field(default=None, compare=False, repr=False)

    def _endpoint(self, method: str, name: str, late: bool = False) -> tuple[str, EndpointStats]:
        """Return the name to count under (folded past the name limit) and its counters."""
        stats = self.endpoints.get((method, name))
        if stats is None:
            if self.names is not None:
                name = self.names.admit(method, name)
                stats = self.endpoints.get((method, name))
            if stats is None:
                stats = EndpointStats(corrected=Histogram()) if late else EndpointStats()
                self.endpoints[(method, name)] = stats
        return name, stats

    def record_late_request(
        self,
        method: str,
        name: str,
        latency_ns: int,
        late_ns: int,
        nbytes: int,
        error: str | None,
    ) -> None:
        """Count one request of an arrival that started ``late_ns`` after it was due."""
        name, stats = self._endpoint(method, name, late=True)
        stats.record_late(latency_ns, late_ns, nbytes, error is not None)
        if error is not None:
            self._add_error((method, name, error), 1)

    def record_request(
        self, method: str, name: str, latency_ns: int, nbytes: int, error: str | None
    ) -> None:
        """Count one request; ``error`` is ``None`` for a success, else what went wrong."""
        name, stats = self._endpoint(method, name)
        stats.record(latency_ns, nbytes, error is not None)
        if error is not None:
            self._add_error((method, name, error), 1)

    def _add_error(self, ekey: tuple[str, str, str], count: int) -> None:
        if ekey not in self.errors and len(self.errors) >= MAX_ERROR_KINDS:
            ekey = (ekey[0], ekey[1], _OVERFLOW)
        self.errors[ekey] = self.errors.get(ekey, 0) + count

    def record_exception(self, exc: BaseException) -> None:
        """Count an exception raised by user code, grouped by where it was raised."""
        self.record_exception_text(*describe_user_exception(exc))

    def record_exception_text(self, site: str, error: str, text: str, count: int = 1) -> None:
        """Count a failure of user code that is not an exception object (a stuck task)."""
        self._add_exception(site, ExceptionRecord(count, error, text))

    def _add_exception(self, site: str, record: ExceptionRecord) -> None:
        known = self.exceptions.get(site)
        if known is not None:
            known.count += record.count
            known.error, known.traceback = record.error, record.traceback
            return
        if len(self.exceptions) >= MAX_EXCEPTION_KINDS:
            site = _OVERFLOW
            if site in self.exceptions:
                self.exceptions[site].count += record.count
                return
        self.exceptions[site] = ExceptionRecord(record.count, record.error, record.traceback)

    def merge(self, other: RequestStats) -> None:
        """Add another span into this one (folding names past ``names``' limit, if set)."""
        for key, stats in other.endpoints.items():
            mine = self.endpoints.get(key)
            if mine is None:
                if self.names is not None:
                    key = (key[0], self.names.admit(*key))
                    mine = self.endpoints.get(key)
                if mine is None:
                    mine = self.endpoints[key] = EndpointStats()
            mine.merge(stats)
        for ekey, n in other.errors.items():
            if self.names is not None and ekey[:2] not in self.names.seen:
                ekey = (ekey[0], OVERFLOW_NAME, ekey[2])
            self._add_error(ekey, n)
        for site, record in other.exceptions.items():
            self._add_exception(site, record)
        self.arrivals += other.arrivals
        self.late += other.late
        self.dropped += other.dropped

    def total(self) -> EndpointStats:
        """Return all endpoints merged into one (the ``Aggregated`` row)."""
        out = EndpointStats()
        for stats in self.endpoints.values():
            out.merge(stats)
        return out

    def is_empty(self) -> bool:
        """Say whether nothing at all was recorded."""
        return not (self.endpoints or self.errors or self.exceptions or self.arrivals)

    def to_wire(self) -> dict[str, Any]:
        """Return a msgpack-ready dict."""
        return {
            "e": [[m, n, s.to_wire()] for (m, n), s in self.endpoints.items()],
            "err": [[m, n, e, c] for (m, n, e), c in self.errors.items()],
            "exc": [[site, r.count, r.error, r.traceback] for site, r in self.exceptions.items()],
            **({"arr": [self.arrivals, self.late, self.dropped]} if self.arrivals else {}),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RequestStats:
        """Rebuild from :meth:`to_wire` output; raises ``KeyError``/``TypeError``/``ValueError``
        on a malformed map."""
        out = cls()
        for method, name, stats in data["e"]:
            out.endpoints[(str(method), str(name))] = EndpointStats.from_wire(stats)
        for method, name, error, count in data["err"]:
            out.errors[(str(method), str(name), str(error))] = int(count)
        for site, count, error, text in data["exc"]:
            out.exceptions[str(site)] = ExceptionRecord(int(count), str(error), str(text))
        if "arr" in data:
            out.arrivals, out.late, out.dropped = (int(n) for n in data["arr"])
        return out


def describe_user_exception(exc: BaseException) -> tuple[str, str, str]:
    """Return where ``exc`` was raised (its type and frames), its one line, its traceback.

    Formatting runs the exception's ``__str__`` and reads source lines: user code and file
    reads, done before a recorder takes its lock.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    site = type(exc).__qualname__ + "".join(f"|{f.filename}:{f.lineno}:{f.name}" for f in frames)
    error = f"{type(exc).__name__}: {exc}"
    return site, error, "".join(traceback.format_exception(exc))


class StatsRecorder:
    """Collect one report interval at a time; :meth:`take` hands it over and starts anew.

    ``max_names``: distinct request names kept before new ones are folded (see
    :mod:`notebookswarm.stats.names`). ``lock``: held around every change and the hand-over
    in :meth:`take`, for a recorder that a second native thread may take from (a worker's
    last report when its event loop is stuck); None for one thread.
    """

    def __init__(
        self,
        max_names: int = DEFAULT_MAX_NAMES,
        lock: contextlib.AbstractContextManager[Any] | None = None,
    ) -> None:
        self.names = NameLimit(max_names)
        self._lock: contextlib.AbstractContextManager[Any] = lock or contextlib.nullcontext()
        self.current = RequestStats(names=self.names)

    def record_request(
        self, method: str, name: str, latency_ns: int, nbytes: int, error: str | None
    ) -> None:
        """Count one request in the current interval."""
        with self._lock:
            self.current.record_request(method, name, latency_ns, nbytes, error)

    def record_exception(self, exc: BaseException) -> None:
        """Count an exception raised by user code in the current interval."""
        site, error, text = describe_user_exception(exc)  # outside the lock: runs user code
        with self._lock:
            self.current.record_exception_text(site, error, text)

    def record_exception_text(self, site: str, error: str, text: str, count: int = 1) -> None:
        """Count a failure of user code given as text, e.g. a task that would not stop."""
        with self._lock:
            self.current.record_exception_text(site, error, text, count)

    def record_late_request(
        self,
        method: str,
        name: str,
        latency_ns: int,
        late_ns: int,
        nbytes: int,
        error: str | None,
    ) -> None:
        """Count one request of a late arrival in the current interval."""
        with self._lock:
            self.current.record_late_request(method, name, latency_ns, late_ns, nbytes, error)

    def take(self) -> RequestStats:
        """Return the interval recorded so far and start a new one."""
        with self._lock:
            taken, self.current = self.current, RequestStats(names=self.names)
        return taken
