"""Unmodified locustfiles run in a real worker; statistics equal what the target counted."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest

from notebookswarm._local import LocalResult, run_local
from notebookswarm.testing import CountingServer
from notebookswarm.users.compat.single import debug_user

FILES = Path(__file__).resolve().parents[1] / "locustfiles"


def _run(file: str, host: str, **options: Any) -> LocalResult:
    """Run ``file`` from tests/locustfiles in one worker: 2 users for 1 s unless told."""
    settings: dict[str, Any] = {"users": 2, "spawn_rate": 50, "run_time": 1.0, **options}
    return run_local(FILES / file, host=host, **settings)


def _counts(result: LocalResult) -> dict[tuple[str, str], int]:
    return {key: s.requests for key, s in result.stats.endpoints.items()}


def test_taskset_style_file_counts_equal_the_target() -> None:
    """TaskSets with plain functions, an inline TaskSet with interrupt(): exact counts."""
    with CountingServer() as target:
        result = _run("taskset_style.py", host=target.url, users=3, run_time=1.5)
        assert _counts(result) == target.counts()
    assert ("GET", "/forum/leave") in target.counts()  # the nested set ran and left


def test_report_to_master_data_travels_with_every_report() -> None:
    """A request listener's counts sent through report_to_master add up to the target's."""
    with CountingServer() as target:
        result = _run("taskset_style.py", host=target.url, run_time=1.5, report_interval=0.25)
        sent = [r.custom for r in result.reports]
        assert all(isinstance(c, dict) for c in sent)  # every report, the final one too
        assert sum(c["requests"] for c in sent if c) == target.count() > 0


def test_tags_and_class_selection_by_name() -> None:
    """Only the named class runs, only its tasks tagged 'read' or untagged ones excluded."""
    with CountingServer() as target:
        result = _run("classes_tags.py", host=target.url, classes=["Reader"], tags=["read"])
        assert set(target.counts()) == {("GET", "/read")}
        assert _counts(result) == target.counts()


def test_lazy_locust_import_at_task_time_in_a_worker() -> None:
    """A task that imports locust when it runs gets our names and a WorkerRunner."""
    with CountingServer() as target:
        result = _run(
            "classes_tags.py",
            host=target.url,
            users=1,
            classes=["Reader"],
            exclude_tags=["read", "write"],
        )
        assert not result.stats.exceptions
        assert _counts(result) == target.counts() == {("GET", "/untagged"): target.count()}


def test_fasthttp_rest_counts_json_checks_as_failures() -> None:
    """rest() parses JSON, and a failed assert, failure() or bad JSON count as failures."""
    with CountingServer() as target:
        target.route("/api/ok", body=json.dumps({"status": "ok"}).encode())
        target.route("/api/other", body=json.dumps({"status": "degraded"}).encode())
        target.route("/api/text", body=b"plain text")
        result = _run("fasthttp_rest.py", host=target.url)
        assert _counts(result) == target.counts()
    stats = result.stats
    assert stats.endpoints[("GET", "/api/ok")].failures == 0
    other = stats.endpoints[("GET", "/api/other")]
    assert other.failures == other.requests > 0
    text = stats.endpoints[("POST", "/api/text")]
    assert text.failures == text.requests > 0
    errors = {name: error for (_, name, error) in stats.errors}
    assert errors["/api/other"] == "unexpected status degraded"
    assert errors["/api/text"].startswith("Could not parse response as JSON")


class _Quiet(SimpleXMLRPCRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def xmlrpc_target() -> Iterator[tuple[str, Counter[str]]]:
    """An XML-RPC server on 127.0.0.1 that counts every call by method name."""
    calls: Counter[str] = Counter()
    lock = threading.Lock()
    server = SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=_Quiet, logRequests=False)

    def counted(name: str, fn: object) -> object:
        def call(*args: object) -> object:
            with lock:
                calls[name] += 1
            return fn(*args)  # type: ignore[operator]

        return call

    def broken() -> None:
        raise ValueError("the server is broken")

    server.register_function(counted("get_time", lambda: 1234.5), "get_time")
    server.register_function(
        counted("get_random_number", lambda a, b: (a + b) // 2), "get_random_number"
    )
    server.register_function(counted("broken", broken), "broken")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_custom_xmlrpc_client_through_request_events(
    xmlrpc_target: tuple[str, Counter[str]],
) -> None:
    """A client firing environment.events.request is counted exactly, faults as failures."""
    url, calls = xmlrpc_target
    result = _run("xmlrpc_client.py", host=url, classes=["EventUser"])
    counts = {name: n for (kind, name), n in _counts(result).items() if kind == "xmlrpc"}
    assert counts == dict(calls)
    broken = result.stats.endpoints[("xmlrpc", "broken")]
    assert broken.failures == broken.requests > 0
    assert result.stats.endpoints[("xmlrpc", "get_time")].failures == 0


def test_custom_xmlrpc_client_through_measure(xmlrpc_target: tuple[str, Counter[str]]) -> None:
    """self.measure() records each call once; the fault's text is the failure's error."""
    url, calls = xmlrpc_target
    result = _run("xmlrpc_client.py", host=url, classes=["MeasureUser"])
    counts = _counts(result)
    assert counts[("xmlrpc", "measured_time")] == calls["get_time"]
    assert counts[("xmlrpc", "measured_broken")] == calls["broken"]
    assert not result.stats.exceptions
    [(_, name, error)] = list(result.stats.errors)
    assert name == "measured_broken" and error.startswith("Fault: <Fault 1:")


def test_debug_user_prints_every_request_as_it_happens() -> None:
    """debug_user() streams one line per request with status, and a summary that matches."""
    lines: list[str] = []
    with CountingServer() as target:
        target.route("/about/", status=404)
        code = debug_user(
            FILES / "taskset_style.py", host=target.url, run_time=0.7, write=lines.append
        )
        received = target.count()
    assert code == 0
    request_lines = [line for line in lines if " ms " in line]
    assert len(request_lines) == received > 0
    assert any(" 404 " in line and "FAILED HTTP 404" in line for line in request_lines)
    assert any(" 200 " in line for line in request_lines)
    assert lines[-1].startswith(f"{received} requests,")
