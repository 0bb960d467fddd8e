"""A keep-alive HTTP/1.1 test target on threads in the pytest process.

Shared by the HTTP client tests (``tests/patched/``) through the ``server`` fixture in
conftest: client and target run in the same process, so a test sees what reached it.
"""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["Handler", "ListRecorder", "Target", "self_signed", "serve_tls"]


class ListRecorder:
    """A recorder for client tests: keeps ``[method, name, nbytes, error]`` per request."""

    def __init__(self) -> None:
        self.requests: list[list[Any]] = []

    def record_request(
        self, method: str, name: str, latency_ns: int, nbytes: int, error: str | None
    ) -> None:
        assert latency_ns > 0
        self.requests.append([method, name, nbytes, error])

    def record_exception(self, exc: BaseException) -> None:
        raise AssertionError(f"user exception recorded: {exc!r}")


class Target(ThreadingHTTPServer):
    """A keep-alive HTTP/1.1 server that remembers connections and request paths."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.paths: list[str] = []
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()  # lets stalled handlers go at teardown
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out or vanish are part of these tests: stay quiet."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Target

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.paths.append(self.path)
            self.server.seen.append(
                {"method": self.command, "path": self.path, "body": body.decode()}
                | {k.lower(): v for k, v in self.headers.items()}
            )
        route = self.path.partition("?")[0]
        if route.startswith("/status/"):
            self.reply(int(route.rsplit("/", 1)[1]), b"status")
        elif route == "/set-cookie":
            self.reply(200, headers={"Set-Cookie": "session=abc123; Path=/; HttpOnly"})
        elif route == "/clear-cookie":
            self.reply(200, headers={"Set-Cookie": "session=; Max-Age=0; Path=/"})
        elif route == "/app/set-cookie":  # no Path: the cookie's path is /app
            self.reply(200, headers={"Set-Cookie": "app=1"})
        elif route.endswith("/echo-cookie"):
            self.reply(200, (self.headers.get("Cookie") or "").encode())
        elif route == "/stall":
            self.server.release.wait(10)
        elif route == "/not-http":  # another protocol's greeting, then nothing
            self.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n")
            self.wfile.flush()
            self.server.release.wait(10)
            self.close_connection = True
        elif route.startswith("/headers/"):  # this many fields besides Server, Date, Length
            count = int(route.rsplit("/", 1)[1])
            self.reply(200, b"many", {f"X-Field-{i}": str(i) for i in range(count)})
        elif route == "/reset":
            # SO_LINGER 0: close() sends RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif route == "/drop-after":
            self.reply(200, b"bye")  # says keep-alive, then hangs up anyway
            self.close_connection = True
        elif route == "/redirect":
            self.reply(302, headers={"Location": "/status/200"})
        elif route == "/gzip":
            self.reply(200, gzip.compress(b"squeezed " * 50), {"Content-Encoding": "gzip"})
        elif route == "/deflate":
            self.reply(200, zlib.compress(b"flat " * 50), {"Content-Encoding": "deflate"})
        elif route == "/bad-gzip":
            self.reply(200, b"not gzip at all", {"Content-Encoding": "gzip"})
        elif route == "/twice":  # a field sent twice: clients join the values
            self.reply(200, b"two", {"X-Twice": "one", "x-twice": "two"})
        elif route == "/echo":  # what arrived, as JSON
            seen: dict[str, Any] = {
                "method": self.command,
                "path": self.path,
                "body": body.decode(),
            }
            seen["headers"] = {k.lower(): v for k, v in self.headers.items()}
            self.reply(200, json.dumps(seen).encode(), {"Content-Type": "application/json"})
        elif route == "/text-latin1":
            self.reply(
                200, "caf\u00e9".encode("latin-1"), {"Content-Type": "text/plain; charset=latin-1"}
            )
        elif route == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n")
        else:
            self.reply(200, b"ok")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET


def self_signed(folder: Path) -> tuple[Path, Path] | None:
    """A certificate for ``localhost`` and its key, made with openssl; None without it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def serve_tls(cert: Path, key: Path) -> tuple[Target, threading.Thread]:
    """A Target speaking https with ``cert``, serving on a thread; shut it down after."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    target = Target()
    target.socket = context.wrap_socket(target.socket, server_side=True)
    thread = threading.Thread(target=target.serve_forever, daemon=True)
    thread.start()
    return target, thread
