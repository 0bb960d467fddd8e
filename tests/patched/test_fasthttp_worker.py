"""FastHttpUser's client against a real keep-alive server on 127.0.0.1, in a patched process.

Client and server run on greenlets of this one gevent-patched interpreter (see
``conftest.py``); the server remembers what reached it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notebookswarm._http.fastclient import IDLE_CHECK_AFTER_S, ConnectionPool, FastHttpSession
from notebookswarm.testing import FakeClock, wait_until
from notebookswarm.users.core import UserContext
from notebookswarm.users.fasthttp import FastHttpUser

from httptarget import ListRecorder, Target, self_signed, serve_tls

MakeClient = Callable[..., tuple[Any, ListRecorder]]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """Make FastHttpUser clients on a host (class attributes as given), each with its
    recorder; all are closed when the test ends."""
    made: list[Any] = []

    def make(host: str, **attributes: Any) -> tuple[Any, ListRecorder]:
        recorder = ListRecorder()
        cls = type("Visitor", (FastHttpUser,), {"host": host, **attributes})
        made.append(cls(UserContext(recorder=recorder)).client)
        return made[-1], recorder

    yield make
    for client in made:
        client.close()


def test_requests_are_recorded_under_name_or_url_as_written(
    server: Target, make_client: MakeClient
) -> None:
    """A request is recorded under name= when given, else under the URL as written."""
    client, rec = make_client(server.url)
    r = client.get("/hello?x=1", name="/hello")
    client.get("/hello", params={"y": 2})
    client.post("/form", data={"a": "1"})
    client.request("put", "/thing", json={"k": [1, 2]})
    assert rec.requests == [
        ["GET", "/hello", 2, None],
        ["GET", "/hello", 2, None],
        ["POST", "/form", 2, None],
        ["PUT", "/thing", 2, None],
    ]
    first = [r.status_code, r.text, r.ok, r.reason, r.url, r.headers["content-length"]]
    assert first == [200, "ok", True, "OK", server.url + "/hello?x=1", "2"]
    assert server.paths == ["/hello?x=1", "/hello?y=2", "/form", "/thing"]
    form, put = server.seen[2], server.seen[3]
    assert (form["body"], form["content-type"]) == ("a=1", "application/x-www-form-urlencoded")
    assert (put["body"], put["content-type"]) == ('{"k":[1,2]}', "application/json")


def test_headers_merge_session_call_and_auth(server: Target, make_client: MakeClient) -> None:
    """Session headers go with every request; a call's headers, auth and Host take precedence."""
    client, rec = make_client(server.url)
    client.headers["X-Team"] = "blue"
    client.headers["Accept"] = "text/plain"
    client.get("/a")
    client.get("/b", headers={"x-team": "red", "Host": "example.test"}, auth=("u", "p"))
    with pytest.raises(TypeError) as unknown:
        client.get("/c", verify=False)
    first, second = server.seen
    assert (first["x-team"], first["accept"], first["host"]) == (
        "blue",
        "text/plain",
        server.url[7:],
    )
    assert (second["x-team"], second["host"]) == ("red", "example.test")
    assert second["authorization"] == "Basic dTpw"
    assert "['verify']" in str(unknown.value)
    assert len(rec.requests) == 2


def test_catch_response_overrides_the_status(server: Target, make_client: MakeClient) -> None:
    """With catch_response, failure() fails a 200 and success() passes a 503."""
    client, rec = make_client(server.url)
    with client.get("/status/200", catch_response=True) as r:
        r.failure("wrong body")
    with client.get("/status/503", catch_response=True) as r:
        assert r.status_code == 503
        r.success()
    with client.get("/status/404", catch_response=True):
        pass
    assert rec.requests == [
        ["GET", "/status/200", 6, "wrong body"],
        ["GET", "/status/503", 6, None],
        ["GET", "/status/404", 6, "HTTP 404 Not Found"],
    ]


def test_5xx_is_a_failure_with_status_text(server: Target, make_client: MakeClient) -> None:
    """A 503 answer is recorded as failed with "HTTP 503 Service Unavailable"."""
    client, rec = make_client(server.url)
    r = client.get("/status/503")
    assert rec.requests == [["GET", "/status/503", 6, "HTTP 503 Service Unavailable"]]
    assert [r.status_code, r.ok, r.error] == [503, False, None]


def test_connection_refused_is_a_failure_not_an_exception(make_client: MakeClient) -> None:
    """A closed port fails the request with the ConnectionRefusedError text and raises nothing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client, rec = make_client(f"http://127.0.0.1:{port}")
    r = client.get("/")
    assert rec.requests == [
        ["GET", "/", 0, "ConnectionRefusedError: [Errno 111] Connection refused"]
    ]
    response = [r.status_code, r.ok, type(r.error).__name__, r.content.decode()]
    assert response == [0, False, "ConnectionRefusedError", ""]


def test_stalled_server_times_out(server: Target, make_client: MakeClient) -> None:
    """A server that never answers fails the request with a TimeoutError after network_timeout."""
    client, rec = make_client(server.url, network_timeout=0.3)
    t0 = time.monotonic()
    client.get("/stall")
    client.get("/stall", timeout=0.1, name="short")
    elapsed = time.monotonic() - t0
    assert rec.requests == [
        ["GET", "/stall", 0, "TimeoutError: timed out"],
        ["GET", "short", 0, "TimeoutError: timed out"],
    ]
    assert 0.4 <= elapsed < 10


def test_reset_connection_is_a_failure(server: Target, make_client: MakeClient) -> None:
    """A connection reset by the server fails the request with ConnectionResetError."""
    client, rec = make_client(server.url)
    client.get("/reset")
    [[method, name, nbytes, error]] = rec.requests
    assert (method, name, nbytes) == ("GET", "/reset", 0)
    assert error.startswith("ConnectionResetError: [Errno 104]")


def test_keep_alive_reuses_one_connection(server: Target, make_client: MakeClient) -> None:
    """Many sequential requests to one host travel over a single connection."""
    client, rec = make_client(server.url)
    for i in range(25):
        client.get(f"/n/{i}")
    client.post("/n/post", json={"x": 1})
    client.get("/chunked")
    client.head("/n/head")
    client.get("/n/last")
    assert [r for r in rec.requests if r[3] is not None] == []
    assert len(server.paths) == 29
    assert server.connections == 1


def test_connection_dropped_by_server_is_replaced(server: Target, make_client: MakeClient) -> None:
    """A GET on a kept-alive connection the server has hung up on is retried on a new one."""
    client, rec = make_client(server.url)
    client.get("/drop-after")
    client.get("/next")
    assert rec.requests == [["GET", "/drop-after", 3, None], ["GET", "/next", 2, None]]
    assert server.connections == 2


@pytest.fixture
def hung_up(server: Target) -> Iterator[tuple[FastHttpSession, ListRecorder, FakeClock]]:
    """A session whose pool measures idle time on a fake clock, after one GET /drop-after
    that the server answered and then hung up on (the hang-up seen by the client)."""
    clock, recorder = FakeClock(), ListRecorder()
    session = FastHttpSession(server.url, recorder)
    session._pool = ConnectionPool(clock=clock)
    session.get("/drop-after")
    [idle] = session._pool._idle.values()
    wait_until(lambda: _readable(idle[0].sock), timeout=5, message="the server's hang-up")
    yield session, recorder, clock
    session.close()


def _readable(sock: Any) -> bool:
    import select  # patched: a zero timeout does not wait

    return bool(select.select([sock], [], [], 0)[0])


def test_idle_connection_closed_by_server_is_not_reused(
    server: Target, hung_up: tuple[FastHttpSession, ListRecorder, FakeClock]
) -> None:
    """After a wait between tasks (on the pool's clock), a POST goes on a new connection
    if the server hung up."""
    client, rec, clock = hung_up
    clock.advance(IDLE_CHECK_AFTER_S + 0.2)  # the user's wait; longer than the check needs
    client.post("/after-wait", json={"n": 1})
    assert rec.requests == [["GET", "/drop-after", 3, None], ["POST", "/after-wait", 2, None]]
    assert server.paths == ["/drop-after", "/after-wait"]
    assert server.connections == 2


def test_back_to_back_requests_skip_the_idle_check(
    server: Target, hung_up: tuple[FastHttpSession, ListRecorder, FakeClock]
) -> None:
    """Within IDLE_CHECK_AFTER_S of the last answer (on the pool's clock) the pooled
    connection is taken without a check, so a POST on one the server hung up on fails."""
    client, rec, clock = hung_up
    clock.advance(IDLE_CHECK_AFTER_S - 0.1)
    client.post("/too-soon", json={"n": 1})
    [first, second] = rec.requests
    assert first == ["GET", "/drop-after", 3, None]
    assert second[:3] == ["POST", "/too-soon", 0] and second[3] is not None
    assert server.paths == ["/drop-after"]
    assert server.connections == 1


def test_https_verifies_certificates_unless_insecure(
    tmp_path: Path, make_client: MakeClient
) -> None:
    """A self-signed https host fails certificate verification, and works with insecure = True."""
    made = self_signed(tmp_path)
    if made is None:
        pytest.skip("needs the openssl command to make a certificate")
    target, thread = serve_tls(*made)
    url = f"https://localhost:{target.server_address[1]}"
    try:
        strict, rec = make_client(url)
        strict.get("/strict")
        lax, _ = make_client(url, insecure=True)
        assert [lax.get("/lax").status_code, lax.get("/again").text] == [200, "ok"]
    finally:
        target.shutdown()
        target.server_close()
        thread.join(timeout=10)
    [[method, name, nbytes, error]] = rec.requests
    assert (method, name, nbytes) == ("GET", "/strict", 0)
    assert error.startswith("SSLCertVerificationError:")
    assert target.paths == ["/lax", "/again"]


def test_cookies_keep_to_their_paths(server: Target, make_client: MakeClient) -> None:
    """A cookie set at /app/set-cookie without Path goes to /app/... only."""
    client, _ = make_client(server.url)
    client.get("/app/set-cookie")
    assert client.get("/app/echo-cookie").text == "app=1"
    assert client.get("/echo-cookie").text == ""


def test_compressed_bodies_a_caller_asked_for_are_inflated(
    server: Target, make_client: MakeClient
) -> None:
    """With Accept-Encoding asked for, gzip and deflate bodies arrive inflated (and are
    counted inflated, as requests counts them); a corrupt one is a failed request."""
    client, rec = make_client(server.url)
    client.headers["Accept-Encoding"] = "gzip, deflate"
    assert client.get("/gzip").text == "squeezed " * 50
    assert client.get("/deflate").text == "flat " * 50
    client.get("/bad-gzip")
    assert rec.requests == [
        ["GET", "/gzip", 450, None],
        ["GET", "/deflate", 250, None],
        ["GET", "/bad-gzip", 0, rec.requests[2][3]],
    ]
    assert rec.requests[2][3].startswith("HTTPException: could not decode the gzip body")


def test_cookies_round_trip_per_user(server: Target, make_client: MakeClient) -> None:
    """A cookie the server sets is sent back by that user only, until the server clears it."""
    client, _ = make_client(server.url)
    other, _ = make_client(server.url)
    client.get("/set-cookie")
    assert client.get("/echo-cookie").text == "session=abc123"
    assert client.cookies.get("session") == "abc123"
    assert other.get("/echo-cookie").text == ""
    client.get("/clear-cookie")
    assert client.get("/echo-cookie").text == ""


def test_relative_paths_join_the_host(server: Target, make_client: MakeClient) -> None:
    """Paths join the host's own path with one slash; absolute URLs are used as they are."""
    client, rec = make_client(server.url + "/api/")
    client.get("items")
    client.get("/items/1")
    client.get(server.url + "/elsewhere")
    assert server.paths == ["/api/items", "/api/items/1", "/elsewhere"]
    assert [r[1] for r in rec.requests] == ["items", "/items/1", server.url + "/elsewhere"]


def test_redirects_and_chunked_bodies(server: Target, make_client: MakeClient) -> None:
    """A redirect is followed and recorded once under the original name; chunked bodies decode."""
    client, rec = make_client(server.url)
    r = client.get("/redirect")
    assert [r.status_code, r.url, r.text] == [200, server.url + "/status/200", "status"]
    assert client.get("/chunked").text == "hello, world"
    assert rec.requests == [["GET", "/redirect", 6, None], ["GET", "/chunked", 12, None]]
    assert server.paths == ["/redirect", "/status/200", "/chunked"]


def test_a_non_http_reply_and_too_many_headers_fail_as_in_urllib3(
    server: Target, make_client: MakeClient
) -> None:
    """Another protocol's greeting fails at once as BadStatusLine, and a head of 100 header
    fields is refused while 99 pass (http.client's limit), with urllib3's error texts."""
    client, rec = make_client(server.url)
    t0 = time.monotonic()
    response = client.get("/not-http", timeout=5)
    assert time.monotonic() - t0 < 2
    assert type(response.error).__name__ == "BadStatusLine"
    assert client.get("/headers/96").status_code == 200
    client.get("/headers/97")
    assert rec.requests == [
        ["GET", "/not-http", 0, "BadStatusLine: SSH-2.0-OpenSSH_9.2\r\n"],
        ["GET", "/headers/96", 4, None],
        ["GET", "/headers/97", 0, "HTTPException: got more than 100 headers"],
    ]
