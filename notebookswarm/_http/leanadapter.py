"""The ``HttpUser`` transport: requests' ``Session`` above, the lean wire of ``FastHttpUser`` below.

In a profile of an ``HttpUser`` worker, requests' ``HTTPAdapter`` (urllib3 and http.client,
headers parsed with ``email.parser``) was half of every request's CPU. :class:`LeanAdapter`
replaces only that layer: it writes the prepared request on a pooled keep-alive
connection with :class:`~notebookswarm._http.fastclient.ConnectionPool` and builds a
``requests.Response`` from the parsed answer. Everything above the adapter is requests'
own and unchanged: sessions, cookies, auth, hooks, redirects, ``Response``, exceptions.

What differs, by design:

- ``response.raw`` is a stand-in whose body has already been read (``read()`` returns
  ``b""``); the body is in ``response.content`` as always.
- Requests it does not handle itself go to requests' own ``HTTPAdapter``, unchanged:
  ``stream=True``, proxies, client certificates, a ``verify`` path that does not exist
  (requests' own error), and bodies that are files or generators.
- https: certificates are checked as requests checks them: ``verify=True`` against
  requests' CA bundle (certifi's, not the system's), a path against that file or
  directory, ``False`` not at all (urllib3's ``InsecureRequestWarning`` is issued once
  per adapter rather than per request).
- Compressed bodies (gzip, deflate, br, zstd, whatever urllib3 can decode here) are
  decoded with urllib3's decoders, so ``Accept-Encoding`` means what it meant.

Errors keep requests' types: a refused or failed connection is ``requests.ConnectionError``,
a failed TLS handshake ``requests.exceptions.SSLError``, a connect timeout
``requests.ConnectTimeout``, a read timeout ``requests.ReadTimeout``, each raised from the
socket's own error, which is what a failed request's stats name.

Imports gevent (through ``_fastclient``): ``HttpSession`` mounts it only in a
monkey-patched worker.
"""

from __future__ import annotations

import io
import os
import ssl
import warnings
from collections.abc import Mapping
from http.client import HTTPException
from typing import Any

import gevent.ssl
import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers, select_proxy

from notebookswarm._http.fastclient import ConnectionPool, Origin, _Connection, _RawResponse


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
        except ssl.SSLError as exc:
            raise requests.exceptions.SSLError(exc) from exc
        except OSError as exc:
            raise requests.ConnectionError(exc) from exc


def _tls_context(verify: bool | str) -> Any:
    """A TLS client context that checks certificates the way requests' ``verify`` asks."""
    if verify is False:
        context = gevent.ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = gevent.ssl.CERT_NONE
        warnings.warn(
            "Unverified HTTPS requests are being made: certificates are not checked (verify=False)",
            urllib3.exceptions.InsecureRequestWarning,
            stacklevel=4,
        )
        return context
    if verify is True:
        return gevent.ssl.create_default_context(cafile=DEFAULT_CA_BUNDLE_PATH)
    if os.path.isdir(verify):
        return gevent.ssl.create_default_context(capath=verify)
    return gevent.ssl.create_default_context(cafile=verify)


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
    """requests' transport adapter for http and https, on notebookswarm's lean wire."""

    def __init__(self) -> None:
        super().__init__()
        self._pool = _Pool()  # http://; https:// goes by what verify= asks for, below
        self._tls_pools: dict[bool | str, _Pool] = {}

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
        pool = self._pool_for(url, verify)
        if (
            pool is None
            or stream
            or cert
            or not (body is None or isinstance(body, bytes | str))
            or (proxies and select_proxy(url, proxies))
        ):
            return super().send(request, stream, timeout, verify, cert, proxies)
        payload = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        connect_timeout, read_timeout = _timeouts(timeout)
        try:
            raw = pool.exchange(
                pool.where(url),
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
        except ssl.SSLError as exc:
            raise requests.exceptions.SSLError(exc, request=request) from exc
        except (OSError, HTTPException) as exc:
            raise requests.ConnectionError(exc, request=request) from exc
        return self._response(request, raw)

    def _pool_for(self, url: str, verify: Any) -> _Pool | None:
        """The pool for ``url``; None hands the request to requests' own adapter."""
        if not url.startswith("https:"):  # requests lower-cases the scheme when it prepares
            return self._pool
        if not isinstance(verify, bool | str):
            return None
        pool = self._tls_pools.get(verify)
        if pool is None:
            if isinstance(verify, str) and not os.path.exists(verify):
                return None  # requests' adapter says what is wrong with it
            pool = self._tls_pools[verify] = _Pool(ssl_context=_tls_context(verify))
        return pool

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
        for pool in (self._pool, *self._tls_pools.values()):
            pool.close()
        super().close()
