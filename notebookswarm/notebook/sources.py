"""What a :class:`~notebookswarm.notebook.watch.Watcher` can sample: a URL, a process, a callable.

Each source has a ``name`` and one method, ``scrape(clock) -> Snapshot``, which reads the
server once and raises :class:`ScrapeError` (with a ``kind``: ``down``, ``http``,
``garbage``, ``error``) when it cannot. Sources keep no state between scrapes: rates
are the watcher's business (:mod:`notebookswarm.notebook.exposition`).
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Final, Protocol

import psutil

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.exposition import Snapshot, parse_exposition, snapshot_of_values

#: Bytes of a metrics page read at most: node_exporter's page is about 100 KB.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024
# Metrics are scraped directly, never through an http_proxy from the environment: the
# servers watched are the ones under test, next to the notebook or inside its network.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"


class ScrapeError(Exception):
    """A scrape that gave no metrics; ``kind`` says how it failed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Source(Protocol):
    """Anything the watcher can sample."""

    name: str

    def scrape(self, clock: Callable[[], float], timeout: float) -> Snapshot:
        """Read the server once; the snapshot's time is when it answered (``clock``)."""
        ...


class PrometheusSource:
    """A Prometheus text-exposition page: an app's ``/metrics``, node_exporter, ..."""

    def __init__(self, url: str, name: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{url!r} is not an http(s) URL: pass e.g. http://host:9100/metrics")
        self.url = url
        self.name = name or url.split("//", 1)[1]

    def scrape(self, clock: Callable[[], float], timeout: float) -> Snapshot:
        """Fetch and parse the page; an answer other than 200 and Prometheus text is an error."""
        request = urllib.request.Request(self.url, headers={"Accept": _ACCEPT})
        sent = clock()
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                kind = response.headers.get("Content-Type", "")
                body = response.read(MAX_BODY_BYTES)
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read(200).decode(errors="replace").strip()
            raise ScrapeError("http", f"HTTP {exc.code} from {self.url}: {text[:200]}") from None
        except TimeoutError:
            raise ScrapeError("timeout", f"no answer from {self.url} in {timeout:g} s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError | socket.timeout):
                raise ScrapeError(
                    "timeout", f"no answer from {self.url} in {timeout:g} s"
                ) from None
            raise ScrapeError("down", f"{self.url} is unreachable: {reason}") from None
        except OSError as exc:
            raise ScrapeError("down", f"{self.url} failed: {exc}") from None
        answered = clock()
        text = body.decode("utf-8", errors="replace")
        if "html" in kind or text.lstrip()[:1] == "<":
            raise ScrapeError(
                "garbage",
                f"{self.url} answered an HTML page, not Prometheus text: is it the metrics path?",
            )
        try:
            # Midway between asking and hearing back: the best guess of when it was read.
            return parse_exposition(text, (sent + answered) / 2)
        except ValueError as exc:
            raise ScrapeError(
                "garbage", f"{self.url} answered something that is not Prometheus text: {exc}"
            ) from None


class ProcessSource:
    """A local process by pid, read with psutil under the names Prometheus clients use.

    ``process_cpu_seconds_total`` (a rate: 1.0 is one core busy),
    ``process_resident_memory_bytes``, ``process_threads``, ``process_open_fds``,
    ``process_connections`` (inet sockets); with ``children=True`` the process and all its
    descendants together, plus ``process_children``.
    """

    def __init__(self, pid: int, name: str | None = None, children: bool = False) -> None:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ConfigError(f"pid must be a positive integer, got {pid!r}")
        self.pid = pid
        self.children = children
        self.name = name or f"pid {pid}"
        self._process: psutil.Process | None = None

    def scrape(self, clock: Callable[[], float], timeout: float) -> Snapshot:
        """Read the process (and its children); a process that is gone is ``down``."""
        try:
            if self._process is None:
                self._process = psutil.Process(self.pid)
            main = self._process
            if not main.is_running():
                raise psutil.NoSuchProcess(self.pid)
            members = [main, *(main.children(recursive=True) if self.children else [])]
            totals = {"cpu": 0.0, "rss": 0.0, "threads": 0.0, "fds": 0.0, "conns": 0.0}
            for member in members:
                _add_process(totals, member, required=member is main)
        except psutil.NoSuchProcess:
            raise ScrapeError("down", f"process {self.pid} has exited") from None
        except psutil.AccessDenied as exc:
            raise ScrapeError("error", f"not allowed to read process {self.pid}: {exc}") from None
        snapshot = Snapshot(clock())
        snapshot.counters[("process_cpu_seconds_total", ())] = totals["cpu"]
        for metric, total in (
            ("process_resident_memory_bytes", "rss"),
            ("process_threads", "threads"),
            ("process_open_fds", "fds"),
            ("process_connections", "conns"),
        ):
            snapshot.gauges[(metric, ())] = totals[total]
        if self.children:
            snapshot.gauges[("process_children", ())] = float(len(members) - 1)
        return snapshot


def _add_process(totals: dict[str, float], process: psutil.Process, required: bool) -> None:
    try:
        with process.oneshot():
            cpu = process.cpu_times()
            totals["cpu"] += cpu.user + cpu.system
            totals["rss"] += process.memory_info().rss
            totals["threads"] += process.num_threads()
            totals["fds"] += process.num_fds() if os.name == "posix" else 0
            totals["conns"] += len(process.net_connections(kind="inet"))
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        if required:
            raise
        # A child that ended between listing and reading: it no longer counts.


class CallableSource:
    """A Python callable returning ``{metric: number}`` (a SQL query, an admin API, ...).

    Names ending in ``_total`` are counters (per-second rates); others are gauges. A key
    may carry labels: ``'connections{state="active"}'``.
    """

    def __init__(self, function: Callable[[], Any], name: str | None = None) -> None:
        if not callable(function):
            raise ConfigError(f"{function!r} is not callable: pass a function of no arguments")
        self.function = function
        self.name = name or getattr(function, "__name__", None) or repr(function)

    def scrape(self, clock: Callable[[], float], timeout: float) -> Snapshot:
        """Call the function; an exception or a value that is not a dict is an error."""
        try:
            values = self.function()
        except Exception as exc:
            raise ScrapeError("error", f"{self.name} raised {type(exc).__name__}: {exc}") from None
        try:
            return snapshot_of_values(values, clock())
        except ValueError as exc:
            raise ScrapeError("garbage", f"{self.name}: {exc}") from None


def source_of(target: object, name: str | None = None, children: bool = False) -> Source:
    """Return the source for ``target``: a URL, a pid, a psutil.Process or a callable."""
    if isinstance(target, str):
        return PrometheusSource(target, name)
    if isinstance(target, psutil.Process):
        return ProcessSource(target.pid, name, children)
    if isinstance(target, int) and not isinstance(target, bool):
        return ProcessSource(target, name, children)
    if hasattr(target, "scrape") and hasattr(target, "name"):
        return target  # a Source already
    if callable(target):
        return CallableSource(target, name)
    raise ConfigError(
        f"cannot watch {target!r}: pass a Prometheus URL (http://host:port/metrics), "
        "a process id, or a function returning {metric: value}"
    )
