"""Run users as gevent greenlets inside one worker process.

The runtime takes absolute targets (users per class and a spawn rate) and moves toward
them; it records into a :class:`~notebookswarm.stats.requests.StatsRecorder` whose deltas someone
else collects. It knows nothing of sockets, masters or notebooks. Only worker processes
import it, after the worker entry point has monkey-patched the process.

Users above a target are stopped at once, newest first; starts are paced at the spawn
rate. Stopping a user: a user waiting between tasks stops at once; a user inside a task
finishes it, unless ``stop_timeout`` seconds pass first, then it is killed; its requests
still waiting for an answer are counted as failures (``CUT_AT_STOP``). What user code
raises is counted and never ends the worker (see :mod:`notebookswarm.engine.boundary`).

A user whose wait between top-level tasks is at least its class's ``park_after`` seconds
(5 s by default) is parked for the wait: its greenlet ends and a timer starts a fresh
one for the next task. A greenlet parked in a sleep holds about 7.75 KB (its frame-stack
chunk and its copied C stack); a parked user holds its objects and a timer. Waits inside
a nested ``TaskSet`` keep their greenlet, whose frames must survive.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gevent
from gevent import Greenlet, GreenletExit

from notebookswarm._checks import check_count, check_rate
from notebookswarm.engine.arrivals import ArrivalRunner
from notebookswarm.engine.boundary import call_guarded, count_failure, cut_in_flight
from notebookswarm.engine.ramp import next_change, step_time
from notebookswarm.errors import ConfigError
from notebookswarm.stats.names import DEFAULT_MAX_NAMES
from notebookswarm.stats.requests import StatsRecorder
from notebookswarm.users.core import User, UserContext, check_hosts, check_user_classes

#: Worker/runtime states, as reported upward.
READY, SPAWNING, RUNNING, STOPPED = "ready", "spawning", "running", "stopped"


@dataclass(frozen=True)
class RuntimeConfig:
    """Settings of one runtime; ``host`` overrides the classes' own ``host``.

    ``stop_timeout``: seconds a user inside a task may take to finish it once asked to
    stop, before it is killed (10 s by default, so a stalled target cannot hang a stop).
    ``max_names``: distinct request names this worker keeps; later new ones are counted
    under ``<other names>`` (see :mod:`notebookswarm.stats.names`).
    """

    host: str | None = None
    tags: frozenset[str] | None = None
    exclude_tags: frozenset[str] = frozenset()
    stop_timeout: float = 10.0
    max_names: int = DEFAULT_MAX_NAMES


class _Slot:
    """One closed-model user and what runs it now: a greenlet, or a timer while parked."""

    __slots__ = ("greenlet", "timer", "user")

    def __init__(self, user: User) -> None:
        self.user = user
        self.greenlet: Greenlet | None = None
        self.timer: Any = None


def check_targets(
    targets: Mapping[str, int], spawn_rate: float, known: Sequence[str]
) -> dict[str, int]:
    """Return the targets as a dict, or raise ConfigError naming the bad value and the fix."""
    check_rate("spawn_rate", spawn_rate, "users per second", allow_zero=True)
    out: dict[str, int] = {}
    for name, count in targets.items():
        if name not in known:
            raise ConfigError(f"unknown user class {name!r}: the swarm runs {sorted(known)}")
        out[name] = check_count(f"users for {name}", count)
    return out


class Runtime:
    """Spawn, steer and stop users of several classes in this process."""

    def __init__(
        self,
        classes: Sequence[type[User]],
        recorder: StatsRecorder,
        config: RuntimeConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` is what the ramp paces starts by (a test passes a fake one)."""
        self.config = config or RuntimeConfig()
        self.clock = clock
        self.classes = {cls.__name__: cls for cls in check_user_classes(classes)}
        check_hosts(self.classes.values(), self.config.host)  # before any user, not per task
        self.recorder = recorder
        recorder.names.limit = self.config.max_names
        self.context = UserContext(
            recorder=recorder,
            host=self.config.host,
            tags=self.config.tags,
            exclude_tags=self.config.exclude_tags,
        )
        self.state = READY
        self.targets: dict[str, int] = {}
        self._users: dict[str, list[_Slot]] = {n: [] for n in self.classes}
        self._spawner: Greenlet | None = None
        #: Users a lower target stopped that may still be finishing a task: stop() waits
        #: for them too, so their last requests are recorded before the last report.
        self._leaving: set[Greenlet] = set()
        self.arrivals: ArrivalRunner | None = None
        #: Called with the user count when a ramp reaches its targets (Locust's
        #: spawning_complete event; set by engine.locust_events).
        self.on_spawned: Callable[[int], None] | None = None

    def user_counts(self) -> dict[str, int]:
        """Return how many users of each class are running now (the pool, in rate mode)."""
        if self.arrivals is not None:
            return self.arrivals.user_counts()
        return {name: len(users) for name, users in self._users.items()}

    def user_count(self) -> int:
        """Return how many users are running now."""
        return sum(len(users) for users in self._users.values())

    def live_users(self) -> list[User]:
        """Return every user not yet ended (closed-model slots and the arrival pool)."""
        users = [slot.user for slots in list(self._users.values()) for slot in list(slots)]
        if self.arrivals is not None:
            users += list(self.arrivals.pool)
        return users

    def set_targets(self, targets: Mapping[str, int], spawn_rate: float) -> None:
        """Move toward ``targets`` (users per class), starting ``spawn_rate`` users a second.

        Users above a target stop at once (each finishing its task, see the module
        docstring); a rate of 0 starts nobody, for a worker that only has to shed users.
        """
        wanted = check_targets(targets, spawn_rate, list(self.classes))
        if self.arrivals is not None:  # from the open model back to users that wait
            self.arrivals.stop(self.config.stop_timeout)
            self.arrivals = None
        self.targets = {name: wanted.get(name, 0) for name in self.classes}
        if self._spawner is not None:
            self._spawner.kill(block=False)
        self.state = SPAWNING
        self._spawner = gevent.spawn(self._ramp, dict(self.targets), float(spawn_rate))

    def set_arrivals(self, rate: float, max_users: int, poisson: bool, max_backlog: int) -> None:
        """Switch to (or steer) the open model: ``rate`` task runs a second, see arrivals."""
        if self.arrivals is None:
            if self._spawner is not None:
                self._spawner.kill()
                self._spawner = None
            self._stop_all(self.config.stop_timeout)
            self.arrivals = ArrivalRunner(
                self.classes, self.recorder, self.context, clock=self.clock
            )
        self.arrivals.set_rate(rate, max_users, poisson, max_backlog)
        self.state = RUNNING

    def _ramp(self, targets: dict[str, int], rate: float) -> None:
        start = self.clock()
        step = 0
        # Counted here, not read back: a user that stops itself during the ramp (StopUser,
        # sys.exit()) is not replaced by it, as after it; the next set_targets replaces it.
        counts = self.user_counts()
        while (change := next_change(counts, targets)) is not None:
            name, direction = change
            counts[name] += direction
            if direction < 0:
                if self._users[name]:
                    leaving = self._stop_user(self._users[name].pop())
                    self._leaving.add(leaving)
                    leaving.rawlink(self._leaving.discard)
                continue
            if rate == 0:
                break
            # Read the clock again after each sleep: a start is never early by the clock.
            while (delay := step_time(start, step, rate) - self.clock()) > 0:
                gevent.sleep(delay)
            self._start_user(self.classes[name])
            step += 1
        self.state = RUNNING
        if self.on_spawned is not None:
            self.on_spawned(self.user_count())

    def _start_user(self, cls: type[User]) -> None:
        try:
            user = cls(self.context)
        except BaseException as exc:  # a broken __init__ is the user's bug: count it
            count_failure(self.recorder, exc)
            return
        user._parkable = True
        slot = _Slot(user)
        self._users[cls.__name__].append(slot)
        self._go(slot)

    def _go(self, slot: _Slot) -> None:
        """Run (or, after a parked wait, resume) the slot's user in a fresh greenlet."""
        if slot.timer is not None:
            slot.timer.close()
            slot.timer = None
        slot.greenlet = Greenlet(self._run_user, slot)
        slot.greenlet.start()

    def _run_user(self, slot: _Slot) -> None:
        user = slot.user
        parked: float | None = None
        try:
            parked = user.run()
        except GreenletExit:  # the runtime's kill, past stop_timeout
            raise
        except BaseException as exc:  # SystemExit too: counted, and the user stops
            count_failure(self.recorder, exc)
        finally:
            if parked is not None:  # wake up for the next task in a fresh greenlet
                slot.greenlet = None
                slot.timer = gevent.get_hub().loop.timer(parked)
                slot.timer.start(self._go, slot)
            else:
                cut_in_flight(user)  # the greenlet is done: nothing can record them again
                self._ended(slot)

    def _ended(self, slot: _Slot) -> None:
        """A user has ended: close its client and forget it."""
        _close_client(slot.user)
        users = self._users[type(slot.user).__name__]
        for i, known in enumerate(users):
            if known is slot:
                del users[i]
                break

    def _end_parked(self, user: User) -> None:
        call_guarded(self.recorder, user._finish)  # on_stop, as for one killed in a wait
        _close_client(user)

    def _stop_user(self, slot: _Slot, grace: float | None = None) -> Greenlet:
        """Stop one user (already out of ``_users``); return the greenlet to wait for."""
        user, greenlet = slot.user, slot.greenlet
        if greenlet is None:  # parked: no task to finish, no greenlet to kill
            slot.timer.close()
            slot.timer = None
            greenlet = slot.greenlet = Greenlet(self._end_parked, user)
            greenlet.start()
            return greenlet
        # Set first: the kill below lands a loop turn later, and a user whose wait ends
        # in that turn must stop on waking instead of starting a task the kill would cut
        # short (the target would count a request the stats never see).
        user._stop_requested = True
        if user._state == "waiting":
            greenlet.kill(block=False)
            return greenlet
        grace = self.config.stop_timeout if grace is None else grace
        gevent.spawn_later(grace, greenlet.kill, block=False)
        return greenlet

    def stop(self, timeout: float | None = None) -> None:
        """Stop every user (see the module docstring) and wait until all have ended.

        ``timeout`` replaces the configured ``stop_timeout`` for this stop.
        """
        grace = self.config.stop_timeout if timeout is None else timeout
        if self._spawner is not None:
            self._spawner.kill()
            self._spawner = None
        if self.arrivals is not None:
            self.arrivals.stop(grace)
            self.arrivals = None
        self._stop_all(grace)
        self.targets = {name: 0 for name in self.classes}
        self.state = STOPPED

    def _stop_all(self, grace: float) -> None:
        """Stop every closed-model user and wait until all have ended."""
        greenlets: list[Greenlet] = list(self._leaving)  # each has its own grace already
        for users in self._users.values():
            slots = users[::-1]
            users.clear()
            for slot in slots:
                greenlets.append(self._stop_user(slot, grace))
        # Killed users run on_stop on the way out; give that the same grace as a task.
        # Thousands of users ending at once run the cyclic collector over and over
        # (two thirds of a 60,000-user stop); it waits until they are gone.
        collecting = gc.isenabled()
        gc.disable()
        try:
            gevent.joinall(greenlets, timeout=grace + 1.0)
            for greenlet in greenlets:
                if not greenlet.dead:
                    greenlet.kill(block=True, timeout=1.0)
        finally:
            if collecting:
                gc.enable()


def _close_client(user: User) -> None:
    close = getattr(user.client, "close", None)
    if close is not None:
        close()
