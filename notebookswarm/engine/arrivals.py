"""The open model: start task iterations at a rate, whatever the server does.

Users that wait for each response (the closed model) stop sending when the server stalls,
so a stall hardly shows in their percentiles: coordinated omission. Here arrivals are
due on a schedule (constant spacing, or Poisson), each one runs one task of a free user
from a pool, and every request is recorded twice: from when it was sent, and from when
its arrival was due (``corrected``). When no user is free and the pool is at
``max_users``, an arrival waits in a backlog (it starts late, and says so); when the
backlog is full too, it is dropped and counted. Nothing is hidden.

Worker side only (gevent). The schedule itself is pure: :func:`next_due`.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import gevent
from gevent import Greenlet
from gevent.event import Event

from notebookswarm.engine.boundary import call_guarded, count_failure, cut_in_flight
from notebookswarm.stats.requests import StatsRecorder
from notebookswarm.users.core import User, UserContext

#: An arrival that starts more than this behind its due time counts as late.
LATE_NS = 10_000_000


def next_due(due: float, rate: float, poisson: bool, rng: random.Random) -> float:
    """Return when the arrival after one due at ``due`` is due, at ``rate`` per second."""
    return due + (rng.expovariate(rate) if poisson else 1.0 / rate)


class _LateRecorder:
    """One user's recorder: stamps each request with how late its arrival started."""

    def __init__(self, base: StatsRecorder) -> None:
        self.base = base
        self.late_ns = 0

    def record_request(
        self, method: str, name: str, latency_ns: int, nbytes: int, error: str | None
    ) -> None:
        self.base.record_late_request(method, name, latency_ns, self.late_ns, nbytes, error)

    def record_exception(self, exc: BaseException) -> None:
        self.base.record_exception(exc)


class ArrivalRunner:
    """Run arrivals at a rate over a pool of users of several classes."""

    def __init__(
        self,
        classes: Mapping[str, type[User]],
        recorder: StatsRecorder,
        context: UserContext,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` is what arrivals fall due by and lateness is measured on."""
        self.clock = clock
        self.classes = dict(classes)
        self.weights = [max(0, cls.weight) or 0 for cls in self.classes.values()]
        if not any(self.weights):
            self.weights = [1] * len(self.classes)
        self.recorder = recorder
        self.template = context
        self.rng = random.Random(seed)
        self.rate = 0.0
        self.max_users = 0
        self.poisson = False
        self.max_backlog = 0
        self.pool: list[User] = []
        self.free: list[User] = []
        self.backlog: deque[float] = deque()
        self.busy: set[Greenlet] = set()
        self._changed = Event()
        self._loop: Greenlet | None = None

    def set_rate(self, rate: float, max_users: int, poisson: bool, max_backlog: int) -> None:
        """Run ``rate`` arrivals a second from now on (0 pauses), over at most ``max_users``."""
        self.rate, self.max_users = float(rate), int(max_users)
        self.poisson, self.max_backlog = bool(poisson), int(max_backlog)
        while len(self.backlog) > self.max_backlog:
            self.backlog.pop()
            self.recorder.current.dropped += 1
        self._changed.set()
        if self._loop is None:
            self._loop = gevent.spawn(self._arrive)

    def user_counts(self) -> dict[str, int]:
        """Return the pool's users per class (busy or free)."""
        counts = dict.fromkeys(self.classes, 0)
        for user in self.pool:
            counts[type(user).__name__] += 1
        return counts

    def _arrive(self) -> None:
        due = self.clock()
        while True:
            self._changed.clear()
            rate = self.rate
            if rate <= 0:
                self._changed.wait()
                due = self.clock()
                continue
            delay = due - self.clock()
            if delay > 0:
                if self._changed.wait(delay):
                    due = max(due - delay, self.clock())  # the new rate applies from now
                continue  # read the clock again: an arrival never starts early by it
            self._dispatch(due)
            due = next_due(due, rate, self.poisson, self.rng)

    def _dispatch(self, due: float) -> None:
        current = self.recorder.current
        current.arrivals += 1
        user = self.free.pop() if self.free else self._new_user()
        if user is not None:
            greenlet = Greenlet(self._serve, user, due)
            self.busy.add(greenlet)
            greenlet.link(self.busy.discard)
            greenlet.start()
        elif len(self.backlog) < self.max_backlog:
            self.backlog.append(due)
        else:
            current.dropped += 1

    def _new_user(self) -> User | None:
        if len(self.pool) >= self.max_users:
            return None
        cls = self.rng.choices(list(self.classes.values()), weights=self.weights)[0]
        context = UserContext(
            recorder=_LateRecorder(self.recorder),
            host=self.template.host,
            tags=self.template.tags,
            exclude_tags=self.template.exclude_tags,
            _task_cache=self.template._task_cache,
            environment=self.template.environment,
        )
        try:
            user = cls(context)
        except BaseException as exc:
            count_failure(self.recorder, exc)
            return None
        self.pool.append(user)
        return user

    def _serve(self, user: User, due: float) -> None:
        recorder: Any = user.context.recorder
        while True:
            late_ns = max(0, int((self.clock() - due) * 1e9))
            if late_ns > LATE_NS:
                self.recorder.current.late += 1
            recorder.late_ns = late_ns
            try:
                going_on = user.run_one_task()
            except BaseException as exc:  # the kill at stop, or SystemExit and the like
                cut_in_flight(user)
                count_failure(self.recorder, exc)  # the kill goes on: stop() runs on_stop
                call_guarded(self.recorder, user._finish)  # stopped, as by StopUser
                self._retire(user)
                return
            if not going_on:
                self._retire(user)
                return
            if not self.backlog:
                break
            due = self.backlog.popleft()
        if len(self.pool) > self.max_users:  # the pool shrank under it
            self._retire(user)
            return
        self.free.append(user)

    def _retire(self, user: User) -> None:
        if user in self.pool:
            self.pool.remove(user)
        close = getattr(user.client, "close", None)
        if close is not None:
            close()

    def stop(self, timeout: float) -> None:
        """Stop arrivals, let running tasks finish for ``timeout`` s, then run on_stop."""
        if self._loop is not None:
            self._loop.kill()
            self._loop = None
        self.rate = 0.0
        self.backlog.clear()
        for user in self.pool:
            user._stop_requested = True  # what a request the kill cuts is counted as
        gevent.joinall(list(self.busy), timeout=timeout)
        for greenlet in list(self.busy):
            greenlet.kill(block=True, timeout=1.0)
        finishing = [gevent.spawn(call_guarded, self.recorder, user._finish) for user in self.pool]
        gevent.joinall(finishing, timeout=timeout)
        for user in list(self.pool):
            self._retire(user)
        self.free.clear()
