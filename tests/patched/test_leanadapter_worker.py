"""HttpUser's lean transport against requests' own, request for request, in a patched process.

Each scenario runs in this gevent-patched interpreter (a worker's conditions) once with
``transport="lean"`` and once with ``transport="urllib3"``; what the task sees and what the
stats record must be the same, and what the target received must be the same too.
"""

from __future__ import annotations

import io
import os
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from notebookswarm._http.leanadapter import LeanAdapter
from notebookswarm.users.core import UserContext
from notebookswarm.users.http import HttpUser

from httptarget import ListRecorder, Target, self_signed, serve_tls

Scenario = Callable[[Any, dict[str, Any]], None]


def run_both(url: str, scenario: Scenario) -> dict[str, Any]:
    """Run ``scenario(client, seen)`` with each transport on ``url``; return what each saw.

    ``seen`` starts as ``{"calls": []}`` and gets the recorder's requests at the end.
    """
    out: dict[str, Any] = {}
    for transport in ("lean", "urllib3"):
        recorder = ListRecorder()
        cls = type("Visitor", (HttpUser,), {"host": url, "transport": transport})
        client = cls(UserContext(recorder=recorder)).client
        lean = isinstance(client.get_adapter(url), LeanAdapter)
        assert lean is (transport == "lean")
        seen: dict[str, Any] = {"calls": []}
        try:
            scenario(client, seen)
        finally:
            client.close()
        seen["requests"] = recorder.requests
        out[transport] = seen
    return out


def test_lean_and_urllib3_agree_on_what_a_task_sees(server: Target) -> None:
    """Status, reason, headers (a repeated field joined), text and its encoding, JSON,
    params, form and JSON bodies, HEAD, chunked and gzip bodies, 4xx: the same both ways."""

    def scenario(client: Any, seen: dict[str, Any]) -> None:
        def look(r: Any) -> None:
            seen["calls"].append(
                [
                    r.status_code,
                    r.reason,
                    r.ok,
                    r.url,
                    r.encoding,
                    r.text,
                    r.headers.get("content-type"),
                    r.headers.get("x-twice"),
                    r.headers.get("content-encoding"),
                    len(r.content),
                ]
            )

        look(client.get("/echo", params={"q": "a b"}, name="/echo"))
        echoed = client.post("/echo", data={"k": "v", "n": "1"}).json()
        headers = echoed["headers"]
        seen["form"] = [echoed["body"], headers["content-type"], headers["content-length"]]
        echoed = client.put("/echo", json={"x": [1, 2]}).json()
        seen["json"] = [echoed["body"], echoed["headers"]["content-type"]]
        echoed = client.post("/echo").json()
        seen["empty-post"] = echoed["headers"].get("content-length")
        echoed = client.get("/echo", headers={"X-Mine": "yes", "Host": "example.test"}).json()
        headers = echoed["headers"]
        seen["sent"] = [
            headers["x-mine"],
            headers["host"],
            headers["accept-encoding"],
            headers["user-agent"],
        ]
        look(client.get("/twice"))
        look(client.get("/gzip"))
        look(client.get("/deflate"))
        client.get("/bad-gzip", name="bad-gzip")
        look(client.get("/chunked"))
        look(client.get("/text-latin1"))
        look(client.head("/echo"))
        look(client.get("/status/404"))
        look(client.get("/status/503"))

    out = run_both(server.url, scenario)
    assert out["lean"] == out["urllib3"]
    calls = out["lean"]["calls"]
    assert calls[0][:4] == [200, "OK", True, server.url + "/echo?q=a+b"]
    assert calls[1][7] == "one, two"  # X-Twice sent twice
    assert calls[2][5] == "squeezed " * 50 and calls[2][8] == "gzip"
    assert calls[3][5] == "flat " * 50
    assert calls[4][5] == "hello, world"
    assert calls[5][4:6] == ["latin-1", "caf\u00e9"]
    [bad] = [r for r in out["lean"]["requests"] if r[1] == "bad-gzip"]
    # requests' ContentDecodingError, named by its zlib cause, both ways
    assert bad == ["GET", "bad-gzip", 0, bad[3]]
    assert bad[3].startswith("error: Error -3 while decompressing data")
    assert out["lean"]["form"] == ["k=v&n=1", "application/x-www-form-urlencoded", "7"]
    assert out["lean"]["json"] == ['{"x": [1, 2]}', "application/json"]
    assert out["lean"]["empty-post"] == "0"
    assert out["lean"]["sent"][:2] == ["yes", "example.test"]
    assert out["lean"]["requests"][-2:] == [
        ["GET", "/status/404", 6, "HTTP 404 Not Found"],
        ["GET", "/status/503", 6, "HTTP 503 Service Unavailable"],
    ]
    # Everything reached the target twice, once per transport, in the same order.
    paths = server.paths
    assert paths[: len(paths) // 2] == paths[len(paths) // 2 :]


def test_lean_and_urllib3_agree_on_cookies_and_redirects(server: Target) -> None:
    """A Set-Cookie lands in the session's jar and goes back; a cleared cookie is gone;
    a redirect is followed with its history; allow_redirects=False stops at the 302."""

    def scenario(client: Any, seen: dict[str, Any]) -> None:
        r = client.get("/set-cookie")
        seen["calls"].append([r.cookies.get("session"), client.cookies.get("session")])
        seen["calls"].append(client.get("/echo-cookie").text)
        client.get("/clear-cookie")
        seen["calls"].append([client.get("/echo-cookie").text, dict(client.cookies)])
        r = client.get("/redirect")
        seen["calls"].append([r.status_code, r.url, [h.status_code for h in r.history]])
        r = client.get("/redirect", allow_redirects=False)
        seen["calls"].append([r.status_code, r.headers["location"], r.is_redirect])

    out = run_both(server.url, scenario)
    assert out["lean"] == out["urllib3"]
    calls = out["lean"]["calls"]
    assert calls[0] == ["abc123", "abc123"]
    assert calls[1] == "session=abc123"
    assert calls[2] == ["", {}]
    assert calls[3] == [200, server.url + "/status/200", [302]]
    assert calls[4] == [302, "/status/200", True]
    assert [r[1] for r in out["lean"]["requests"]][-2:] == ["/redirect", "/redirect"]


def test_lean_and_urllib3_fail_alike(server: Target) -> None:
    """A refused connection, a read timeout and a reset connection are the same requests
    exceptions both ways, and the stats name the same causes."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}"

    def scenario(client: Any, seen: dict[str, Any]) -> None:
        attempts: list[tuple[str, dict[str, Any]]] = [
            (refused + "/x", {}),
            (server.url + "/stall", {"timeout": 0.3}),
            (server.url + "/reset", {}),
        ]
        for url, kwargs in attempts:
            try:  # requests' own request(): it raises what the recording one counts
                requests.Session.request(client, "GET", url, **kwargs)
            except requests.RequestException as exc:
                seen["calls"].append([type(exc).__name__, isinstance(exc, requests.Timeout)])
        client.get(refused + "/y", name="refused")
        client.get("/stall", timeout=0.3)

    out = run_both(server.url, scenario)
    assert out["lean"]["calls"] == out["urllib3"]["calls"]
    assert out["lean"]["calls"][:3] == [
        ["ConnectionError", False],
        ["ReadTimeout", True],
        ["ConnectionError", False],
    ]
    assert (
        out["lean"]["requests"]
        == out["urllib3"]["requests"]
        == [
            ["GET", "refused", 0, "ConnectionRefusedError: [Errno 111] Connection refused"],
            ["GET", "/stall", 0, "TimeoutError: timed out"],
        ]
    )


def test_lean_and_urllib3_agree_on_https_and_its_certificates(tmp_path: Path) -> None:
    """https with verify= the certificate's path works; the default bundle refuses a
    self-signed host with the same SSLError and stats text; verify=False gets through.
    The lean transport serves all of it from its own pools."""
    made = self_signed(tmp_path)
    if made is None:
        pytest.skip("needs the openssl command to make a certificate")
    target, thread = serve_tls(*made)
    https = f"https://localhost:{target.server_address[1]}"

    def scenario(client: Any, seen: dict[str, Any]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning for verify=False
            r = client.get(https + "/echo", verify=str(made[0]), name="trusted")
            seen["calls"].append([r.status_code, r.json()["path"], r.url])
            try:
                requests.Session.request(client, "GET", https + "/refused")
            except requests.exceptions.SSLError as exc:
                seen["calls"].append(type(exc).__name__)
            client.get(https + "/strict", name="strict")
            seen["calls"].append(client.get(https + "/lax", verify=False, name="lax").text)
            adapter = client.get_adapter(https)
            if isinstance(adapter, LeanAdapter):
                seen["pools"] = sorted(map(str, adapter._tls_pools))

    try:
        out = run_both(https, scenario)
    finally:
        target.shutdown()
        target.server_close()
        thread.join(timeout=10)
    pools = out["lean"].pop("pools")
    assert out["lean"] == out["urllib3"]
    assert out["lean"]["calls"] == [[200, "/echo", https + "/echo"], "SSLError", "ok"]
    trusted, strict, lax = out["lean"]["requests"]
    assert trusted[:2] == ["GET", "trusted"] and trusted[2] > 0 and trusted[3] is None
    assert strict[:3] == ["GET", "strict", 0]
    assert strict[3].startswith("SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert lax == ["GET", "lax", 2, None]
    # verify=True means the environment's CA bundle when one is set, as in requests
    default = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or "True"
    assert pools == sorted([str(made[0]), default, "False"])


def test_what_lean_leaves_to_requests_goes_through_requests(server: Target) -> None:
    """stream=True and a file body take requests' own adapter and still work."""

    def scenario(client: Any, seen: dict[str, Any]) -> None:
        r = client.get("/chunked", stream=True)
        seen["calls"].append([type(r.raw).__module__.split(".")[0], r.text])
        echoed = client.post("/echo", data=io.BytesIO(b"ab")).json()
        seen["calls"].append([echoed["body"], echoed["headers"].get("transfer-encoding")])
        r = client.get("/echo")
        seen["calls"].append(type(r.raw).__name__)

    out = run_both(server.url, scenario)
    assert out["lean"]["calls"][:2] == [["urllib3", "hello, world"], ["ab", None]]
    assert out["urllib3"]["calls"][:2] == out["lean"]["calls"][:2]
    assert out["lean"]["calls"][2] == "LeanRaw"
    assert out["urllib3"]["calls"][2] == "HTTPResponse"


def test_lean_and_urllib3_refuse_a_non_http_reply_and_too_many_headers(server: Target) -> None:
    """A greeting of another protocol fails at once as BadStatusLine (not at the timeout),
    and 100 response header fields are refused while 99 pass, both ways alike."""

    def scenario(client: Any, seen: dict[str, Any]) -> None:
        t0 = time.monotonic()
        client.get("/not-http", timeout=5)
        seen["calls"].append(time.monotonic() - t0 < 2)
        seen["calls"].append(client.get("/headers/96").status_code)  # 99 fields in all
        client.get("/headers/97")

    out = run_both(server.url, scenario)
    assert out["lean"] == out["urllib3"]
    assert out["lean"]["calls"] == [True, 200]
    assert out["lean"]["requests"] == [
        ["GET", "/not-http", 0, "BadStatusLine: SSH-2.0-OpenSSH_9.2\r\n"],
        ["GET", "/headers/96", 4, None],
        ["GET", "/headers/97", 0, "HTTPException: got more than 100 headers"],
    ]
