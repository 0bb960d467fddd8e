"""FastHttpUser's client against a real threaded server on 127.0.0.1.

The client needs gevent, and the pytest process must stay unpatched, so every test runs
the client in a fresh monkey-patched interpreter and checks what it prints. The server
runs on threads in this process, so the tests can see what reached it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from httptarget import RECORDER, Target, self_signed, serve_tls

PRELUDE = (
    """
from gevent import monkey
monkey.patch_all()
import json, sys
from notebookswarm.users.fasthttp import FastHttpUser
from notebookswarm.users.core import UserContext

"""
    + RECORDER
    + """

def make_client(host, **attributes):
    recorder = Recorder()
    cls = type("Visitor", (FastHttpUser,), {"host": host, **attributes})
    return cls(UserContext(recorder=recorder)).client, recorder

out = {}
"""
)
EPILOGUE = "\nprint(json.dumps(out))\n"


def run_client(body: str, **values: object) -> dict[str, Any]:
    """Run PRELUDE + body (with ``values`` as globals) in a fresh interpreter; return `out`."""
    assigns = "".join(f"{key} = {value!r}\n" for key, value in values.items())
    code = PRELUDE + assigns + textwrap.dedent(body) + EPILOGUE
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_fasthttp_does_not_import_gevent() -> None:
    """Importing notebookswarm.users.fasthttp in a fresh interpreter leaves gevent unimported."""
    code = (
        "import sys, notebookswarm.users.fasthttp\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('gevent', 'geventhttpclient', 'notebookswarm._http.fastclient')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_requests_are_recorded_under_name_or_url_as_written(server: Target) -> None:
    """A request is recorded under name= when given, else under the URL as written."""
    out = run_client(
        """
        client, rec = make_client(URL)
        r = client.get("/hello?x=1", name="/hello")
        client.get("/hello", params={"y": 2})
        client.post("/form", data={"a": "1"})
        client.request("put", "/thing", json={"k": [1, 2]})
        out["requests"] = rec.requests
        out["first"] = [r.status_code, r.text, r.ok, r.reason, r.url, r.headers["content-length"]]
        """,
        URL=server.url,
    )
    assert out["requests"] == [
        ["GET", "/hello", 2, None],
        ["GET", "/hello", 2, None],
        ["POST", "/form", 2, None],
        ["PUT", "/thing", 2, None],
    ]
    assert out["first"] == [200, "ok", True, "OK", server.url + "/hello?x=1", "2"]
    assert server.paths == ["/hello?x=1", "/hello?y=2", "/form", "/thing"]
    form, put = server.seen[2], server.seen[3]
    assert (form["body"], form["content-type"]) == ("a=1", "application/x-www-form-urlencoded")
    assert (put["body"], put["content-type"]) == ('{"k":[1,2]}', "application/json")


def test_headers_merge_session_call_and_auth(server: Target) -> None:
    """Session headers go with every request; a call's headers, auth and Host take precedence."""
    out = run_client(
        """
        client, rec = make_client(URL)
        client.headers["X-Team"] = "blue"
        client.headers["Accept"] = "text/plain"
        client.get("/a")
        client.get("/b", headers={"x-team": "red", "Host": "example.test"}, auth=("u", "p"))
        try:
            client.get("/c", verify=False)
        except TypeError as exc:
            out["unknown"] = str(exc)
        out["requests"] = len(rec.requests)
        """,
        URL=server.url,
    )
    first, second = server.seen
    assert (first["x-team"], first["accept"], first["host"]) == (
        "blue",
        "text/plain",
        server.url[7:],
    )
    assert (second["x-team"], second["host"]) == ("red", "example.test")
    assert second["authorization"] == "Basic dTpw"
    assert "['verify']" in out["unknown"]
    assert out["requests"] == 2


def test_catch_response_overrides_the_status(server: Target) -> None:
    """With catch_response, failure() fails a 200 and success() passes a 503."""
    out = run_client(
        """
        client, rec = make_client(URL)
        with client.get("/status/200", catch_response=True) as r:
            r.failure("wrong body")
        with client.get("/status/503", catch_response=True) as r:
            assert r.status_code == 503
            r.success()
        with client.get("/status/404", catch_response=True):
            pass
        out["requests"] = rec.requests
        """,
        URL=server.url,
    )
    assert out["requests"] == [
        ["GET", "/status/200", 6, "wrong body"],
        ["GET", "/status/503", 6, None],
        ["GET", "/status/404", 6, "HTTP 404 Not Found"],
    ]


def test_5xx_is_a_failure_with_status_text(server: Target) -> None:
    """A 503 answer is recorded as failed with "HTTP 503 Service Unavailable"."""
    out = run_client(
        """
        client, rec = make_client(URL)
        r = client.get("/status/503")
        out["requests"] = rec.requests
        out["response"] = [r.status_code, r.ok, r.error]
        """,
        URL=server.url,
    )
    assert out["requests"] == [["GET", "/status/503", 6, "HTTP 503 Service Unavailable"]]
    assert out["response"] == [503, False, None]


def test_connection_refused_is_a_failure_not_an_exception() -> None:
    """A closed port fails the request with the ConnectionRefusedError text and raises nothing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = run_client(
        """
        client, rec = make_client(URL)
        r = client.get("/")
        out["requests"] = rec.requests
        out["response"] = [r.status_code, r.ok, type(r.error).__name__, r.content.decode()]
        """,
        URL=f"http://127.0.0.1:{port}",
    )
    assert out["requests"] == [
        ["GET", "/", 0, "ConnectionRefusedError: [Errno 111] Connection refused"]
    ]
    assert out["response"] == [0, False, "ConnectionRefusedError", ""]


def test_stalled_server_times_out(server: Target) -> None:
    """A server that never answers fails the request with a TimeoutError after network_timeout."""
    out = run_client(
        """
        import time
        client, rec = make_client(URL, network_timeout=0.3)
        t0 = time.monotonic()
        client.get("/stall")
        client.get("/stall", timeout=0.1, name="short")
        out["elapsed"] = time.monotonic() - t0
        out["requests"] = rec.requests
        """,
        URL=server.url,
    )
    assert out["requests"] == [
        ["GET", "/stall", 0, "TimeoutError: timed out"],
        ["GET", "short", 0, "TimeoutError: timed out"],
    ]
    assert 0.4 <= out["elapsed"] < 10


def test_reset_connection_is_a_failure(server: Target) -> None:
    """A connection reset by the server fails the request with ConnectionResetError."""
    out = run_client(
        """
        client, rec = make_client(URL)
        client.get("/reset")
        out["requests"] = rec.requests
        """,
        URL=server.url,
    )
    [[method, name, nbytes, error]] = out["requests"]
    assert (method, name, nbytes) == ("GET", "/reset", 0)
    assert error.startswith("ConnectionResetError: [Errno 104]")


def test_keep_alive_reuses_one_connection(server: Target) -> None:
    """Many sequential requests to one host travel over a single connection."""
    out = run_client(
        """
        client, rec = make_client(URL)
        for i in range(25):
            client.get(f"/n/{i}")
        client.post("/n/post", json={"x": 1})
        client.get("/chunked")
        client.head("/n/head")
        client.get("/n/last")
        out["failures"] = [r for r in rec.requests if r[3] is not None]
        """,
        URL=server.url,
    )
    assert out["failures"] == []
    assert len(server.paths) == 29
    assert server.connections == 1


def test_connection_dropped_by_server_is_replaced(server: Target) -> None:
    """A GET on a kept-alive connection the server has hung up on is retried on a new one."""
    out = run_client(
        """
        client, rec = make_client(URL)
        client.get("/drop-after")
        client.get("/next")
        out["requests"] = rec.requests
        """,
        URL=server.url,
    )
    assert out["requests"] == [["GET", "/drop-after", 3, None], ["GET", "/next", 2, None]]
    assert server.connections == 2


def test_idle_connection_closed_by_server_is_not_reused(server: Target) -> None:
    """After a wait between tasks, a POST goes on a new connection if the server hung up."""
    out = run_client(
        """
        import time
        from notebookswarm._http.fastclient import IDLE_CHECK_AFTER_S
        client, rec = make_client(URL)
        client.get("/drop-after")
        time.sleep(IDLE_CHECK_AFTER_S + 0.2)  # the user's wait; longer than the check needs
        client.post("/after-wait", json={"n": 1})
        out["requests"] = rec.requests
        """,
        URL=server.url,
    )
    assert out["requests"] == [["GET", "/drop-after", 3, None], ["POST", "/after-wait", 2, None]]
    assert server.paths == ["/drop-after", "/after-wait"]
    assert server.connections == 2


def test_https_verifies_certificates_unless_insecure(tmp_path: Path) -> None:
    """A self-signed https host fails certificate verification, and works with insecure = True."""
    made = self_signed(tmp_path)
    if made is None:
        pytest.skip("needs the openssl command to make a certificate")
    target, thread = serve_tls(*made)
    try:
        out = run_client(
            """
            strict, rec = make_client(URL)
            strict.get("/strict")
            lax, _ = make_client(URL, insecure=True)
            out["lax"] = [lax.get("/lax").status_code, lax.get("/again").text]
            out["requests"] = rec.requests
            """,
            URL=f"https://localhost:{target.server_address[1]}",
        )
    finally:
        target.shutdown()
        target.server_close()
        thread.join(timeout=10)
    [[method, name, nbytes, error]] = out["requests"]
    assert (method, name, nbytes) == ("GET", "/strict", 0)
    assert error.startswith("SSLCertVerificationError:")
    assert out["lax"] == [200, "ok"]
    assert target.paths == ["/lax", "/again"]


def test_cookies_keep_to_their_paths(server: Target) -> None:
    """A cookie set at /app/set-cookie without Path goes to /app/... only."""
    out = run_client(
        """
        client, rec = make_client(URL)
        client.get("/app/set-cookie")
        out["inside"] = client.get("/app/echo-cookie").text
        out["outside"] = client.get("/echo-cookie").text
        """,
        URL=server.url,
    )
    assert out == {"inside": "app=1", "outside": ""}


def test_compressed_bodies_a_caller_asked_for_are_inflated(server: Target) -> None:
    """With Accept-Encoding asked for, gzip and deflate bodies arrive inflated (and are
    counted inflated, as requests counts them); a corrupt one is a failed request."""
    out = run_client(
        """
        client, rec = make_client(URL)
        client.headers["Accept-Encoding"] = "gzip, deflate"
        out["gzip"] = client.get("/gzip").text
        out["deflate"] = client.get("/deflate").text
        client.get("/bad-gzip")
        out["requests"] = rec.requests
        """,
        URL=server.url,
    )
    assert out["gzip"] == "squeezed " * 50
    assert out["deflate"] == "flat " * 50
    assert out["requests"] == [
        ["GET", "/gzip", 450, None],
        ["GET", "/deflate", 250, None],
        ["GET", "/bad-gzip", 0, out["requests"][2][3]],
    ]
    assert out["requests"][2][3].startswith("HTTPException: could not decode the gzip body")


def test_cookies_round_trip_per_user(server: Target) -> None:
    """A cookie the server sets is sent back by that user only, until the server clears it."""
    out = run_client(
        """
        client, rec = make_client(URL)
        other, _ = make_client(URL)
        client.get("/set-cookie")
        out["sent"] = client.get("/echo-cookie").text
        out["jar"] = client.cookies.get("session")
        out["other"] = other.get("/echo-cookie").text
        client.get("/clear-cookie")
        out["cleared"] = client.get("/echo-cookie").text
        """,
        URL=server.url,
    )
    assert out["sent"] == "session=abc123"
    assert out["jar"] == "abc123"
    assert out["other"] == ""
    assert out["cleared"] == ""


def test_relative_paths_join_the_host(server: Target) -> None:
    """Paths join the host's own path with one slash; absolute URLs are used as they are."""
    out = run_client(
        """
        client, rec = make_client(URL + "/api/")
        client.get("items")
        client.get("/items/1")
        client.get(URL + "/elsewhere")
        out["names"] = [r[1] for r in rec.requests]
        """,
        URL=server.url,
    )
    assert server.paths == ["/api/items", "/api/items/1", "/elsewhere"]
    assert out["names"] == ["items", "/items/1", server.url + "/elsewhere"]


def test_redirects_and_chunked_bodies(server: Target) -> None:
    """A redirect is followed and recorded once under the original name; chunked bodies decode."""
    out = run_client(
        """
        client, rec = make_client(URL)
        r = client.get("/redirect")
        out["redirect"] = [r.status_code, r.url, r.text]
        out["chunked"] = client.get("/chunked").text
        out["requests"] = rec.requests
        """,
        URL=server.url,
    )
    assert out["redirect"] == [200, server.url + "/status/200", "status"]
    assert out["chunked"] == "hello, world"
    assert out["requests"] == [["GET", "/redirect", 6, None], ["GET", "/chunked", 12, None]]
    assert server.paths == ["/redirect", "/status/200", "/chunked"]


def test_a_non_http_reply_and_too_many_headers_fail_as_in_urllib3(server: Target) -> None:
    """Another protocol's greeting fails at once as BadStatusLine, and a head of 100 header
    fields is refused while 99 pass (http.client's limit), with urllib3's error texts."""
    out = run_client(
        """
        import time
        client, rec = make_client(URL)
        t0 = time.monotonic()
        response = client.get("/not-http", timeout=5)
        out["fast"] = time.monotonic() - t0 < 2
        out["error"] = type(response.error).__name__
        out["ok"] = client.get("/headers/96").status_code
        client.get("/headers/97")
        out["requests"] = rec.requests
        """,
        URL=server.url,
    )
    assert out["fast"] is True
    assert out["error"] == "BadStatusLine"
    assert out["ok"] == 200
    assert out["requests"] == [
        ["GET", "/not-http", 0, "BadStatusLine: SSH-2.0-OpenSSH_9.2\r\n"],
        ["GET", "/headers/96", 4, None],
        ["GET", "/headers/97", 0, "HTTPException: got more than 100 headers"],
    ]
