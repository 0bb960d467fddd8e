"""The watcher against real local servers that behave, die, dawdle, answer HTML or fail."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from notebookswarm.cluster.launch import reap
from notebookswarm.errors import ConfigError
from notebookswarm.notebook.watch import Watcher
from notebookswarm.testing import wait_until


class Handler(BaseHTTPRequestHandler):
    """`/ok` counts its own scrapes; `/slow` answers in 5 s; `/html` a page; `/fail` 500."""

    scrapes = 0
    release = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/ok":
            Handler.scrapes += 1
            self._answer(200, "text/plain", f"scrapes_total {Handler.scrapes}\nup 1\n")
        elif self.path == "/slow":
            Handler.release.wait(5.0)
            self._answer(200, "text/plain", "up 1\n")
        elif self.path == "/html":
            self._answer(200, "text/html", "<html><body>Welcome to the shop</body></html>")
        else:
            self._answer(500, "text/plain", "internal error: database is on fire")

    def _answer(self, status: int, kind: str, text: str) -> None:
        body = text.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the watcher gave up waiting and closed: nobody to answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve() -> ThreadingHTTPServer:
    """Start a threaded HTTP server on a free port of 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer]]:
    """One server that lives through the test and one that the test kills."""
    Handler.scrapes = 0
    Handler.release.clear()
    lasting, dying = serve(), serve()
    yield lasting, dying
    Handler.release.set()
    for server in (lasting, dying):
        server.shutdown()
        server.server_close()


def url(server: ThreadingHTTPServer, path: str) -> str:
    """The URL of `path` on `server`."""
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def ticks(frame: pd.DataFrame, source: str) -> list[float]:
    """The distinct seconds at which `source` has rows (or errors)."""
    times = frame.loc[frame["source"] == source, "time"]
    return sorted({t.timestamp() for t in times})


def test_bad_sources_cost_errors_never_the_pace(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    """A source that dies mid-run, one that answers in 5 s, one that answers HTML and one
    that answers 500 each leave an error row in their seconds, while a healthy source keeps
    a row every second and every second of every source is accounted for exactly once."""
    lasting, dying = servers
    watcher = Watcher(every=1.0, timeout=2.0)
    try:
        watcher.watch(url(lasting, "/ok"), name="ok")
        watcher.watch(url(dying, "/ok"), name="dying")
        watcher.watch(url(lasting, "/slow"), name="slow")
        watcher.watch(url(lasting, "/html"), name="html")
        watcher.watch(url(lasting, "/fail"), name="fail")

        def seen(source: str, count: int) -> bool:
            return len(ticks(watcher.frame(), source)) >= count

        wait_until(lambda: seen("dying", 2), timeout=10, message="2 scrapes of the dying one")
        dying.shutdown()
        dying.server_close()
        wait_until(lambda: seen("ok", 8), timeout=20, message="8 seconds of the healthy one")
    finally:
        watcher.stop()
    rows, errors = watcher.frame(), watcher.errors()
    ok = ticks(rows, "ok")
    assert [b - a for a, b in itertools.pairwise(ok)] == [1.0] * (len(ok) - 1)
    assert all(t == int(t) for t in ok)  # on the whole-second grid
    assert errors[errors["source"] == "ok"].empty
    up = rows[(rows["source"] == "ok") & (rows["metric"] == "up")]
    assert (up["value"] == 1.0).all()
    last = max(ok)
    for source in ("dying", "slow", "html", "fail"):
        covered = ticks(rows, source) + ticks(errors, source)
        assert len(covered) == len(set(covered)), f"{source}: a second counted twice"
        covered = [t for t in covered if t <= last]
        assert covered == [ok[0] + i for i in range(len(covered))], f"{source}: a second lost"
        assert len(covered) >= len(ok) - 1
    kinds = {name: set(part["kind"]) for name, part in errors.groupby("source")}
    assert kinds["dying"] == {"down"} and len(ticks(rows, "dying")) >= 2
    assert kinds["slow"] <= {"timeout", "missed"} and "timeout" in kinds["slow"]
    assert kinds["html"] == {"garbage"}
    assert kinds["fail"] == {"http"}
    fail = errors.loc[errors["source"] == "fail", "message"].iloc[0]
    assert "HTTP 500" in fail and "database is on fire" in fail
    assert "HTML page" in errors.loc[errors["source"] == "html", "message"].iloc[0]
    assert ticks(rows, "slow") == []


def test_counter_rates_match_the_servers_count(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    """The rate of a counter that grows by one per scrape is one per second, exactly on a
    one-second grid (within the scrapes' timing jitter)."""
    lasting, _ = servers
    with Watcher(every=1.0) as watcher:
        watcher.watch(url(lasting, "/ok"), name="ok")
        wait_until(lambda: len(watcher.frame()) >= 10, timeout=20, message="10 rows")
    rates = watcher.frame().query("kind == 'rate'")["value"]
    assert rates.sum() == pytest.approx(len(rates), rel=0.02)


def test_a_callable_that_raises_or_hangs_costs_its_seconds_only() -> None:
    """A callable that raises is an `error` row; one that hangs is a `timeout`, then `missed`
    while it still runs; a good callable beside them keeps one row a second."""
    gate = threading.Event()
    calls = {"n": 0}

    def hangs() -> dict[str, float]:
        gate.wait(30)
        return {"x": 1}

    def counts() -> dict[str, float]:
        calls["n"] += 1
        return {"calls_total": calls["n"], "depth": 2}

    def raises() -> dict[str, float]:
        raise RuntimeError("the admin API is down")

    watcher = Watcher(every=1.0, timeout=1.5)
    try:
        watcher.watch(hangs)
        watcher.watch(counts)
        watcher.watch(raises)
        wait_until(lambda: len(ticks(watcher.frame(), "counts")) >= 5, timeout=15, message="5 s")
    finally:
        gate.set()
        watcher.stop()
    errors = watcher.errors()
    assert set(errors.loc[errors["source"] == "hangs", "kind"]) == {"timeout", "missed"}
    raised = errors[errors["source"] == "raises"]
    assert set(raised["kind"]) == {"error"}
    assert "RuntimeError: the admin API is down" in raised["message"].iloc[0]
    depth = watcher.frame().query("source == 'counts' and metric == 'depth'")
    assert (depth["value"] == 2).all() and len(depth) >= 5


def test_a_process_is_watched_until_it_exits() -> None:
    """A local pid gives CPU (as a rate in cores), memory and threads, and `down` once the
    process has exited."""
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: pass"])
    try:
        with Watcher(every=1.0) as watcher:
            watcher.watch(child.pid, name="spin", children=True)
            wait_until(
                lambda: "process_cpu_seconds_total" in set(watcher.frame()["metric"]),
                timeout=10,
                message="a CPU rate",
            )
            reap(child)
            wait_until(lambda: len(watcher.errors()) >= 1, timeout=10, message="a down row")
    finally:
        reap(child)
    rows = watcher.frame()
    cpu = rows.loc[rows["metric"] == "process_cpu_seconds_total", "value"]
    # A busy loop keeps a core busy when it gets one; on a shared machine, a share of one.
    assert 0.05 < cpu.max() < 1.5
    assert rows.loc[rows["metric"] == "process_resident_memory_bytes", "value"].min() > 1e6
    assert set(rows["metric"]) >= {"process_threads", "process_open_fds", "process_children"}
    assert set(watcher.errors()["kind"]) == {"down"}


def test_bad_arguments_fail_before_anything_starts() -> None:
    """A target that is neither a URL, a pid nor a callable, a bad interval or a name used
    twice raise ConfigError naming the fix."""
    with Watcher() as watcher:
        with pytest.raises(ConfigError, match="Prometheus URL"):
            watcher.watch(3.5)
        with pytest.raises(ConfigError, match="http"):
            watcher.watch("ftp://example/metrics")
        with pytest.raises(ConfigError, match="every"):
            watcher.watch(lambda: {}, every=0)
        watcher.watch(lambda: {}, name="twice")
        with pytest.raises(ConfigError, match="already watched"):
            watcher.watch(lambda: {}, name="twice")
    with pytest.raises(ConfigError, match="stopped"):
        watcher.watch(lambda: {})
