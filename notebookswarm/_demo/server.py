"""The demo contest site as a WSGI application on gevent's HTTP/1.1 server.

A contest request (login, problems, a problem, submit, leaderboard) waits for one of
``workers`` request workers — the line in front of uwsgi's processes — then goes
through the simulated database (:mod:`notebookswarm._demo.database`). ``/admin/*`` and
``/metrics`` take neither a worker nor a connection and ignore stalls, so a notebook can
always see and steer the site, however overloaded it is. ``/metrics`` speaks Prometheus
text exposition (:mod:`notebookswarm._demo.exposition`); ``/admin/metrics`` answers the
same numbers as one JSON object (``DemoTarget.metrics()``).

A stall (``POST /admin/stall?seconds=N``) freezes the site like a long GC pause or a
suspended process: a contest request that arrives during the next N seconds is held
until they are over, and one already inside is held before it answers.

The server uses gevent's API directly and does not monkey-patch: nothing in this
process blocks outside gevent, and a patch would only add surprises.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Final
from urllib.parse import parse_qs, quote, unquote

import gevent
from prometheus_client import CONTENT_TYPE_LATEST

from notebookswarm._demo.contest import Contest
from notebookswarm._demo.database import Database, DatabaseCounters, PoolTimeout, Slots
from notebookswarm._demo.exposition import registry_for, render
from notebookswarm._demo.settings import ROUTES, Settings, check_stall
from notebookswarm.errors import ConfigError

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

MAX_BODY_BYTES: Final = 64 * 1024
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    503: "Service Unavailable",
}
#: Requests that match no endpoint (404, 405) are counted under this name.
OTHER: Final = "other"


class HttpError(Exception):
    """Answer with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class EndpointCounters:
    """Requests, failed requests (4xx/5xx) and seconds spent for one endpoint."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def route(method: str, path: str) -> tuple[str, int]:
    """Return ``(endpoint, problem id or 0)``; raise HttpError 404/405 for anything else."""
    if path.startswith("/problems/"):
        endpoint, raw = "problem", path[len("/problems/") :]
        if not raw.isdigit():
            raise HttpError(404, f"no problem {raw!r}: problem ids are integers")
        key = int(raw)
    else:
        endpoint, key = path.strip("/"), 0
        if endpoint not in ROUTES or endpoint == "problem":
            raise HttpError(404, f"no page at {path!r}: see GET /problems")
    allowed = ROUTES[endpoint].split(" ", 1)[0]
    if method != allowed:
        raise HttpError(405, f"{path} takes {allowed}, not {method}")
    return endpoint, key


class Site:
    """The WSGI application: the contest, its workers and database, admin and metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.contest = Contest()
        self.db = Database(settings)
        self.workers = Slots(settings.workers)
        self.started = time.monotonic()
        self.stalled_until = 0.0
        self.in_flight = 0
        self.reset_metrics()
        self.registry = registry_for(self)

    def reset_metrics(self) -> None:
        """Start the cumulative counters afresh (requests in flight stay counted)."""
        self.endpoints = {name: EndpointCounters() for name in (*ROUTES, OTHER)}
        self.stalls = 0
        self.stalled_requests = 0
        self.queue_refusals = 0
        self.db.counters = DatabaseCounters()

    def apply(self, settings: Settings) -> None:
        """Follow new settings from now on: resize the pool and workers, flush the cache."""
        self.settings = settings
        self.db.apply(settings)
        self.workers.resize(settings.workers)

    def stall(self, seconds: float) -> None:
        """Hold every contest request for the next ``seconds`` seconds."""
        self.stalled_until = max(self.stalled_until, time.monotonic() + seconds)
        self.stalls += 1

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method: str = environ["REQUEST_METHOD"]
        path: str = environ["PATH_INFO"]
        headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
        try:
            if path == "/metrics" and method == "GET":
                headers = [("Content-Type", CONTENT_TYPE_LATEST)]
                body = render(self.registry)
            elif path == "/metrics" or path.startswith("/admin/"):
                body = self._admin(method, path, environ)
            else:
                body = self._contest(method, path, environ, headers)
            status = 200
        except HttpError as exc:
            status, body = exc.status, _json({"error": exc.message})
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_REASONS[status]}", headers)
        return [body]

    # --- the contest -------------------------------------------------------------------

    def _contest(
        self, method: str, path: str, environ: dict[str, Any], headers: list[tuple[str, str]]
    ) -> bytes:
        started = time.monotonic()
        try:
            endpoint, key = route(method, path)
        except HttpError:
            counters = self.endpoints[OTHER]
            counters.requests += 1
            counters.errors += 1
            raise
        counters = self.endpoints[endpoint]
        counters.requests += 1
        self.in_flight += 1
        held = False
        try:
            held = self._hold_while_stalled()
            self._refuse_when_the_line_is_full()
            self.workers.acquire()
            try:
                body = self._answer(endpoint, key, environ, headers)
                held = self._hold_while_stalled() or held
            finally:
                self.workers.release()
            return body
        except HttpError:
            counters.errors += 1
            raise
        finally:
            self.in_flight -= 1
            self.stalled_requests += held
            counters.seconds += time.monotonic() - started

    def _refuse_when_the_line_is_full(self) -> None:
        limit, workers = self.settings.listen_queue, self.workers
        if limit is not None and workers.in_use >= workers.size and workers.waiting >= limit:
            self.queue_refusals += 1
            raise HttpError(
                503,
                f"listen queue full: {workers.waiting} requests already wait for "
                f"{workers.size} busy workers (listen_queue={limit})",
            )

    def _hold_while_stalled(self) -> bool:
        held = False
        while (remaining := self.stalled_until - time.monotonic()) > 0:
            held = True
            gevent.sleep(remaining)
        return held

    def _answer(
        self, endpoint: str, key: int, environ: dict[str, Any], headers: list[tuple[str, str]]
    ) -> bytes:
        contest, db = self.contest, self.db
        try:
            if endpoint == "problems":
                return db.read_or_write(endpoint, 0, contest.problem_list)
            if endpoint == "problem":
                return db.read_or_write(endpoint, key, lambda: _found(contest.problem_page(key)))
            if endpoint == "leaderboard":
                return db.read_or_write(endpoint, 0, contest.leaderboard)
            fields = _fields(environ)
            if endpoint == "login":
                username = fields.get("username")
                if not isinstance(username, str) or not 0 < len(username) <= 64:
                    raise HttpError(400, f"username must be 1 to 64 characters, got {username!r}")
                body = db.read_or_write(endpoint, 0, lambda: contest.login(username))
                headers.append(("Set-Cookie", f"user={quote(username)}; Path=/; HttpOnly"))
                return body
            problem, code = _problem_id(fields.get("problem")), fields.get("code")
            if not isinstance(code, str) or len(code) > 16_384:
                raise HttpError(
                    400, f"code must be a string of at most 16384 characters, got {code!r:.40}"
                )
            user = _user(environ, fields)
            return db.read_or_write(
                endpoint, 0, lambda: _found(contest.submit(user, problem, code))
            )
        except PoolTimeout as exc:
            raise HttpError(503, str(exc)) from None

    # --- admin and metrics -------------------------------------------------------------

    def _admin(self, method: str, path: str, environ: dict[str, Any]) -> bytes:
        allowed = {
            "/metrics": ("GET",),
            "/admin/metrics": ("GET",),
            "/admin/config": ("GET", "POST"),
            "/admin/stall": ("POST",),
            "/admin/reset": ("POST",),
        }.get(path)
        if allowed is None:
            raise HttpError(404, f"no admin page at {path!r}: see /admin/config, /admin/metrics")
        if method not in allowed:
            raise HttpError(405, f"{path} takes {' or '.join(allowed)}, not {method}")
        if path == "/admin/metrics":
            return _json(self.metrics())
        if path == "/admin/config":
            if method == "POST":
                changes = _fields(environ, json_only=True)
                try:
                    self.apply(self.settings.updated(changes))
                except ConfigError as exc:
                    raise HttpError(400, str(exc)) from None
            return _json(self.settings.to_dict())
        if path == "/admin/stall":
            seconds = _stall_seconds(environ.get("QUERY_STRING", ""))
            self.stall(seconds)
            return _json({"stalled_for_s": seconds, "stalls": self.stalls})
        self.reset_metrics()
        return _json(self.metrics())

    def metrics(self) -> dict[str, Any]:
        """Return the site's counters and gauges (see docs/demo-target.md)."""
        endpoints = {
            name: {
                "route": ROUTES.get(name, "anything else"),
                "requests": c.requests,
                "errors": c.errors,
                "server_ms_mean": 1000.0 * c.seconds / c.requests if c.requests else 0.0,
            }
            for name, c in self.endpoints.items()
        }
        return {
            "uptime_s": time.monotonic() - self.started,
            "requests_total": sum(c.requests for c in self.endpoints.values()),
            "in_flight": self.in_flight,
            "endpoints": endpoints,
            "workers": self.workers.size,
            "workers_busy": self.workers.in_use,
            "workers_queued": self.workers.waiting,
            "queue_refusals": self.queue_refusals,
            **self.db.snapshot(),
            "stalls": self.stalls,
            "stalled_requests": self.stalled_requests,
            "stall_remaining_s": max(0.0, self.stalled_until - time.monotonic()),
        }


def _found(body: bytes | None) -> bytes:
    if body is None:
        raise HttpError(404, "no such problem: see GET /problems for the ids")
    return body


def _fields(environ: dict[str, Any], json_only: bool = False) -> dict[str, Any]:
    """Read a JSON object or (unless ``json_only``) a form body into a dict."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(400, "Content-Length is not a number") from None
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"the body has {length} bytes; at most {MAX_BODY_BYTES} are read")
    raw: bytes = environ["wsgi.input"].read(length) if length else b""
    kind = environ.get("CONTENT_TYPE", "")
    if json_only or "json" in kind:
        try:
            value = json.loads(raw or b"{}")
        except ValueError as exc:
            raise HttpError(400, f"the body is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise HttpError(400, f"the body must be a JSON object, got {value!r:.60}")
        return value
    try:
        form = parse_qs(raw.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise HttpError(400, "the form body is not UTF-8") from None
    return {name: values[-1] for name, values in form.items()}


def _problem_id(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise HttpError(400, f"problem must be a problem id (an integer), got {value!r:.40}")
    return value


def _user(environ: dict[str, Any], fields: dict[str, Any]) -> str:
    """The submitter: the ``username`` field, else the login cookie, else anonymous."""
    name = fields.get("username")
    if isinstance(name, str) and 0 < len(name) <= 64:
        return name
    cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    morsel = cookie.get("user")
    return unquote(morsel.value)[:64] if morsel is not None and morsel.value else "anonymous"


def _stall_seconds(query: str) -> float:
    raw = parse_qs(query).get("seconds", ["1"])[-1]
    try:
        seconds: object = float(raw)
    except ValueError:
        seconds = raw
    try:
        return check_stall(seconds)
    except ConfigError as exc:
        raise HttpError(400, str(exc)) from None
