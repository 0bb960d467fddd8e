"""HTTP users: ``HttpUser`` with a ``requests.Session`` client, and what both clients share.

Every request is timed from just before it is sent to when its body has been read, and
recorded under ``(method, name)`` where ``name`` defaults to the URL as written in the
task. A request fails when it raises (connection refused, timeout, ...) or when the
status is 4xx/5xx; the error text names the cause ("ConnectionRefusedError: [Errno 111]
Connection refused", "HTTP 503 Service Unavailable"). With ``catch_response=True`` the
task decides: ``response.success()`` or ``response.failure(msg)`` inside a ``with``
block. Nothing a target does raises out of a request into the user's task.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from requests.sessions import merge_setting as _merge_untyped
from requests.utils import get_environ_proxies, get_netrc_auth

from notebookswarm._http.common import (
    DEFAULT_TIMEOUT,
    CatchResponse,
    InFlight,
    describe_exception,
    describe_status,
    join_url,
)
from notebookswarm.errors import ConfigError
from notebookswarm.stats.recorder import Recorder
from notebookswarm.users.core import Locust, User, UserContext

#: What an ``HttpUser``'s requests travel on: see :class:`HttpUser`.
TRANSPORTS = ("lean", "urllib3")


class _FailedResponse(requests.Response):
    """Stands in for a response when the request raised; ``status_code`` is 0."""

    def __init__(self, exc: BaseException, url: str) -> None:
        super().__init__()
        self.status_code = 0
        self.error = exc
        self.url = url
        self._content = b""


_merge_setting: Callable[[Any, Any], Any] = _merge_untyped  # untyped in types-requests
#: Origins whose settings from the environment a session remembers; then it starts over.
_ORIGINS_KEPT = 256


class HttpSession(requests.Session):
    """A ``requests.Session`` that times and records every request; paths join ``base_url``.

    What requests reads from the environment for a URL (``*_proxy``/``no_proxy``,
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` for https URLs, whether ``~/.netrc`` has an
    entry) is read once per origin and session rather than on every request, where it was
    a tenth of a request's CPU. Set those before the run starts; they are the process's
    settings.
    """

    def __init__(
        self,
        base_url: str,
        recorder: Recorder,
        timeout: float = DEFAULT_TIMEOUT,
        transport: str = "lean",
    ):
        super().__init__()
        if transport not in TRANSPORTS:
            raise ConfigError(
                f"transport={transport!r}: pick one of {', '.join(map(repr, TRANSPORTS))}"
                " ('lean': notebookswarm's wire under requests, in a worker; "
                "'urllib3': requests' own adapter everywhere)"
            )
        if transport == "lean" and _gevent_patched():
            from notebookswarm._http.leanadapter import LeanAdapter

            lean = LeanAdapter()
            self.mount("http://", lean)
            self.mount("https://", lean)
        self.base_url = base_url
        self.recorder = recorder
        self.timeout = timeout
        self.in_flight = InFlight()
        self._env_settings: dict[tuple[str, str, str | None], tuple[dict[str, str], Any]] = {}
        self._netrc_entries: dict[tuple[str, str], bool] = {}

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """requests' own; ``~/.netrc`` is looked up once per origin, not per request."""
        if not self.trust_env or request.auth or self.auth:
            return super().prepare_request(request)
        parts = urlsplit(request.url)
        origin = (parts.scheme, parts.netloc)
        has_entry = self._netrc_entries.get(origin)
        if has_entry is None:
            if len(self._netrc_entries) >= _ORIGINS_KEPT:
                self._netrc_entries.clear()
            has_entry = self._netrc_entries[origin] = get_netrc_auth(request.url) is not None
        if has_entry:  # requests reads the entry itself, as it always does
            return super().prepare_request(request)
        # Nothing to find: skip requests' lookup. No greenlet switch happens in here (no
        # auth to call), so no other request can see trust_env off.
        self.trust_env = False
        try:
            return super().prepare_request(request)
        finally:
            self.trust_env = True

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """requests' own merge, with the environment's part remembered per origin."""
        if self.trust_env:
            no_proxy = proxies.get("no_proxy") if proxies is not None else None
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc, no_proxy)
            known = self._env_settings.get(key)
            if known is None:
                if len(self._env_settings) >= _ORIGINS_KEPT:
                    self._env_settings.clear()
                ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                known = self._env_settings[key] = (
                    get_environ_proxies(url, no_proxy=no_proxy),
                    ca_bundle,
                )
            env_proxies, ca_bundle = known
            if proxies is not None:
                for k, v in env_proxies.items():
                    proxies.setdefault(k, v)
            # Only https has certificates to verify; for http requests' adapter would
            # otherwise stat the bundle's path on every request.
            if (verify is True or verify is None) and parts.scheme == "https":
                verify = ca_bundle or verify
        if self.proxies or not isinstance(proxies, dict):
            proxies = _merge_setting(proxies, self.proxies)
        else:  # what merge_setting does with no session proxies, without its type checks
            proxies = {k: v for k, v in proxies.items() if v is not None}
        return {
            "proxies": proxies,
            "stream": self.stream if stream is None else stream,
            "verify": self.verify if verify is None else verify,
            "cert": self.cert if cert is None else cert,
        }

    def request(  # type: ignore[override]  # adds name= and catch_response=
        self,
        method: str,
        url: str,
        *args: Any,
        name: str | None = None,
        catch_response: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Send a request and record it; see the module docstring for what fails."""
        method = method.upper()
        full_url = join_url(self.base_url, url)
        kwargs.setdefault("timeout", self.timeout)
        label = name if name is not None else url
        start = time.perf_counter_ns()
        flight = self.in_flight.begin(method, label, start)
        response: requests.Response
        try:
            response = super().request(method, full_url, *args, **kwargs)
            error = describe_status(response.status_code, response.reason)
            nbytes = len(response.content)
        except requests.RequestException as exc:
            response = _FailedResponse(exc, full_url)
            error = describe_exception(exc)
            nbytes = 0
        except Exception:  # a mistake in the call: it raises into the task, uncounted
            self.in_flight.end(flight)
            raise
        latency = time.perf_counter_ns() - start
        # Not reached when the runtime's kill cuts the request: it stays open for cut().
        self.in_flight.end(flight)

        def record(final_error: str | None) -> None:
            self.recorder.record_request(method, label, latency, nbytes, final_error)

        if catch_response:
            return CatchResponse(response, error, record)
        record(error)
        return response


def _gevent_patched() -> bool:
    """True in a worker: gevent is imported and has patched the socket module."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


class HttpUser(User):
    """A user whose ``self.client`` is an :class:`HttpSession` on ``host``.

    ``transport = "lean"`` (the default) sends requests on notebookswarm's own wire under
    requests' ``Session`` (see :mod:`notebookswarm._http.leanadapter`: twice the
    requests per CPU-second, ``response.raw`` a stand-in); ``transport = "urllib3"`` keeps
    requests' own adapter for every request.
    """

    abstract = True
    needs_host = True
    transport: ClassVar[str] = "lean"

    def __init__(self, context: UserContext) -> None:
        super().__init__(context)
        self.client = HttpSession(require_host(self), context.recorder, transport=self.transport)


def require_host(user: User) -> str:
    """Return the user's host; raise a ConfigError that says how to set it when there is none."""
    if user.host is None:
        raise ConfigError(
            f"{type(user).__name__} has no host: pass host='http://...' to the swarm "
            "or set `host` on the class"
        )
    return user.host


class HttpLocust(HttpUser, Locust):
    """Locust 0.x's name for :class:`HttpUser` (waits in milliseconds via min/max_wait)."""

    abstract = True
