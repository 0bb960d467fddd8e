"""The ``FastHttpUser`` client: a lean HTTP/1.1 client of our own over gevent sockets.

Chosen by measurement (``bench/bench_http_clients.py``): against nginx on loopback it
did about 15x the requests per generator CPU-second of the ``requests``-based
``HttpSession``, 1.7x geventhttpclient's ``HTTPClient`` behind the same recording and
3x Locust's FastHttpSession. A request is one ``sendall`` of a pre-assembled head and,
for a small response, one ``recv`` parsed with ``bytes.find`` and ``str.split``: no
per-header callbacks, no per-request regexes, no queue or semaphore around the pool.
It is one client (pool, request, parser), kept in one module on purpose: the request path
is read top to bottom when profiling it, and splitting it would add calls to that path.

What it does: keep-alive connections reused per ``(scheme, host, port)``; cookies kept
per user with their domains, paths, expiry and ``Secure``
(:class:`~notebookswarm._http.cookies.CookieJar`); paths relative to ``base_url``; ``params``,
``data``, ``json``, ``headers``, ``auth``; redirects followed like ``requests`` does;
Content-Length, chunked and read-to-close bodies; https through gevent's ssl.
It asks for no compression; a gzip or deflate body that a caller asked for (with an
``Accept-Encoding`` header) is inflated. What it leaves out: other encodings (br, zstd
bodies stay as sent), proxies, streaming bodies, ``Expect: 100-continue``.

Timing, naming and the failure rules are the ones in :mod:`notebookswarm.users.http`: a
request is timed from just before its first byte is sent to when its body has been
read, recorded under ``name`` or the URL as written, and fails when it raises
(connection refused, timeout, reset, a malformed response) or answers 4xx/5xx. Nothing
a target does raises into the user's task. Errors on the wire are the standard ones::

    OSError                      from the socket: ConnectionRefusedError,
    ├── TimeoutError             ConnectionResetError, ssl.SSLError, ...
    └── ...
    http.client.HTTPException    from parsing the response
    ├── RemoteDisconnected       closed before a response (also a ConnectionResetError)
    ├── BadStatusLine            not an HTTP/1.x status line
    ├── IncompleteRead           closed in the middle of a body
    └── LineTooLong              response head larger than ``MAX_HEAD_BYTES``

This module imports gevent: only a worker (already monkey-patched) imports it, through
``FastHttpUser.__init__``.
"""

from __future__ import annotations

import base64
import contextlib
import json as jsonlib
import time
import zlib
from collections.abc import Callable, Mapping
from http.client import (
    BadStatusLine,
    HTTPException,
    IncompleteRead,
    LineTooLong,
    RemoteDisconnected,
)
from typing import Any, Final
from urllib.parse import quote, urlencode, urljoin, urlsplit

import gevent.socket
import gevent.ssl
from gevent.monkey import get_original
from requests.structures import CaseInsensitiveDict

from notebookswarm._http.common import (
    DEFAULT_TIMEOUT,
    MAX_HEADERS,
    CatchResponse,
    InFlight,
    describe_exception,
    describe_status,
    join_url,
)
from notebookswarm._http.cookies import CookieJar
from notebookswarm.stats.recorder import Recorder

#: A response head larger than this is refused (LineTooLong), like http.client does.
MAX_HEAD_BYTES: Final = 64 * 1024
#: Most idle connections kept per origin; a task's own greenlets can use more at once.
MAX_IDLE_PER_ORIGIN: Final = 10
#: Redirects followed before the request fails, as in requests.
MAX_REDIRECTS: Final = 30
#: A connection idle longer than this is checked for a close from the server before
#: reuse; a server's keep-alive timeout (2 s for gunicorn) would otherwise fail the
#: next request. Back-to-back requests skip the check and its system call.
IDLE_CHECK_AFTER_S: Final = 0.5

_RECV_SIZE: Final = 65536
#: URLs whose parse is remembered per session; the memo is emptied when it fills up.
_PARSED_URLS_KEPT: Final = 256
_NO_BODY_STATUSES: Final = frozenset((204, 304))
_REDIRECT_STATUSES: Final = frozenset((301, 302, 303, 307, 308))
_IDEMPOTENT: Final = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))
_BODY_METHODS: Final = frozenset(("POST", "PUT", "PATCH"))
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: Keywords besides the named ones; ``stream`` is accepted for Locust's sake and ignored
#: (the body is always read before the request is recorded).
_ACCEPTED_KWARGS: Final = frozenset(("allow_redirects", "auth", "stream"))
#: Characters left alone when a path or query with spaces or non-ASCII text is quoted.
_SAFE_IN_TARGET: Final = "/?&=%:@!$'()*+,;~#[]-._"
_real_select = get_original("select", "select")

Origin = tuple[str, str, int]
"""``(scheme, host, port)``: what a connection is pooled by."""


# --- responses ----------------------------------------------------------------------


class HTTPStatusError(HTTPException):
    """Raised by :meth:`FastResponse.raise_for_status` for a 4xx/5xx answer."""


class FastResponse:
    """What a request got back: status, headers and the whole body, already read.

    ``error`` is the exception when the request raised (then ``status_code`` is 0 and
    ``content`` empty); a 4xx/5xx answer is a response, not an error here, though the
    request is recorded as failed.
    """

    __slots__ = ("_headers", "_raw_headers", "content", "error", "reason", "status_code", "url")

    def __init__(
        self,
        url: str,
        status_code: int = 0,
        reason: str = "",
        raw_headers: list[tuple[str, str]] | None = None,
        content: bytes = b"",
        error: BaseException | None = None,
    ) -> None:
        self.url = url
        self.status_code = status_code
        self.reason = reason
        self.content = content
        self.error = error
        self._raw_headers = raw_headers or []
        self._headers: CaseInsensitiveDict[str] | None = None

    @property
    def headers(self) -> CaseInsensitiveDict[str]:
        """Response headers, case-insensitive; repeated ones joined by ", " as in requests."""
        if self._headers is None:
            merged: CaseInsensitiveDict[str] = CaseInsensitiveDict()
            for key, value in self._raw_headers:
                old = merged.get(key)
                merged[key] = value if old is None else f"{old}, {value}"
            self._headers = merged
        return self._headers

    @property
    def text(self) -> str:
        """The body decoded with the Content-Type charset, else UTF-8 (bad bytes replaced)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip("\"'")
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``json.JSONDecodeError`` if it is not)."""
        return jsonlib.loads(self.content)

    @property
    def ok(self) -> bool:
        """True when the request got an answer below 400."""
        return self.error is None and 0 < self.status_code < 400

    def __bool__(self) -> bool:
        return self.ok

    def raise_for_status(self) -> None:
        """Raise the request's exception, or :class:`HTTPStatusError` for a 4xx/5xx."""
        if self.error is not None:
            raise self.error
        message = describe_status(self.status_code, self.reason)
        if message is not None:
            raise HTTPStatusError(f"{message} for url {self.url}")

    def __enter__(self) -> FastResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"<FastResponse [{self.status_code}]>"


# --- the wire -----------------------------------------------------------------------


class _Connection:
    """A socket to one origin and when it last finished a response."""

    __slots__ = ("idle_since", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.idle_since = 0.0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _RawResponse:
    """A parsed response before it becomes a :class:`FastResponse`."""

    __slots__ = (
        "body",
        "coding",
        "headers",
        "keep_alive",
        "location",
        "reason",
        "set_cookies",
        "status",
    )

    def __init__(self) -> None:
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.keep_alive = True
        self.set_cookies: list[str] = []
        self.location: str | None = None
        self.coding: str | None = None  # Content-Encoding, lower case


class _Reader:
    """Reads one response from a socket; ``got_bytes`` tells whether any arrived."""

    __slots__ = ("buf", "got_bytes", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = b""
        self.got_bytes = False

    def _fill(self) -> bool:
        chunk: bytes = self.sock.recv(_RECV_SIZE)
        if not chunk:
            return False
        self.got_bytes = True
        self.buf += chunk
        return True

    def head(self) -> bytes:
        start = 0
        while True:
            end = self.buf.find(b"\r\n\r\n", start)
            if end >= 0:
                head, self.buf = self.buf[:end], self.buf[end + 4 :]
                return head
            if len(self.buf) > MAX_HEAD_BYTES:
                raise LineTooLong(f"response head (over {MAX_HEAD_BYTES} bytes)")
            self._check_status_line()
            start = max(0, len(self.buf) - 3)
            if not self._fill():
                if self.got_bytes:
                    self._check_status_line(final=True)
                    raise RemoteDisconnected("Remote end closed connection in the response head")
                raise RemoteDisconnected("Remote end closed connection without response")

    def _check_status_line(self, final: bool = False) -> None:
        """Raise BadStatusLine once a first line that is not HTTP's is in, as http.client.

        A server that speaks something else (an SSH banner, a line of text) then fails the
        request at once, not at its timeout nor as a disconnection. The error carries the
        line as http.client's does, line end included.
        """
        buf = self.buf
        end = buf.find(b"\n")
        if (end >= 0 or final) and not buf.startswith(b"HTTP/"):
            line = buf if end < 0 else buf[: end + 1]
            raise BadStatusLine(line[:200].decode("latin-1"))

    def exactly(self, size: int) -> bytes:
        if len(self.buf) < size:
            parts: list[bytes] = [self.buf]
            have = len(self.buf)
            while have < size:
                chunk: bytes = self.sock.recv(min(_RECV_SIZE, size - have))
                if not chunk:
                    raise IncompleteRead(b"".join(parts), size - have)
                parts.append(chunk)
                have += len(chunk)
            self.buf = b"".join(parts)
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def line(self) -> bytes:
        start = 0
        while True:
            end = self.buf.find(b"\r\n", start)
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2 :]
                return line
            if len(self.buf) > MAX_HEAD_BYTES:
                raise LineTooLong("chunk size line")
            start = max(0, len(self.buf) - 1)
            if not self._fill():
                raise IncompleteRead(self.buf)

    def chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_text = self.line().split(b";", 1)[0].strip()
            size = _parse_int(size_text, 16)
            if size is None:
                raise HTTPException(f"bad chunk size {size_text[:40]!r}")
            if size == 0:
                while self.line():  # trailer fields, then the empty line
                    pass
                return b"".join(parts)
            parts.append(self.exactly(size))
            if self.exactly(2) != b"\r\n":
                raise HTTPException("chunk not followed by CRLF")

    def to_eof(self) -> bytes:
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data


def _read_response(reader: _Reader, method: str) -> _RawResponse:
    """Read a whole response (skipping 1xx interim ones); the body is read in full."""
    raw = _RawResponse()
    length: int | None = None
    chunked = False
    while True:
        head = reader.head().decode("latin-1")
        status_line, _, header_block = head.partition("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise BadStatusLine(status_line[:100])
        raw.status = int(code)
        if raw.status >= 200:
            break
    raw.reason = reason.strip()
    connection = ""
    headers = raw.headers
    lines = header_block.split("\r\n") if header_block else ()
    # http.client counts the empty line that ends the head too: 99 fields pass, 100 do not.
    if len(lines) >= MAX_HEADERS:
        raise HTTPException(f"got more than {MAX_HEADERS} headers")  # http.client's words
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise HTTPException(f"malformed header line {line[:100]!r}")
        value = value.strip()
        headers.append((name, value))
        lower = name.lower()
        if lower == "content-length":
            length = _parse_int(value, 10)
            if length is None:
                raise HTTPException(f"bad Content-Length {value[:40]!r}")
        elif lower == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif lower == "connection":
            connection = value.lower()
        elif lower == "set-cookie":
            raw.set_cookies.append(value)
        elif lower == "location":
            raw.location = value
        elif lower == "content-encoding":
            raw.coding = value.lower()
    if version == "HTTP/1.1":
        raw.keep_alive = "close" not in connection
    else:
        raw.keep_alive = "keep-alive" in connection
    if method == "HEAD" or raw.status in _NO_BODY_STATUSES:
        pass
    elif chunked:
        raw.body = reader.chunked()
    elif length is not None:
        raw.body = reader.exactly(length)
    else:
        raw.body = reader.to_eof()
        raw.keep_alive = False
    if reader.buf:  # bytes nobody asked for: do not trust this connection again
        raw.keep_alive = False
    return raw


def _decompressed(body: bytes, coding: str) -> bytes:
    """A gzip or deflate body inflated (what a caller who asked for it gets); others as sent."""
    try:
        if coding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS) if body else body
        if coding == "deflate" and body:
            try:
                return zlib.decompress(body)  # zlib-wrapped, as the RFC says
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)  # raw, as some servers send
    except zlib.error as exc:
        raise HTTPException(f"could not decode the {coding} body: {exc}") from None
    return body


def _parse_int(text: str | bytes, base: int) -> int | None:
    """The non-negative integer ``text`` spells in ``base`` (digits only), else None.

    Not raising keeps the HTTPException the caller raises free of a ValueError context,
    which ``describe_exception`` would report instead.
    """
    if not (text.isascii() and text.isalnum()):  # no sign, space or "_" that int() allows
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def _is_dropped(sock: Any) -> bool:
    """True when an idle connection is readable: the server closed it (or sent junk)."""
    try:
        readable, _, _ = _real_select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


# --- the session --------------------------------------------------------------------


class FastHttpSession:
    """The ``self.client`` of a ``FastHttpUser``: records every request it makes.

    Methods take ``(url, name=None, catch_response=False, params=None, data=None,
    json=None, headers=None, timeout=None, allow_redirects=True, auth=None)`` and
    return a :class:`FastResponse`, or with ``catch_response=True``
    a :class:`~notebookswarm.users.http.CatchResponse` to use in a ``with`` block.
    ``headers`` set on the session go with every request. Certificates of https hosts
    are verified unless ``insecure=True``.
    """

    def __init__(
        self,
        base_url: str,
        recorder: Recorder,
        *,
        network_timeout: float = DEFAULT_TIMEOUT,
        connection_timeout: float = DEFAULT_TIMEOUT,
        insecure: bool = False,
    ) -> None:
        self.base_url = base_url
        self.recorder = recorder
        self.network_timeout = network_timeout
        self.headers: dict[str, str] = {}
        self.cookies = CookieJar()
        self.in_flight = InFlight()
        self._pool = ConnectionPool(connection_timeout, insecure)

    # Locust-style verbs. Each returns FastResponse, or CatchResponse when asked.
    def get(self, url: str, **kwargs: Any) -> Any:
        """Send a GET; see :meth:`request`."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: Any = None, json: Any = None, **kwargs: Any) -> Any:
        """Send a POST with a form (``data``) or JSON (``json``) body; see :meth:`request`."""
        return self.request("POST", url, data=data, json=json, **kwargs)

    def put(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        """Send a PUT; see :meth:`request`."""
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        """Send a PATCH; see :meth:`request`."""
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        """Send a DELETE; see :meth:`request`."""
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Any:
        """Send a HEAD (redirects are not followed unless asked); see :meth:`request`."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Any:
        """Send an OPTIONS; see :meth:`request`."""
        return self.request("OPTIONS", url, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        name: str | None = None,
        catch_response: bool = False,
        params: Any = None,
        data: Any = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send a request, read the whole answer and record it under ``(method, name)``.

        Returns a :class:`FastResponse` (``error`` set if the request raised), or with
        ``catch_response=True`` a ``CatchResponse`` whose ``success()``/``failure(msg)``
        decide how it counts. Mistakes in the call itself (an unknown keyword, a body
        that is not JSON-serialisable) raise, as they would with requests.
        """
        if kwargs and not kwargs.keys() <= _ACCEPTED_KWARGS:
            unknown = sorted(kwargs.keys() - _ACCEPTED_KWARGS)
            raise TypeError(
                f"FastHttpSession.request() got unexpected keyword(s) {unknown}: "
                f"it accepts {sorted(_ACCEPTED_KWARGS)} besides the named ones"
            )
        method = method.upper()
        full_url = join_url(self.base_url, url)
        if params:
            query = params if isinstance(params, str) else urlencode(params, doseq=True)
            full_url += ("&" if "?" in full_url else "?") + query
        body, content_type = _encode_body(data, json)
        extra = _request_headers(self.headers, headers, content_type, kwargs.get("auth"))
        timeout = self.network_timeout if timeout is None else timeout
        allow_redirects = bool(kwargs.get("allow_redirects", True))
        label = url if name is None else name

        start = time.perf_counter_ns()
        flight = self.in_flight.begin(method, label, start)
        try:
            response = self._send_following(method, full_url, body, extra, timeout, allow_redirects)
            error = describe_status(response.status_code, response.reason)
        except (OSError, HTTPException, ValueError) as exc:
            response = FastResponse(full_url, error=exc)
            error = describe_exception(exc)
        except Exception:  # a mistake in the call: it raises into the task, uncounted
            self.in_flight.end(flight)
            raise
        latency = time.perf_counter_ns() - start
        # Not reached when the runtime's kill cuts the request: it stays open for cut().
        self.in_flight.end(flight)
        nbytes = len(response.content)

        if catch_response:

            def record(final_error: str | None) -> None:
                self.recorder.record_request(method, label, latency, nbytes, final_error)

            return CatchResponse(response, error, record)
        self.recorder.record_request(method, label, latency, nbytes, error)
        return response

    def close(self) -> None:
        """Close every idle connection (a request later opens new ones)."""
        self._pool.close()

    def _send_following(
        self,
        method: str,
        url: str,
        body: bytes,
        extra: str,
        timeout: float,
        allow_redirects: bool,
    ) -> FastResponse:
        for _ in range(MAX_REDIRECTS + 1):
            raw = self._send(method, url, body, extra, timeout)
            if not (allow_redirects and raw.status in _REDIRECT_STATUSES and raw.location):
                body = raw.body if raw.coding is None else _decompressed(raw.body, raw.coding)
                return FastResponse(url, raw.status, raw.reason, raw.headers, body)
            url = urljoin(url, raw.location)
            if raw.status == 303 or (raw.status in (301, 302) and method == "POST"):
                # what browsers and requests do: the next hop is a GET without a body
                method, body = ("HEAD" if method == "HEAD" else "GET"), b""
                extra = _without_body_headers(extra)
        raise HTTPException(f"more than {MAX_REDIRECTS} redirects, the last to {url}")

    def _send(self, method: str, url: str, body: bytes, extra: str, timeout: float) -> _RawResponse:
        """Send one request with this user's cookies for its URL, and keep what it sets."""
        where = self._pool.where(url)
        (scheme, host, _), target, _ = where
        cookie = self.cookies.header_for(host, target, scheme == "https")
        if cookie:
            extra += f"Cookie: {cookie}\r\n"
        raw = self._pool.exchange(where, method, extra, body, timeout)
        if raw.set_cookies:
            self.cookies.update_from(host, target, raw.set_cookies)
        return raw


class ConnectionPool:
    """Keep-alive connections per origin, and the exchange of one request for its response.

    Shared by :class:`FastHttpSession` and :class:`notebookswarm._http.leanadapter.LeanAdapter`
    (the ``HttpUser`` transport): neither cookies nor redirects are its business.
    """

    def __init__(
        self,
        connection_timeout: float = DEFAULT_TIMEOUT,
        insecure: bool = False,
        ssl_context: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``ssl_context`` (a gevent ssl context) replaces the default one for https;
        ``clock`` is what the idle time of a connection is measured on."""
        self.clock = clock
        self.connection_timeout = connection_timeout
        self.insecure = insecure
        self._idle: dict[Origin, list[_Connection]] = {}
        self._parsed: dict[str, tuple[Origin, str, str]] = {}
        self._ssl_context: Any = ssl_context

    def where(self, url: str) -> tuple[Origin, str, str]:
        """``(origin, request target, Host value)`` of ``url``, remembered per URL."""
        where = self._parsed.get(url)
        if where is None:
            if len(self._parsed) >= _PARSED_URLS_KEPT:
                self._parsed.clear()
            where = self._parsed[url] = _parse_url(url)
        return where

    def exchange(
        self,
        where: tuple[Origin, str, str],
        method: str,
        extra: str,
        body: bytes,
        timeout: float | None,
        connect_timeout: float | None = None,
    ) -> _RawResponse:
        """Send one request on a pooled connection (retrying a stale one) and read it.

        ``extra`` holds the header lines (each ending in CRLF) besides ``Host`` (unless it
        starts with one) and ``Content-Length``, which this adds for the body it frames.
        """
        origin, target, netloc = where
        length_line = f"Content-Length: {len(body)}\r\n" if body or method in _BODY_METHODS else ""
        host_line = "" if extra.startswith("Host: ") else f"Host: {netloc}\r\n"
        payload = (f"{method} {target} HTTP/1.1\r\n{host_line}{extra}{length_line}\r\n").encode(
            "latin-1"
        ) + body

        idle = self._idle.get(origin)
        while True:
            connection = self._take_idle(idle)
            reused = connection is not None
            if connection is None:
                connection = self._connect(
                    origin, self.connection_timeout if connect_timeout is None else connect_timeout
                )
            sock = connection.sock
            reader = _Reader(sock)
            try:
                sock.settimeout(timeout)
                # One send() takes a whole request on a healthy connection; gevent's
                # sendall() would first ask the kernel for SO_SNDBUF, a system call.
                sent = sock.send(payload)
                if sent < len(payload):
                    sock.sendall(payload[sent:])
                raw = _read_response(reader, method)
            except BaseException as exc:
                connection.close()
                # A kept-alive connection the server closed just before we wrote to it:
                # nothing was processed, so one retry on a fresh connection is safe for
                # idempotent methods (what browsers and geventhttpclient do).
                if (
                    isinstance(exc, ConnectionError)
                    and reused
                    and not reader.got_bytes
                    and method in _IDEMPOTENT
                ):
                    idle = None
                    continue
                raise
            break
        if raw.keep_alive:
            self._give_back(origin, connection)
        else:
            connection.close()
        return raw

    def close(self) -> None:
        """Close every idle connection (a request later opens new ones)."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _take_idle(self, idle: list[_Connection] | None) -> _Connection | None:
        while idle:
            connection = idle.pop()
            if self.clock() - connection.idle_since < IDLE_CHECK_AFTER_S:
                return connection
            if not _is_dropped(connection.sock):
                return connection
            connection.close()
        return None

    def _give_back(self, origin: Origin, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = self.clock()
        idle.append(connection)

    def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        sock = gevent.socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._tls_context().wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _tls_context(self) -> Any:
        if self._ssl_context is None:
            context = gevent.ssl.create_default_context()
            if self.insecure:  # asked for: a test system with a self-signed certificate
                context.check_hostname = False
                context.verify_mode = gevent.ssl.CERT_NONE
            self._ssl_context = context
        return self._ssl_context


# --- building requests --------------------------------------------------------------


def _parse_url(url: str) -> tuple[Origin, str, str]:
    """Split a URL into its origin, the request target and the Host header value."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"cannot send to {url!r}: only http:// and https:// URLs work")
    port = parts.port or _DEFAULT_PORTS[scheme]
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if not target.isascii() or " " in target:
        target = quote(target, safe=_SAFE_IN_TARGET)
    return (scheme, host, port), target, parts.netloc.rpartition("@")[2]


def _encode_body(data: Any, json: Any) -> tuple[bytes, str | None]:
    """Return the body bytes and the Content-Type they imply (None: the caller's own)."""
    if json is not None:
        return jsonlib.dumps(json, separators=(",", ":")).encode(), "application/json"
    if data is None:
        return b"", None
    if isinstance(data, bytes):
        return data, None
    if isinstance(data, str):
        return data.encode(), None
    if isinstance(data, Mapping | list | tuple):
        return urlencode(data, doseq=True).encode(), "application/x-www-form-urlencoded"
    raise TypeError(
        f"data= must be bytes, str, a mapping or a list of pairs, got {type(data).__name__}"
    )


_BASE_HEADERS: Final = "User-Agent: notebookswarm\r\nAccept: */*\r\n"


def _request_headers(
    session_headers: Mapping[str, str],
    call_headers: Mapping[str, str] | None,
    content_type: str | None,
    auth: Any,
) -> str:
    """The header lines as one string; later sources win case-insensitively.

    A caller's own ``Host`` comes first (``_send`` then leaves out the URL's); a
    ``Content-Length`` is dropped, since the client frames the body itself.
    """
    if not session_headers and not call_headers and content_type is None and auth is None:
        return _BASE_HEADERS
    merged: dict[str, tuple[str, str]] = {
        "user-agent": ("User-Agent", "notebookswarm"),
        "accept": ("Accept", "*/*"),
    }
    if content_type is not None:
        merged["content-type"] = ("Content-Type", content_type)
    if auth is not None:
        user, password = auth
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        merged["authorization"] = ("Authorization", f"Basic {token}")
    for source in (session_headers, call_headers or {}):
        for key, value in source.items():
            value = str(value)
            if any(c in key or c in value for c in "\r\n") or ":" in key:
                raise ValueError(f"header {key!r}: {value!r} would break the request")
            merged[key.lower()] = (key, value)
    merged.pop("content-length", None)
    host = merged.pop("host", None)
    lines = "".join(f"{key}: {value}\r\n" for key, value in merged.values())
    return lines if host is None else f"Host: {host[1]}\r\n{lines}"


def _without_body_headers(extra: str) -> str:
    """Drop Content-Type from header lines when a redirect turns a POST into a GET."""
    lines = extra.split("\r\n")
    return "\r\n".join(line for line in lines if not line.lower().startswith("content-type:"))
