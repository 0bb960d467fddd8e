"""The real stack's contest site: a WSGI app that gunicorn runs in each worker process.

Every worker has its own bounded connection pool (psycopg_pool) to the stack's
PostgreSQL, as a uwsgi or gunicorn deployment has. Settings come from the environment
(:data:`SETTINGS_ENV`, one JSON object) because gunicorn imports the app by name.

Every response is JSON. The endpoints (``name`` in the metrics' ``endpoint`` label):

    index        GET  /                  the running contest
    problems     GET  /problems          its problems with attempts and solves
    problem      GET  /problems/<id>     one problem with its statement (also /problem/<id>)
    leaderboard  GET  /leaderboard       its top 20 by problems solved, then penalty
    login        POST /login             ``username`` (JSON or form): a token and a cookie
    submit       POST /submit            ``problem`` and ``code``: judged, stored, a verdict

``/metrics`` is Prometheus text exposition merged over the workers (prometheus_client's
multiprocess mode); it is neither counted nor timed, so scraping does not move the numbers.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.cookies import SimpleCookie
from typing import Any, Final
from urllib.parse import parse_qs

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from notebookswarm._demo import stack_sql as sql
from notebookswarm._demo.contest_metrics import Metrics, exposition

SETTINGS_ENV: Final = "NBS_STACK_APP"
#: The judge's verdict for a submission, a deterministic function of problem and code.
VERDICTS: Final = ("AC", "WA", "AC", "TLE", "AC", "RE", "AC", "CE")
VERDICT_NAMES: Final = {
    "AC": "accepted",
    "WA": "wrong answer",
    "TLE": "time limit exceeded",
    "RE": "runtime error",
    "CE": "compilation error",
}

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
#: A response body and its extra headers.
Answer = tuple[bytes, list[tuple[str, str]]]
#: An endpoint: its name and the WSGI environ in, an answer out.
Handler = Callable[[str, dict[str, Any]], Answer]


@dataclass(frozen=True)
class AppSettings:
    """What each worker needs: where the database is and the switches of the bottlenecks."""

    dsn: str
    pool_size: int = 4
    pool_timeout: float = 10.0
    cache: bool = False
    cache_ttl: float = 5.0
    judge_ms: float = 20.0
    threads: int = 1

    def to_json(self) -> str:
        """Serialise for the environment of gunicorn."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AppSettings:
        """Read what :meth:`to_json` wrote."""
        return cls(**json.loads(text))


class HttpError(Exception):
    """A response other than 200, with the message the client reads."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ContestApp:
    """The WSGI callable of one worker process."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.pool = ConnectionPool(
            settings.dsn,
            min_size=settings.pool_size,
            max_size=settings.pool_size,
            timeout=settings.pool_timeout,
            kwargs={"autocommit": True},
            name="contest",
            open=True,
        )
        self.pool.wait(timeout=30.0)
        with self.pool.connection() as conn:
            row = conn.execute(sql.CURRENT_CONTEST).fetchone()
        assert row is not None, "the stack loads at least one contest"
        self.contest = {"id": row[0], "name": row[1], "starts_at": row[2].isoformat(),
                        "ends_at": row[3].isoformat()}  # fmt: skip
        self._cache: dict[str, tuple[float, bytes]] = {}
        self._cache_lock = threading.Lock()
        self.metrics.workers.set(settings.threads)
        self.metrics.pool_size.set(settings.pool_size)

    # --- plumbing ----------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return _respond(start_response, 200, exposition(), CONTENT_TYPE_LATEST)
        name, handler = self.route(method, path)
        started = time.perf_counter()
        status, headers = 200, list[tuple[str, str]]()
        self.metrics.busy.inc()
        try:
            body, headers = handler(name, environ)
        except HttpError as error:
            status, body = error.status, _json({"error": str(error)})
        except PoolTimeout as error:
            status, body = 503, _json({"error": f"database pool exhausted: {error}"})
        except psycopg.Error as error:
            status, body = 500, _json({"error": f"database error: {error}"})
        finally:
            self.metrics.busy.dec()
        self.metrics.requests.labels(name, method, str(status)).inc()
        self.metrics.duration.labels(name).observe(time.perf_counter() - started)
        return _respond(start_response, status, body, "application/json", headers)

    def route(self, method: str, path: str) -> tuple[str, Handler]:
        """Return the endpoint's name and handler for a request (an error handler if none)."""
        parts = path.strip("/").split("/")
        routes: dict[str, tuple[str, Handler]] = {
            "": ("GET", self.index),
            "problems": ("GET", self.problems),
            "leaderboard": ("GET", self.leaderboard),
            "login": ("POST", self.login),
            "submit": ("POST", self.submit),
        }
        handler: Handler
        if len(parts) == 2 and parts[0] in ("problem", "problems"):
            allowed, handler, name = "GET", self.problem, "problem"
        elif len(parts) == 1 and parts[0] in routes:
            name = parts[0] or "index"
            allowed, handler = routes[parts[0]]
        else:
            return "other", _fail(404, f"no page at {path!r}: see GET / for the endpoints")
        if method != allowed:
            return "other", _fail(405, f"{path} answers {allowed}, not {method}")
        return name, handler

    @contextmanager
    def connection(self, endpoint: str) -> Iterator[psycopg.Connection[Any]]:
        """Lend a pooled connection, keeping the pool's gauges and timing the loan."""
        self.metrics.pool_waiting.inc()
        try:
            conn = self.pool.getconn()
        finally:
            self.metrics.pool_waiting.dec()
        self.metrics.pool_in_use.inc()
        started = time.perf_counter()
        try:
            yield conn
        finally:
            self.metrics.query.labels(endpoint).observe(time.perf_counter() - started)
            self.metrics.pool_in_use.dec()
            self.pool.putconn(conn)

    def cached(self, key: str, compute: Callable[[], bytes]) -> bytes:
        """Answer from this worker's cache for ``cache_ttl`` seconds when the cache is on."""
        if not self.settings.cache:
            return compute()
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            self.metrics.cache.labels("hit").inc()
            return hit[1]
        self.metrics.cache.labels("miss").inc()
        body = compute()
        with self._cache_lock:
            self._cache[key] = (now + self.settings.cache_ttl, body)
        return body

    # --- endpoints ---------------------------------------------------------------------

    def index(self, name: str, environ: dict[str, Any]) -> Answer:
        """``GET /``: the running contest and the endpoints."""
        endpoints = ["/problems", "/problems/<id>", "/leaderboard", "/login", "/submit"]
        return _json({"contest": self.contest, "endpoints": endpoints}), []

    def problems(self, name: str, environ: dict[str, Any]) -> Answer:
        """``GET /problems``: the running contest's problems, attempts and solves."""

        def compute() -> bytes:
            with self.connection(name) as conn:
                rows = conn.cursor(row_factory=dict_row).execute(
                    sql.PROBLEM_LIST, {"contest": self.contest["id"]}
                )
                problems = rows.fetchall()
            return _json({"contest": self.contest["id"], "problems": problems})

        return self.cached("problems", compute), []

    def problem(self, name: str, environ: dict[str, Any]) -> Answer:
        """``GET /problems/<id>``: one problem with its statement."""
        raw = environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]
        if not raw.isdigit():
            raise HttpError(404, f"no problem {raw!r}: ids are integers")
        with self.connection(name) as conn:
            row = conn.cursor(row_factory=dict_row).execute(sql.PROBLEM, {"id": int(raw)})
            problem = row.fetchone()
        if problem is None:
            raise HttpError(404, f"no problem {raw}")
        return _json(problem), []

    def leaderboard(self, name: str, environ: dict[str, Any]) -> Answer:
        """``GET /leaderboard``: the running contest's top rows."""

        def compute() -> bytes:
            with self.connection(name) as conn:
                found = conn.execute(sql.LEADERBOARD, {"contest": self.contest["id"]}).fetchall()
            rows = [
                {"rank": rank, "name": user, "solved": solved, "penalty": penalty}
                for rank, (user, solved, penalty) in enumerate(found, start=1)
            ]
            return _json({"contest": self.contest["id"], "rows": rows})

        return self.cached("leaderboard", compute), []

    def login(self, name: str, environ: dict[str, Any]) -> Answer:
        """``POST /login``: make the user if new; answer a token and a ``user`` cookie."""
        username = _body(environ).get("username")
        if not isinstance(username, str) or not username:
            raise HttpError(400, "login needs a 'username' (JSON or form)")
        with self.connection(name) as conn:
            _user_id(conn, username)
        token = secrets.token_hex(8)
        cookie = SimpleCookie()
        cookie["user"] = username
        cookie["user"]["path"] = "/"
        headers = [("Set-Cookie", cookie["user"].OutputString())]
        return _json({"username": username, "token": token}), headers

    def submit(self, name: str, environ: dict[str, Any]) -> Answer:
        """``POST /submit``: judge the code while holding the connection, store a verdict."""
        body = _body(environ)
        problem, code = body.get("problem"), body.get("code")
        if isinstance(problem, str) and problem.isdigit():
            problem = int(problem)
        if not isinstance(problem, int) or not isinstance(code, str):
            raise HttpError(400, "submit needs 'problem' (an id) and 'code' (a string)")
        username = body.get("username") or _cookie_user(environ) or "anonymous"
        verdict = VERDICTS[zlib.crc32(f"{problem}:{code}".encode()) % len(VERDICTS)]
        with self.connection(name) as conn, conn.transaction():
            found = conn.execute(sql.PROBLEM_CONTEST, {"id": problem}).fetchone()
            if found is None:
                raise HttpError(404, f"no problem {problem}")
            user = _user_id(conn, str(username))
            if self.settings.judge_ms > 0:
                conn.execute(sql.JUDGE, {"seconds": self.settings.judge_ms / 1000})
            params = {"contest": found[0], "problem": problem, "user": user, "verdict": verdict,
                      "language": str(body.get("language", "python")), "source": code}  # fmt: skip
            row = conn.execute(sql.ADD_SUBMISSION, params).fetchone()
        assert row is not None
        answer = {"submission": row[0], "problem": problem, "username": username,
                  "verdict": VERDICT_NAMES[verdict]}  # fmt: skip
        return _json(answer), []


def _user_id(conn: psycopg.Connection[Any], username: str) -> int:
    row = conn.execute(sql.USER_ID, {"username": username}).fetchone()
    if row is None:
        conn.execute(sql.ADD_USER, {"username": username})
        row = conn.execute(sql.USER_ID, {"username": username}).fetchone()
    assert row is not None
    return int(row[0])


def _fail(status: int, message: str) -> Handler:
    def handler(name: str, environ: dict[str, Any]) -> Answer:
        raise HttpError(status, message)

    return handler


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    if "json" in environ.get("CONTENT_TYPE", ""):
        try:
            value = json.loads(raw or b"{}")
        except ValueError as error:
            raise HttpError(400, f"the body is not JSON: {error}") from error
        if not isinstance(value, dict):
            raise HttpError(400, "the body must be a JSON object")
        return value
    return {key: values[-1] for key, values in parse_qs(raw.decode("utf-8", "replace")).items()}


def _cookie_user(environ: dict[str, Any]) -> str | None:
    cookie = SimpleCookie()
    try:
        cookie.load(environ.get("HTTP_COOKIE", ""))
    except Exception:  # a malformed cookie header is the client's problem, not a 500
        return None
    morsel = cookie.get("user")
    return morsel.value if morsel is not None else None


def _respond(
    start_response: StartResponse,
    status: int,
    body: bytes,
    content_type: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
               500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip
    start_response(
        f"{status} {reasons.get(status, 'Error')}",
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]


def create_app() -> ContestApp:
    """Build the app of this worker process from :data:`SETTINGS_ENV` (gunicorn calls this)."""
    return ContestApp(AppSettings.from_json(os.environ[SETTINGS_ENV]))
