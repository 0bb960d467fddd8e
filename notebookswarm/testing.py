"""Helpers for testing load tests: a local HTTP target that counts what it receives.

``CountingServer`` listens on 127.0.0.1 on a free port, answers every request (200 "ok"
unless told otherwise with :meth:`CountingServer.route`) and counts requests per
``(method, path)``, so a test can check that the swarm's statistics equal what the
target actually received::

    with CountingServer() as target:
        target.route("/broken", status=503)
        ... run users against target.url ...
        assert target.count("GET", "/") == stats_for_get_root

:func:`wait_until` waits for a condition with a deadline (instead of a sleep),
:class:`FakeClock` stands in for ``time.monotonic`` where code takes a ``clock=``, and
:func:`run_local` runs user classes in one worker process without a master and returns
their statistics — a quick way to test a user class::

    result = run_local("users.py", host=target.url, users=2, run_time=2.0)
    assert result.stats.total().requests == target.count()
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from notebookswarm._local import LocalResult, run_local

__all__ = [
    "CountingServer",
    "FakeClock",
    "LocalResult",
    "Route",
    "descendants",
    "process_gone",
    "run_local",
    "wait_until",
]


@dataclass(frozen=True)
class Route:
    """How the server answers one path."""

    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real target
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # base name
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.server.owner
        owner._count(self.command, self.path, body, self.client_address[1])
        route = owner.routes.get(self.path.split("?", 1)[0], owner.default)
        if route.delay:
            time.sleep(route.delay)
        self.send_response(route.status)
        for key, value in route.headers:
            self.send_header(key, value)
        payload = b"" if self.command == "HEAD" else route.body
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # hundreds of users connect at once; 5 would reset some
    daemon_threads = True
    block_on_close = False
    owner: CountingServer

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        self.owner._connected()
        return conn, addr


class CountingServer:
    """A threaded HTTP/1.1 server that counts requests per (method, path).

    It listens on ``host`` (127.0.0.1 unless given: an address of this machine, such as
    a bridge that network namespaces share) on a free port.
    """

    def __init__(
        self, default: Route | None = None, keep_log: bool = False, host: str = "127.0.0.1"
    ) -> None:
        self.default = default or Route()
        #: With ``keep_log``: ``(client port, method, path, monotonic time)`` per request.
        self.log: list[tuple[int, str, str, float]] | None = [] if keep_log else None
        self.routes: dict[str, Route] = {}
        self.bodies: dict[tuple[str, str], list[bytes]] = {}
        self._counts: Counter[tuple[str, str]] = Counter()
        self._connections = 0
        self._lock = threading.Lock()
        self._server = _Server((host, 0), _Handler)
        self._server.owner = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def route(
        self,
        path: str,
        status: int = 200,
        body: bytes = b"ok",
        delay: float = 0.0,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer ``path`` (query ignored) with this status, body and delay from now on."""
        self.routes[path] = Route(status, body, delay, headers)

    def _count(self, method: str, path: str, body: bytes, port: int) -> None:
        with self._lock:
            self._counts[(method, path)] += 1
            if self.log is not None:
                self.log.append((port, method, path, time.monotonic()))
            if method in ("POST", "PUT", "PATCH"):
                self.bodies.setdefault((method, path), []).append(body)

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Return how many requests arrived, optionally only of one method and/or path."""
        with self._lock:
            return sum(
                n
                for (m, p), n in self._counts.items()
                if (method is None or m == method) and (path is None or p == path)
            )

    def counts(self) -> dict[tuple[str, str], int]:
        """Return a copy of the per-(method, path) counts."""
        with self._lock:
            return dict(self._counts)

    @property
    def connections(self) -> int:
        """How many TCP connections were accepted so far."""
        with self._lock:
            return self._connections

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> CountingServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def descendants() -> set[int]:
    """Return the pids of every process this one started, directly or not, leaving out a
    browser's helpers (Chromium starts and ends processes of its own whenever it likes)."""
    import psutil

    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" not in child.name().lower():
                found.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def process_gone(pid: int) -> bool:
    """Say whether a process has exited (a zombie waiting for its parent counts as gone)."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


class FakeClock:
    """A clock for tests that moves only when told: pass it where code takes ``clock=``.

    Calling it returns :attr:`now` (0.0 to begin with, or ``start``); :meth:`advance`
    moves it forward. Code that reads time through it (the engine's ramp and arrivals,
    the HTTP pool's idle checks, the dashboard's throttle) sees exactly the times a test
    sets, so the test needs no sleeping::

        clock = FakeClock()
        runtime = Runtime([Visitor], StatsRecorder(), clock=clock)
        runtime.set_targets({"Visitor": 8}, spawn_rate=40)  # one user due every 25 ms
        clock.advance(0.11)                                 # five are due by now
        wait_until(lambda: runtime.user_count() == 5, message="five users")

    Only the readings are fake: code that sleeps until a reading still waits in real
    time between readings (briefly, since it sleeps for the fake delay at most).
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` forward (never back) and return the new time."""
        if not seconds >= 0:
            raise ValueError(f"a clock only moves forward: advance({seconds!r})")
        self.now += seconds
        return self.now


def wait_until(
    condition: object, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"
) -> None:
    """Poll ``condition()`` until it is true; raise AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if callable(condition) and condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)
