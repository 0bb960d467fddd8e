"""The demo target's settings: what they are, what values they take, what capacity follows.

Both sides validate with the same code: the notebook before it starts or reconfigures
anything, the server before it applies a ``POST /admin/config``. Messages name the
setting, the value and what is allowed, e.g. "pool_size must be an integer >= 1, got 0".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from notebookswarm._checks import check_count, check_rate
from notebookswarm.errors import ConfigError

#: The contest site's endpoints by name, with the route each one answers.
ROUTES: Final[Mapping[str, str]] = {
    "login": "POST /login",
    "problems": "GET /problems",
    "problem": "GET /problems/<id>",
    "submit": "POST /submit",
    "leaderboard": "GET /leaderboard",
}
#: Endpoints that only read, so the cache may answer them.
CACHEABLE: Final = frozenset({"problems", "problem", "leaderboard"})
#: The longest stall: beyond this it is a typo that would freeze the site for good.
MAX_STALL_S: Final = 3600.0


def _default_queries() -> dict[str, int]:
    return dict.fromkeys(ROUTES, 1)


@dataclass(frozen=True)
class Settings:
    """The demo target's knobs; every one can change while it runs.

    ``pool_size`` database connections, each query taking ``query_ms`` milliseconds give
    or take ``jitter`` (a fraction: 0.1 is ±10 %, uniformly, so the mean stays
    ``query_ms``); ``queries`` per request of each endpoint (0: that endpoint skips the
    database); a request holds one connection for all its queries, waiting up to
    ``pool_timeout`` seconds for one (then 503). ``workers`` requests are handled at
    once, like uwsgi's processes; more wait in line, at most ``listen_queue`` of them
    (None: no limit) — beyond it a request is refused with a 503 at once, as a full uwsgi
    listen queue makes its proxy answer. With ``cache``, the read endpoints
    answer from a cache whose entries live ``cache_ttl`` seconds; a hit skips the
    database.
    """

    pool_size: int = 8
    query_ms: float = 20.0
    jitter: float = 0.1
    queries: Mapping[str, int] = field(default_factory=_default_queries)
    workers: int = 32
    listen_queue: int | None = None
    pool_timeout: float = 30.0
    cache: bool = False
    cache_ttl: float = 5.0

    def updated(self, changes: Mapping[str, object]) -> Settings:
        """Return these settings with ``changes`` applied; raise ConfigError naming a bad one.

        ``queries`` takes an integer (every endpoint) or a mapping of some endpoints to
        integers (the others keep theirs).
        """
        values: dict[str, Any] = {}
        for name, value in changes.items():
            check = _CHECKS.get(name)
            if check is None:
                raise ConfigError(
                    f"unknown setting {name!r}: the settings are {', '.join(_CHECKS)}"
                )
            values[name] = check(value, self)
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain JSON-ready values."""
        out = dataclasses.asdict(self)
        out["queries"] = dict(self.queries)
        return out

    def capacity(self, endpoint: str = "problems") -> float:
        """Requests per second ``endpoint`` can take when nothing is cached.

        ``min(pool_size, workers) / (queries * query_ms / 1000)``: each request holds a
        worker and a connection for its queries. Infinite when it makes no query.
        """
        if endpoint not in ROUTES:
            raise ConfigError(f"unknown endpoint {endpoint!r}: the endpoints are {_names()}")
        seconds = self.queries[endpoint] * self.query_ms / 1000.0
        if seconds <= 0:
            return math.inf
        return min(self.pool_size, self.workers) / seconds


#: Checks one value given the current settings; returns it as stored or raises ConfigError.
_Check = Callable[[object, "Settings"], Any]


def check_stall(seconds: object) -> float:
    """Return ``seconds`` for a stall if it is > 0 and at most an hour; else ConfigError."""
    value = check_rate("seconds", seconds, "seconds")
    if value > MAX_STALL_S:
        raise ConfigError(f"seconds must be at most {MAX_STALL_S:g}, got {seconds!r}")
    return value


def _names() -> str:
    return ", ".join(ROUTES)


def _count(name: str, minimum: int) -> _Check:
    return lambda value, _: check_count(name, value, minimum)


def _seconds(name: str, unit: str, allow_zero: bool = False) -> _Check:
    return lambda value, _: check_rate(name, value, unit, allow_zero=allow_zero)


def _jitter(value: object, _: Settings) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= 1  # NaN fails this too
    ):
        raise ConfigError(f"jitter must be a fraction from 0 to 1, got {value!r}")
    return float(value)


def _listen_queue(value: object, _: Settings) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"listen_queue must be an integer >= 0 or None (no limit), got {value!r}")
    return value


def _cache(value: object, _: Settings) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"cache must be True or False, got {value!r}")
    return value


def _queries(value: object, current: Settings) -> dict[str, int]:
    if isinstance(value, bool) or not isinstance(value, int | Mapping):
        raise ConfigError(
            f"queries must be an integer >= 0 or a mapping of endpoint to integer, got {value!r}"
        )
    if isinstance(value, int):
        return dict.fromkeys(ROUTES, check_count("queries", value))
    out = dict(current.queries)
    for endpoint, count in value.items():
        if endpoint not in ROUTES:
            raise ConfigError(
                f"queries: unknown endpoint {endpoint!r}: the endpoints are {_names()}"
            )
        out[endpoint] = check_count(f"queries[{endpoint!r}]", count)
    return out


_CHECKS: Final[dict[str, _Check]] = {
    "pool_size": _count("pool_size", 1),
    "query_ms": _seconds("query_ms", "milliseconds", allow_zero=True),
    "jitter": _jitter,
    "queries": _queries,
    "workers": _count("workers", 1),
    "listen_queue": _listen_queue,
    "pool_timeout": _seconds("pool_timeout", "seconds"),
    "cache": _cache,
    "cache_ttl": _seconds("cache_ttl", "seconds"),
}
