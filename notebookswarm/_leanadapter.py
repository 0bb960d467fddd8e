"""The ``HttpUser`` transport: requests' ``Session`` above, the lean wire of ``FastHttpUser`` below.

In a profile of an ``HttpUser`` worker, requests' ``HTTPAdapter`` (urllib3 and http.client,
headers parsed with ``email.parser``) was half of every request's CPU. :class:`LeanAdapter`
replaces only that layer for ``http://`` URLs: it writes the prepared request on a pooled
keep-alive connection with :class:`~notebookswarm._fastclient.ConnectionPool` and builds a
``requests.Response`` from the parsed answer. Everything above the adapter is requests'
own and unchanged: sessions, cookies, auth, hooks, redirects, ``Response``, exceptions.

What differs, by design:

- ``response.raw`` is a stand-in whose body has already been read (``read()`` returns
  ``b""``); the body is in ``response.content`` as always.
- Requests it does not handle itself go to requests' own ``HTTPAdapter``, unchanged:
  ``stream=True``, proxies, client certificates, and bodies that are files or generators.
  ``https://`` URLs are never mounted on it (certificates are verified exactly as
  requests does).
- Compressed bodies (gzip, deflate, br, zstd, whatever urllib3 can decode here) are
  decoded with urllib3's decoders, so ``Accept-Encoding`` means what it meant.

Errors keep requests' types: a refused or failed connection is ``requests.ConnectionError``,
a connect timeout ``requests.ConnectTimeout``, a read timeout ``requests.ReadTimeout``,
each raised from the socket's own error, which is what a failed request's stats name.

Imports gevent (through ``_fastclient``): ``HttpSession`` mounts it only in a
monkey-patched worker.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from http.client import HTTPException
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, select_proxy

from notebookswarm._fastclient import ConnectionPool, Origin, _Connection, _RawResponse


class _SetCookies:
    """The ``msg`` of a response as ``http.cookiejar`` reads it: only ``get_all``."""

    __slots__ = ("values",)

    def __init__(self, values: list[str]) -> None:
        self.values = values

    def get_all(self, name: str, default: Any = None) -> Any:
        if name.lower() == "set-cookie":
            return list(self.values)
        return default


class _Original:
    __slots__ = ("msg",)

    def __init__(self, values: list[str]) -> None:
        self.msg = _SetCookies(values)


class LeanRaw:
    """``response.raw`` of a lean response: the body is already in ``response.content``."""

    __slots__ = ("_original_response", "headers", "reason", "status")

    def __init__(self, raw: _RawResponse, headers: Mapping[str, str]) -> None:
        self.status = raw.status
        self.reason = raw.reason
        self.headers = headers
        # requests copies cookies only from a response with an _original_response.
        self._original_response = _Original(raw.set_cookies) if raw.set_cookies else None

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return b""

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        return iter(())

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class _Pool(ConnectionPool):
    """The connection pool, with failures to connect raised as requests' exceptions."""

    def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        try:
            return super()._connect(origin, timeout)
        except TimeoutError as exc:
            raise requests.ConnectTimeout(exc) from exc
        except OSError as exc:
            raise requests.ConnectionError(exc) from exc


def _timeouts(timeout: Any) -> tuple[float | None, float | None]:
    """requests' ``timeout``: seconds, ``(connect, read)``, or None for none."""
    if isinstance(timeout, tuple):
        connect, read = timeout
        return connect, read
    return timeout, timeout


def _header_lines(headers: Mapping[Any, Any]) -> str:
    """The prepared request's headers as lines; ``Host`` first, no ``Content-Length``."""
    host = ""
    lines = []
    for key, value in headers.items():
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        lower = key.lower()
        if lower == "content-length":  # the pool frames the body itself
            continue
        if lower == "host":
            host = f"Host: {value}\r\n"
            continue
        lines.append(f"{key}: {value}\r\n")
    return host + "".join(lines)


def _decoded(body: bytes, headers: Mapping[str, str], request: Any) -> bytes:
    """The body with its Content-Encoding undone by urllib3, as requests would get it."""
    wrapper = urllib3.HTTPResponse(
        body=io.BytesIO(body),
        headers=dict(headers),
        preload_content=False,
        decode_content=True,
    )
    try:
        data: bytes = wrapper.read(decode_content=True)
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc, request=request) from exc
    return data


class LeanAdapter(HTTPAdapter):
    """requests' transport adapter for ``http://`` URLs, on notebookswarm's lean wire."""

    def __init__(self) -> None:
        super().__init__()
        self._pool = _Pool()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request``; hand what this adapter does not do to requests' own."""
        url = request.url or ""
        body = request.body
        if (
            stream
            or cert
            or not (body is None or isinstance(body, bytes | str))
            or (proxies and select_proxy(url, proxies))
        ):
            return super().send(request, stream, timeout, verify, cert, proxies)
        payload = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        connect_timeout, read_timeout = _timeouts(timeout)
        try:
            raw = self._pool.exchange(
                self._pool.where(url),
                request.method or "GET",
                _header_lines(request.headers),
                payload,
                read_timeout,
                connect_timeout,
            )
        except requests.RequestException:
            raise
        except TimeoutError as exc:
            raise requests.ReadTimeout(exc, request=request) from exc
        except (OSError, HTTPException) as exc:
            raise requests.ConnectionError(exc, request=request) from exc
        return self._response(request, raw)

    def _response(self, request: requests.PreparedRequest, raw: _RawResponse) -> requests.Response:
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in raw.headers:  # repeated fields joined, as urllib3 does
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        response = requests.Response()
        response.status_code = raw.status
        response.reason = raw.reason
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        response.url = request.url or ""
        response.request = request
        response.connection = self
        body = raw.body
        if body and "content-encoding" in headers:
            body = _decoded(body, headers, request)
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]
        response.raw = LeanRaw(raw, headers)
        if raw.set_cookies:
            extract_cookies_to_jar(response.cookies, request, response.raw)  # type: ignore[no-untyped-call]
        return response

    def close(self) -> None:
        """Close the idle connections of both transports."""
        self._pool.close()
        super().close()
