"""An embedded demo target: a small programming-contest site with a real bottleneck.

In a notebook::

    target = nbs.demo.start_target(pool_size=8, query_ms=20)
    swarm = nbs.Swarm(Contestant, host=target.url)
    ...
    target.metrics()["pool_waiters"]       # the server's side of the story
    target.configure(pool_size=16)         # tune, then run again
    target.stall(1.0)                      # freeze it for a second (coordinated omission)
    target.stop()

On a terminal: ``python -m notebookswarm.demo --port 8080 --pool-size 8``.

The site — ``POST /login``, ``GET /problems``, ``GET /problems/<id>``, ``POST /submit``,
``GET /leaderboard`` — sends each request through a bounded number of request workers
and a simulated database with a bounded connection pool, so under rising load its
throughput levels off near ``pool_size / (queries * query_ms)`` while latency climbs
(:meth:`Settings.capacity`). ``docs/demo-target.md`` lists the endpoints, settings and
metrics.

The server is its own process (``python -m notebookswarm._demo``) on gevent; this module
never imports gevent, so a Jupyter kernel can import it. The process is stopped by
:meth:`DemoTarget.stop`, on garbage collection and at interpreter exit, and it exits by
itself when the process that started it dies.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from types import TracebackType
from typing import Any

from notebookswarm._demo.settings import ROUTES, Settings, check_stall
from notebookswarm.cluster.launch import reap
from notebookswarm.errors import ConfigError, NotebookSwarmError

__all__ = ["ROUTES", "DemoTarget", "Settings", "main", "start_target"]

#: Seconds an admin request may take; the admin endpoints never wait for the database.
ADMIN_TIMEOUT_S = 10.0
# Admin calls go straight to 127.0.0.1, never through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def start_target(
    *, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0, **settings: object
) -> DemoTarget:
    """Start the demo contest site in a subprocess and return it once it listens.

    ``settings`` are those of :class:`Settings`: ``pool_size`` (8), ``query_ms`` (20),
    ``jitter`` (0.1), ``queries`` (1 per endpoint), ``workers`` (32), ``listen_queue``
    (None: no limit), ``pool_timeout`` (30 s), ``cache`` (False), ``cache_ttl`` (5 s). A
    bad one raises ConfigError before anything starts. ``port=0`` picks a free port;
    ``target.url`` says which.
    """
    checked = Settings().updated(settings)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be an integer from 0 to 65535, got {port!r}")
    cmd = [
        sys.executable,
        "-m",
        "notebookswarm._demo",
        "--host",
        host,
        "--port",
        str(port),
        "--settings",
        json.dumps(checked.to_dict()),
        "--parent",
        str(os.getpid()),
    ]
    # Its own session: interrupting a kernel (SIGINT to its process group) or Ctrl-C in a
    # terminal must not kill the target; it exits when its parent does.
    process = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        line = _first_line(process, timeout)
    except BaseException:
        reap(process)
        raise
    info = json.loads(line)
    if "error" in info:
        reap(process)
        raise NotebookSwarmError(f"the demo target did not start: {info['error']}")
    return DemoTarget(process, str(info["url"]))


def _first_line(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """Read the child's announcement, giving up after ``timeout`` seconds or at its exit."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotebookSwarmError(
                    f"the demo target did not listen within {timeout:g} s: "
                    "pass a larger timeout= on a slow machine"
                )
            if not selector.select(left):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                code = process.wait(timeout=5)
                raise NotebookSwarmError(
                    f"the demo target exited with status {code} before listening; "
                    "its stderr says why"
                )
            data += chunk
    return data.split(b"\n", 1)[0]


class DemoTarget:
    """A running demo contest site: its ``url``, live settings, metrics and stalls."""

    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url
        # Runs on stop(), on garbage collection and at interpreter exit (kernel shutdown).
        self._finalizer = weakref.finalize(self, reap, process)

    @property
    def pid(self) -> int:
        """The server process's id."""
        return self.process.pid

    @property
    def metrics_url(self) -> str:
        """The Prometheus text exposition of the site's metrics (what ``watch`` reads)."""
        return f"{self.url}/metrics"

    @property
    def running(self) -> bool:
        """Whether the server process is still alive."""
        return self.process.poll() is None

    def settings(self) -> dict[str, Any]:
        """Return the settings in force, as plain values."""
        return dict(self._call("GET", "/admin/config"))

    def configure(self, **settings: object) -> dict[str, Any]:
        """Change settings from now on (e.g. ``pool_size=16, cache=True``); return them all.

        A bad value raises ConfigError naming it, and nothing changes. A smaller pool or
        fewer workers take effect as requests finish; ``cache=False`` empties the cache.
        """
        Settings().updated(settings)  # the same check the server makes, before sending
        return dict(self._call("POST", "/admin/config", settings))

    def capacity(self, endpoint: str = "problems") -> float:
        """Requests per second ``endpoint`` can take with the current settings, uncached."""
        return Settings().updated(self.settings()).capacity(endpoint)

    def metrics(self) -> dict[str, Any]:
        """Return the server's counters and gauges (see docs/demo-target.md)."""
        return dict(self._call("GET", "/admin/metrics"))

    def reset_metrics(self) -> dict[str, Any]:
        """Start the server's counters afresh and return them."""
        return dict(self._call("POST", "/admin/reset"))

    def stall(self, seconds: float = 1.0) -> None:
        """Hold every contest request for ``seconds`` from now, as if the server froze."""
        self._call("POST", f"/admin/stall?seconds={check_stall(seconds)!r}")

    def stop(self) -> int | None:
        """Stop the server and wait for its process; return its exit status."""
        self._finalizer()
        return self.process.returncode

    def __enter__(self) -> DemoTarget:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.process.returncode}"
        return f"<DemoTarget {self.url} pid={self.pid} {state}>"

    def _call(self, method: str, path: str, payload: object = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(request, timeout=ADMIN_TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                message = _error_message(exc.read())
            if exc.code == 400:
                raise ConfigError(message) from None
            raise NotebookSwarmError(f"{method} {path} answered {exc.code}: {message}") from None
        except OSError as exc:
            if not self.running:
                raise NotebookSwarmError(
                    f"the demo target (pid {self.pid}) has exited with status "
                    f"{self.process.returncode}: start another with start_target()"
                ) from None
            raise NotebookSwarmError(f"{method} {self.url}{path} failed: {exc}") from exc


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")


def _parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="python -m notebookswarm.demo",
        description="Run the demo contest site (a real bottleneck to load-test) until Ctrl-C.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port, 0 for any free (%(default)s)")
    p.add_argument("--pool-size", type=int, default=d.pool_size, help="database connections")
    p.add_argument("--query-ms", type=float, default=d.query_ms, help="milliseconds per query")
    p.add_argument("--jitter", type=float, default=d.jitter, help="query time ± this fraction")
    p.add_argument(
        "--queries",
        default="1",
        help="queries per request: N for every endpoint, or e.g. leaderboard=3,submit=2",
    )
    p.add_argument("--workers", type=int, default=d.workers, help="requests handled at once")
    p.add_argument(
        "--listen-queue", type=int, default=d.listen_queue, help="most waiting; more get 503"
    )
    p.add_argument("--pool-timeout", type=float, default=d.pool_timeout, help="seconds, then 503")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=d.cache)
    p.add_argument("--cache-ttl", type=float, default=d.cache_ttl, help="seconds")
    return p


def _queries(text: str) -> int | dict[str, int]:
    if text.strip().isdigit():
        return int(text)
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, count = part.partition("=")
        if not count.strip().isdigit():
            raise ConfigError(f"--queries takes N or endpoint=N,...; got {text!r}")
        out[name.strip()] = int(count)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the demo site in this process until Ctrl-C (``python -m notebookswarm.demo``)."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings().updated(
            {
                "pool_size": args.pool_size,
                "query_ms": args.query_ms,
                "jitter": args.jitter,
                "queries": _queries(args.queries),
                "workers": args.workers,
                "listen_queue": args.listen_queue,
                "pool_timeout": args.pool_timeout,
                "cache": args.cache,
                "cache_ttl": args.cache_ttl,
            }
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from notebookswarm._demo.process import serve  # gevent: only in this process

    def announce(url: str, port: int) -> None:
        print(f"demo contest site at {url}  (Ctrl-C to stop)")
        print(f"  settings: {json.dumps(settings.to_dict())}")
        print(f"  capacity: about {settings.capacity():.0f} requests/s per endpoint, uncached")
        print(f"  metrics:  curl {url}/metrics  (Prometheus text; JSON: {url}/admin/metrics)")
        print(f'  watch it: swarm.watch("{url}/metrics")', flush=True)

    try:
        return serve(settings, args.host, args.port, announce)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
