"""A simulated database: a bounded connection pool, slow queries and an optional cache.

A request that needs the database takes one connection from the pool (waiting in line
when all are in use), runs its queries one after another — each a cooperative sleep of
``query_ms`` give or take the jitter — and gives the connection back. So at most
``pool_size`` requests are in the database at once and the site's capacity is
``pool_size / (queries * query_ms)``; past it, requests wait for a connection and the
wait is what the load test sees as rising latency.

This module imports gevent: only the demo server process imports it.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import gevent
from gevent.event import Event

from notebookswarm._demo.settings import CACHEABLE, Settings


class PoolTimeout(Exception):
    """No connection became free within ``pool_timeout`` seconds."""


class _Waiter:
    """One place in the line: woken with the time its slot became free."""

    __slots__ = ("event", "freed_at")

    def __init__(self) -> None:
        self.event = Event()
        self.freed_at = 0.0

    def hand_over(self, freed_at: float) -> None:
        self.freed_at = freed_at
        self.event.set()


class Slots:
    """A first-come-first-served limit on how many holders run at once, resizable live.

    Used for the connection pool and for the request workers. A release hands its slot
    straight to the longest waiter, so nobody overtakes the line, together with the time
    the slot became free. Shrinking takes effect as holders release; growing wakes
    waiters at once.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        """How many are waiting for a slot."""
        return len(self._waiters)

    def acquire(self, timeout: float | None = None) -> float | None:
        """Take a slot, waiting up to ``timeout`` seconds (None: as long as it takes).

        Return the monotonic time the slot became ours (now, or when its releaser said
        it was free), or None if none came in time.
        """
        if self.in_use < self.size and not self._waiters:
            self.in_use += 1
            return time.monotonic()
        waiter = _Waiter()
        self._waiters.append(waiter)
        try:
            waiter.event.wait(timeout)
        except BaseException:  # killed while waiting (the server stopping): leave the line
            if waiter.event.is_set():
                self.release()
            else:
                self._waiters.remove(waiter)
            raise
        if waiter.event.is_set():  # in_use already counts us: the releaser handed it over
            return waiter.freed_at
        self._waiters.remove(waiter)
        return None

    def release(self, freed_at: float | None = None) -> None:
        """Give a slot back, to the first waiter if there is room for one.

        ``freed_at`` (default now) is when the slot became free, passed to that waiter.
        """
        if self._waiters and self.in_use <= self.size:
            self._waiters.popleft().hand_over(time.monotonic() if freed_at is None else freed_at)
        else:
            self.in_use -= 1

    def resize(self, size: int) -> None:
        """Allow ``size`` holders from now on, waking waiters that now fit."""
        self.size = size
        now = time.monotonic()
        while self._waiters and self.in_use < self.size:
            self.in_use += 1
            self._waiters.popleft().hand_over(now)


@dataclass
class DatabaseCounters:
    """Cumulative counts since start or the last reset."""

    queries: int = 0
    acquired: int = 0
    wait_seconds: float = 0.0
    timeouts: int = 0
    cache_hits: int = 0
    cache_misses: int = 0


class Database:
    """The simulated database with its pool and cache, following the current settings."""

    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.pool = Slots(settings.pool_size)
        self.counters = DatabaseCounters()
        self._cache: dict[tuple[str, int], tuple[float, bytes]] = {}
        self._rng = rng or random.Random()

    def apply(self, settings: Settings) -> None:
        """Follow new settings: resize the pool; turning the cache off empties it."""
        self.settings = settings
        self.pool.resize(settings.pool_size)
        if not settings.cache:
            self._cache.clear()

    def read_or_write(self, endpoint: str, key: int, answer: Callable[[], bytes]) -> bytes:
        """Run ``endpoint``'s queries, then return ``answer()``; a fresh cache entry skips both.

        Only the read endpoints are cached, under ``(endpoint, key)``. Raises PoolTimeout
        when no connection is free within ``pool_timeout`` seconds.
        """
        settings = self.settings
        cached = settings.cache and endpoint in CACHEABLE
        if cached:
            entry = self._cache.get((endpoint, key))
            if entry is not None and entry[0] > time.monotonic():
                self.counters.cache_hits += 1
                return entry[1]
            self.counters.cache_misses += 1
        count = settings.queries[endpoint]
        if count:
            self._query(count, settings)
        body = answer()
        if cached and self.settings.cache:  # the cache may have been turned off meanwhile
            self._cache[(endpoint, key)] = (time.monotonic() + settings.cache_ttl, body)
        return body

    def _query(self, count: int, settings: Settings) -> None:
        # The database keeps its own clock: a connection is busy for exactly its queries'
        # time, from when it was freed, and the next query ends at a deadline rather than
        # a sleep's length after a late wake-up. So when this process is scheduled late
        # (a busy 2-core laptop with a browser and a load generator on it), requests answer
        # late but the pool still serves pool_size / query time, as the formula says.
        asked = time.monotonic()
        freed_at = self.pool.acquire(settings.pool_timeout)
        if freed_at is None:
            self.counters.timeouts += 1
            raise PoolTimeout(
                f"no database connection free after {settings.pool_timeout:g} s "
                f"(pool_size={self.pool.size})"
            )
        started = max(asked, freed_at)
        self.counters.acquired += 1
        self.counters.wait_seconds += started - asked
        deadline = started
        try:
            for _ in range(count):
                seconds = settings.query_ms / 1000.0
                if settings.jitter:
                    seconds *= self._rng.uniform(1.0 - settings.jitter, 1.0 + settings.jitter)
                deadline += seconds
                gevent.sleep(max(0.0, deadline - time.monotonic()))
                self.counters.queries += 1
        finally:
            self.pool.release(deadline)

    def snapshot(self) -> dict[str, float | int]:
        """Return the pool and cache numbers for ``/metrics``."""
        c = self.counters
        return {
            "pool_size": self.pool.size,
            "pool_in_use": self.pool.in_use,
            "pool_waiters": self.pool.waiting,
            "pool_acquired": c.acquired,
            "pool_wait_s_total": c.wait_seconds,
            "pool_wait_ms_mean": 1000.0 * c.wait_seconds / c.acquired if c.acquired else 0.0,
            "pool_timeouts": c.timeouts,
            "queries": c.queries,
            "cache_hits": c.cache_hits,
            "cache_misses": c.cache_misses,
            "cache_entries": len(self._cache),
        }
