"""The embedded demo target: settings, metrics, stalls, its process's lifetime, and the knee."""

from __future__ import annotations

import gc
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from notebookswarm import demo
from notebookswarm._demo.target import _first_line
from notebookswarm.cluster.launch import reap
from notebookswarm.errors import ConfigError, NotebookSwarmError
from notebookswarm.stats.requests import RequestStats
from notebookswarm.testing import LocalResult, process_gone, run_local, wait_until

from fresh import python_output

UsersFile = Callable[[str], Path]


@pytest.fixture
def target() -> Iterator[demo.DemoTarget]:
    """A demo target with 5 ms queries, stopped after the test."""
    with demo.start_target(query_ms=5, jitter=0) as running:
        yield running
    assert not running.running


def call(
    url: str, method: str, path: str, body: object = None, form: str | None = None
) -> tuple[int, Any, float]:
    """Send one request on a fresh connection; return (status, JSON body, seconds taken)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    data: bytes | None = None
    if form is not None:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        data = form.encode()
    elif body is not None:
        data = json.dumps(body).encode()
    try:
        started = time.monotonic()
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        payload = json.loads(response.read())
        return response.status, payload, time.monotonic() - started
    finally:
        conn.close()


def children() -> set[int]:
    """The ids of every process below this one."""
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_importing_demo_never_imports_gevent() -> None:
    """Importing notebookswarm.demo (as a notebook kernel does) leaves gevent unimported."""
    code = (
        "import sys, notebookswarm.demo\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gevent', 'greenlet')))\n"
    )
    assert python_output(code) == "[]"


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"pool_size": 0}, "pool_size must be an integer >= 1, got 0"),
        ({"query_ms": -5}, "query_ms must be >= 0 milliseconds, got -5"),
        ({"jitter": 1.5}, "jitter must be a fraction from 0 to 1, got 1.5"),
        ({"cache": "yes"}, "cache must be True or False, got 'yes'"),
        ({"listen_queue": -1}, "listen_queue must be an integer >= 0 or None (no limit), got -1"),
        ({"queries": {"search": 1}}, "queries: unknown endpoint 'search'"),
        ({"pool": 8}, "unknown setting 'pool': the settings are pool_size, query_ms"),
        ({"port": 70000}, "port must be an integer from 0 to 65535, got 70000"),
    ],
)
def test_bad_setting_raises_before_anything_starts(settings: dict[str, Any], needle: str) -> None:
    """A bad setting raises a ConfigError naming the value and starts no process."""
    before = children()
    with pytest.raises(ConfigError) as info:
        demo.start_target(**settings)
    assert needle in str(info.value)
    assert children() == before


def test_settings_round_trip_and_bad_values_answer_400(target: demo.DemoTarget) -> None:
    """Settings changed through the handle read back the same; a bad value over HTTP answers
    400 naming it and changes nothing."""
    assert target.settings() == demo.Settings(query_ms=5, jitter=0).to_dict()
    changed = target.configure(pool_size=3, cache=True, cache_ttl=2.5, queries={"submit": 2})
    assert target.settings() == changed
    assert changed["pool_size"] == 3 and changed["cache"] is True and changed["cache_ttl"] == 2.5
    assert changed["queries"] == {
        "login": 1,
        "problems": 1,
        "problem": 1,
        "submit": 2,
        "leaderboard": 1,
    }
    assert target.capacity("submit") == pytest.approx(3 / (2 * 0.005))
    status, body, _ = call(target.url, "POST", "/admin/config", {"workers": -1})
    assert (status, body) == (400, {"error": "workers must be an integer >= 1, got -1"})
    status, body, _ = call(target.url, "POST", "/admin/config", {"query_ms": "fast"})
    assert (status, body["error"]) == (
        400,
        "query_ms must be >= 0 milliseconds, got 'fast'",
    )
    with pytest.raises(ConfigError, match=r"pool_size must be an integer >= 1, got 2\.5"):
        target.configure(pool_size=2.5)
    assert target.settings() == changed
    assert target.metrics()["pool_size"] == 3


def test_metrics_count_exactly_the_requests_sent(target: demo.DemoTarget) -> None:
    """Per-endpoint request and error counts equal what was sent; /metrics and /admin are not
    counted and take no database connection."""
    url = target.url
    sent = [
        ("POST", "/login", {"username": "ada"}, 200),
        ("GET", "/problems", None, 200),
        ("GET", "/problems", None, 200),
        ("GET", "/problems/3", None, 200),
        ("GET", "/problems/999", None, 404),
        ("POST", "/submit", {"problem": 1, "code": "print(42)"}, 200),
        ("POST", "/submit", {"problem": "one"}, 400),
        ("GET", "/leaderboard", None, 200),
        ("GET", "/nowhere", None, 404),
        ("DELETE", "/problems", None, 405),
    ]
    for method, path, body, expected in sent:
        status, _, _ = call(url, method, path, body)
        assert status == expected, (method, path)
    status, _, _ = call(url, "POST", "/login", form="username=grace&password=")
    assert status == 200
    call(url, "GET", "/admin/config")
    metrics = target.metrics()
    counts = {name: (e["requests"], e["errors"]) for name, e in metrics["endpoints"].items()}
    assert counts == {
        "login": (2, 0),
        "problems": (2, 0),
        "problem": (2, 1),
        "submit": (2, 1),
        "leaderboard": (1, 0),
        "other": (2, 2),
    }
    assert metrics["requests_total"] == len(sent) + 1
    # One query each, except the requests refused before the database (bad body, no route).
    assert metrics["queries"] == metrics["pool_acquired"] == len(sent) + 1 - 3
    assert metrics["in_flight"] == 0 and metrics["pool_in_use"] == 0
    assert target.reset_metrics()["requests_total"] == 0


def test_cache_hits_skip_the_database(target: demo.DemoTarget) -> None:
    """With the cache on, repeated reads are answered without a query until the TTL expires;
    writes always query."""
    target.configure(cache=True, cache_ttl=60)
    for _ in range(5):
        assert call(target.url, "GET", "/leaderboard")[0] == 200
    call(target.url, "POST", "/submit", {"problem": 2, "code": "x = 1"})
    metrics = target.metrics()
    assert (metrics["cache_hits"], metrics["cache_misses"], metrics["queries"]) == (4, 1, 2)
    target.configure(cache=False)
    assert target.metrics()["cache_entries"] == 0


def test_pool_timeout_answers_503(target: demo.DemoTarget) -> None:
    """A request that waits longer than pool_timeout for a connection answers 503 saying so."""
    target.configure(pool_size=1, query_ms=400, pool_timeout=0.1)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: call(target.url, "GET", "/problems"), range(2)))
    assert sorted(status for status, _, _ in answers) == [200, 503]
    [refused] = [body for status, body, _ in answers if status == 503]
    assert refused["error"] == "no database connection free after 0.1 s (pool_size=1)"
    assert target.metrics()["pool_timeouts"] == 1


def test_a_full_listen_queue_refuses_at_once_with_503(target: demo.DemoTarget) -> None:
    """One worker busy for 1 s and listen_queue=2: of six requests sent together one is
    served, two wait and are served, three are refused at once with a 503 that says why."""
    target.configure(workers=1, query_ms=1000, listen_queue=2)
    target.reset_metrics()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: call(target.url, "GET", "/problems"), range(6)))
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200, 200, 200, 503, 503, 503]
    refusals = [body["error"] for status, body, _ in answers if status == 503]
    assert all(text.startswith("listen queue full: 2 requests already wait") for text in refusals)
    served = sorted(seconds for status, _, seconds in answers if status == 200)
    refused = [seconds for status, _, seconds in answers if status == 503]
    assert max(refused) < served[0]  # refused before the first answer, not after a wait
    metrics = target.metrics()
    assert metrics["queue_refusals"] == 3
    assert metrics["endpoints"]["problems"]["errors"] == 3
    target.configure(listen_queue=None)
    assert target.settings()["listen_queue"] is None


def test_stall_holds_every_request_for_its_duration(target: demo.DemoTarget) -> None:
    """Contest requests sent during a 1 s stall finish no sooner than its end, while /metrics
    still answers at once."""
    stall = 1.0

    def timed_call() -> tuple[int, float, float]:
        status, _, seconds = call(target.url, "GET", "/problems")
        return status, seconds, time.monotonic()

    with ThreadPoolExecutor(4) as pool:
        before_stall = time.monotonic()
        target.stall(stall)
        futures = [pool.submit(timed_call) for _ in range(4)]
        wait_until(lambda: target.metrics()["in_flight"] == 4, timeout=5, message="4 held")
        during = target.metrics()
        results = [f.result(timeout=10) for f in futures]
    assert during["stall_remaining_s"] > 0 and during["stalls"] == 1
    assert [status for status, _, _ in results] == [200] * 4
    # The stall began after before_stall, so each answer comes at least `stall` after it.
    assert all(finished - before_stall >= stall for _, _, finished in results)
    assert all(seconds >= 0.9 * stall for _, seconds, _ in results)
    assert target.metrics()["stalled_requests"] == 4
    with pytest.raises(ConfigError, match="seconds must be > 0 seconds, got 0"):
        target.stall(0)
    status, body, _ = call(target.url, "POST", "/admin/stall?seconds=soon")
    assert (status, body["error"]) == (400, "seconds must be > 0 seconds, got 'soon'")


def test_target_exits_when_its_parent_is_killed() -> None:
    """A target whose starting process is SIGKILLed exits by itself within a few seconds."""
    code = (
        "import sys\n"
        "from notebookswarm import demo\n"
        "t = demo.start_target()\n"
        "print(t.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    pid = None
    try:
        pid = int(_first_line(parent, timeout=30))
        assert not process_gone(pid)
        parent.kill()
        parent.wait(timeout=5)
        wait_until(lambda: process_gone(pid), timeout=5, message="the orphaned target to exit")
    finally:
        assert parent.stdin is not None
        parent.stdin.close()
        reap(parent)
        if pid is not None and not process_gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_stop_reaps_the_process_and_can_be_repeated() -> None:
    """stop() ends the server process with status 0; stopping twice is harmless."""
    target = demo.start_target()
    assert call(target.url, "GET", "/leaderboard")[0] == 200
    assert target.stop() == 0
    assert target.stop() == 0
    assert process_gone(target.pid) and "exited 0" in repr(target)


def test_forgotten_target_is_stopped_when_collected() -> None:
    """A target whose handle is garbage collected (or left at exit) has its process stopped."""
    process = demo.start_target().process
    gc.collect()
    assert process.wait(timeout=10) == 0


def test_busy_port_is_reported_in_the_error() -> None:
    """Starting on a port that is taken raises an error that says why and leaves no process."""
    before = children()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(NotebookSwarmError, match=f"cannot listen on 127.0.0.1:{port}"):
            demo.start_target(port=port)
    assert children() == before


def test_terminal_command_serves_until_interrupted() -> None:
    """`python -m notebookswarm.demo` prints its URL, serves with the given flags and exits 0
    on Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "notebookswarm.demo", "--port", "0", "--pool-size", "3"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        line = _first_line(process, timeout=30).decode()
        assert line.startswith("demo contest site at http://127.0.0.1:")
        url = line.split()[4]
        status, settings, _ = call(url, "GET", "/admin/config")
        assert status == 200 and settings["pool_size"] == 3
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
    finally:
        reap(process)


def test_terminal_command_refuses_a_bad_flag() -> None:
    """A bad setting on the command line exits 2 with a message naming the value."""
    out = subprocess.run(
        [sys.executable, "-m", "notebookswarm.demo", "--port", "0", "--pool-size", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "pool_size must be an integer >= 1, got 0" in out.stderr


READER = """
from notebookswarm import FastHttpUser, constant, task

class Reader(FastHttpUser):
    wait_time = constant(0)

    @task
    def problems(self):
        self.client.get("/problems")
"""


def throughput(path: Path, url: str, users: int) -> tuple[float, float, LocalResult]:
    """Run ``users`` users without think time; return (steady requests/s, p50 s, result).

    The steady rate is the median over the half-second reports, leaving out the first and
    the last (users starting and stopping), so a moment of contention from another
    process on this 2-core machine does not read as the target's capacity.
    """
    result = run_local(
        path, host=url, users=users, spawn_rate=1000, run_time=3, report_interval=0.5
    )
    total = result.stats.total()
    assert total.failures == 0
    assert result.heartbeat is not None and result.heartbeat.cpu_percent < 85, (
        "the load generator saturated: scale the test down (query_ms=40)"
    )
    rates = [
        RequestStats.from_wire(r.stats).total().requests / (r.end - r.start)
        for r in result.reports[1:-1]
    ]
    return statistics.median(rates), total.latency.percentile(0.5) / 1e9, result


def test_throughput_plateaus_at_pool_size_over_query_time(users_file: UsersFile) -> None:
    """With 8 connections and 20 ms queries throughput levels off within 20% of 400 req/s
    while latency climbs, and 16 connections double the plateau."""
    path = users_file(READER)
    plateaus = []
    with demo.start_target(pool_size=8, query_ms=20) as target:
        for pool_size in (8, 16):
            target.configure(pool_size=pool_size)
            capacity = target.capacity()
            assert capacity == pool_size / 0.020
            target.reset_metrics()
            past, p50_past, first = throughput(path, target.url, users=2 * pool_size)
            far, p50_far, second = throughput(path, target.url, users=4 * pool_size)
            assert past == pytest.approx(capacity, rel=0.2)
            assert far == pytest.approx(capacity, rel=0.2)
            assert far == pytest.approx(past, rel=0.1)  # a plateau: more users, no more rps
            assert p50_far > 1.6 * p50_past  # ... as requests wait longer instead
            metrics = target.metrics()
            assert metrics["pool_wait_ms_mean"] > 10  # and the server says why: the pool
            sent = first.stats.total().requests + second.stats.total().requests
            assert metrics["requests_total"] == sent
            plateaus.append(far)
    assert plateaus[1] / plateaus[0] == pytest.approx(2.0, rel=0.2)


def test_the_demo_command_finds_a_knee_and_writes_its_report(tmp_path: Path) -> None:
    """`python -m notebookswarm demo` (what `make demo` runs), with short steps: it prints
    the step table and a knee, writes the HTML report and a run that loads back with the
    requests it printed, and leaves no process behind."""
    from notebookswarm.notebook.run import Run

    before = children()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "notebookswarm",
            "demo",
            "--start",
            "20",
            "--step",
            "40",
            "--every",
            "2",
            "--until",
            "100",
            "--workers",
            "1",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "knee: about" in done.stdout
    assert "\nwhy: " in done.stdout  # the server's side, from its watched /metrics
    assert "littles_law_ok" in done.stdout
    report = tmp_path / "out" / "report.html"
    assert report.stat().st_size > 100_000  # plotly.js is inlined
    run = Run.load(tmp_path / "out" / "run")
    assert int(run.stats.loc[run.stats["name"] == "Aggregated", "requests"].iloc[0]) > 0
    wait_until(lambda: children() <= before, timeout=10, message="the demo's processes to end")
