"""The gevent runtime in this patched process, as in a worker: users as greenlets.

The ramp's pacing runs on a :class:`~notebookswarm.testing.FakeClock`, so its tests set
the time instead of sleeping; users' own waits and tasks take the real time they ask for.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import Any, ClassVar

import gevent

from notebookswarm import TaskSet, User, constant, task
from notebookswarm.engine.runtime import Runtime, RuntimeConfig
from notebookswarm.errors import ConfigError
from notebookswarm.stats.requests import StatsRecorder
from notebookswarm.testing import FakeClock, wait_until


def test_targets_up_and_down_stop_newest_first() -> None:
    """Raising a target starts users on the ramp's schedule by its clock (8 users at 40/s:
    one at once, five by 0.11 s, the 8th at 7/40 s), and lowering it stops the newest first."""
    started: list[int] = []

    class Worker(User):
        wait_time = constant(0.05)

        def on_start(self) -> None:
            self.serial = len(started)
            started.append(self.serial)

        @task
        def work(self) -> None:
            pass

    class Other(User):
        wait_time = constant(0.05)

        @task
        def work(self) -> None:
            pass

    clock = FakeClock(100.0)
    rt = Runtime([Worker, Other], StatsRecorder(), clock=clock)
    try:
        rt.set_targets({"Worker": 6, "Other": 2}, spawn_rate=40)
        wait_until(lambda: rt.user_count() == 1, timeout=5, message="the first user at once")
        clock.advance(0.11)
        wait_until(lambda: rt.user_count() == 5, timeout=5, message="five users by 0.11 s")
        assert rt.state == "spawning"
        clock.advance(0.06)  # 0.17 s: the 8th is due at 0.175 s
        wait_until(lambda: rt.user_count() == 7, timeout=5, message="seven users by 0.17 s")
        assert rt.state == "spawning"
        clock.advance(0.01)
        wait_until(lambda: rt.state == "running", timeout=5, message="the ramp's end")
        assert rt.user_counts() == {"Worker": 6, "Other": 2}
        rt.set_targets({"Worker": 2, "Other": 2}, spawn_rate=100)
        wait_until(lambda: rt.state == "running", timeout=5, message="the ramp down")
        left = sorted(slot.user.serial for slot in rt._users["Worker"])  # type: ignore[attr-defined]
    finally:
        rt.stop()
    assert left == [0, 1]
    assert rt.user_counts() == {"Worker": 0, "Other": 0}
    assert rt.state == "stopped"


def test_user_inside_a_task_finishes_it_before_stopping() -> None:
    """A user asked to stop mid-task finishes the task, then runs on_stop; a waiting one stops
    at once."""
    log: list[str] = []

    class Slow(User):
        wait_time = constant(0)

        @task
        def long_task(self) -> None:
            log.append("begin")
            gevent.sleep(0.3)
            log.append("end")

        def on_stop(self) -> None:
            log.append("on_stop")

    rt = Runtime([Slow], StatsRecorder(), RuntimeConfig(stop_timeout=5))
    rt.set_targets({"Slow": 1}, spawn_rate=10)
    wait_until(lambda: "begin" in log, message="the task's start")
    rt.stop()
    assert log[-3:] == ["begin", "end", "on_stop"]


def test_stop_waits_for_users_a_lower_target_left_finishing_a_task() -> None:
    """A user stopped by a lower target (a re-dispatch) and still in its task is waited for
    by stop(), so its request is in the recorder before the worker's last report."""
    log: list[str] = []

    class Slow(User):
        wait_time = constant(0)

        @task
        def long_task(self) -> None:
            with self.measure("sleep", "slow"):
                log.append("begin")
                gevent.sleep(0.3)

        def on_stop(self) -> None:
            log.append("on_stop")

    recorder = StatsRecorder()
    rt = Runtime([Slow], recorder, RuntimeConfig(stop_timeout=5))
    rt.set_targets({"Slow": 1}, spawn_rate=10)
    wait_until(lambda: "begin" in log, message="the task's start")
    rt.set_targets({"Slow": 0}, spawn_rate=10)
    wait_until(lambda: rt.user_count() == 0, message="the user taken off the targets")
    rt.stop()
    assert log == ["begin", "on_stop"]
    assert recorder.take().endpoints[("sleep", "slow")].requests == 1


def test_stop_timeout_kills_a_user_stuck_in_a_task() -> None:
    """A task that outlives stop_timeout is killed, and on_stop still runs."""
    log: list[str] = []

    class Stuck(User):
        @task
        def forever(self) -> None:
            log.append("begin")
            gevent.sleep(60)
            log.append("never")

        def on_stop(self) -> None:
            log.append("on_stop")

    rt = Runtime([Stuck], StatsRecorder(), RuntimeConfig(stop_timeout=0.3))
    rt.set_targets({"Stuck": 1}, spawn_rate=10)
    wait_until(lambda: "begin" in log, message="the task's start")
    rt.stop()
    assert log == ["begin", "on_stop"]


def test_bad_targets_are_refused_with_the_value() -> None:
    """Unknown classes, negative counts and a negative or NaN spawn rate raise ConfigError."""

    class A(User):
        @task
        def t(self) -> None:
            pass

    rt = Runtime([A], StatsRecorder())
    messages = []
    bad = [({"A": -1}, 1), ({"B": 1}, 1), ({"A": 1}, -3), ({"A": 1}, float("nan"))]
    for targets, rate in bad:
        try:
            rt.set_targets(targets, rate)
        except ConfigError as exc:
            messages.append(str(exc))
    assert messages == [
        "users for A must be an integer >= 0, got -1",
        "unknown user class 'B': the swarm runs ['A']",
        "spawn_rate must be >= 0 users per second, got -3",
        "spawn_rate must be >= 0 users per second, got nan",
    ]
    assert rt.user_count() == 0 and rt.state == "ready"


def test_a_long_wait_parks_the_user_without_its_greenlet() -> None:
    """A top-level wait of at least park_after ends the user's greenlet and a timer starts
    a fresh one for the next task: on_start once, tasks on time, no greenlet while parked;
    a nested TaskSet's waits keep theirs; a parked user stops at once with on_stop."""
    log: list[list[Any]] = []
    kept: list[Any] = []  # the greenlets themselves, so no id is reused while we compare them

    def me() -> int:
        kept.append(gevent.getcurrent())
        return len({id(g) for g in kept})  # how many distinct greenlets so far

    class Parker(User):
        wait_time = constant(0.3)
        park_after = 0.2

        def on_start(self) -> None:
            log.append(["start", me()])

        def on_stop(self) -> None:
            log.append(["stop", me()])

        @task
        def work(self) -> None:
            log.append(["task", me(), time.monotonic()])

    class Nested(TaskSet):
        wait_time = constant(0.3)

        @task
        def inner(self) -> None:
            log.append(["inner", me()])

    class Nester(User):
        wait_time = constant(0.3)
        park_after = 0.2
        tasks = [Nested]

    rt = Runtime([Parker], StatsRecorder(), RuntimeConfig())
    rt.set_targets({"Parker": 1}, spawn_rate=100)
    wait_until(lambda: sum(e[0] == "task" for e in log) == 3, message="three tasks")
    wait_until(lambda: rt._users["Parker"][0].greenlet is None, message="the user parked")
    parked = [rt.user_count(), rt._users["Parker"][0].timer is not None]
    rt.stop()
    parker = list(log)
    log.clear()
    kept.clear()
    rt = Runtime([Nester], StatsRecorder(), RuntimeConfig())
    rt.set_targets({"Nester": 1}, spawn_rate=100)
    wait_until(lambda: len(log) == 3, message="three nested tasks")
    rt.stop()

    kinds = [entry[0] for entry in parker]
    assert kinds == ["start", "task", "task", "task", "stop"]
    tasks = parker[1:4]
    assert [entry[1] for entry in tasks] == [1, 2, 3]  # a fresh greenlet for every task
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(tasks)]
    assert all(gap >= 0.3 for gap in gaps)
    assert parked == [1, True]
    assert [entry[1] for entry in log] == [1, 1, 1]  # waits inside a TaskSet keep it
    assert rt.user_count() == 0


def test_stops_racing_parked_and_waking_users_end_each_user_once() -> None:
    """Users waking every few milliseconds (parked ones and ones asleep in their greenlet),
    stopped at arbitrary moments: every user that started runs on_stop exactly once, and
    none begins a task once it has been stopped (a kill landing in that task would cut a
    request the target counted and the stats never saw)."""
    starts: list[User] = []
    stops: list[User] = []
    late: list[str] = []
    current: list[Runtime] = []

    class Flicker(User):
        wait_time = constant(0.011)
        park_after: ClassVar[float | None] = 0.01

        def on_start(self) -> None:
            starts.append(self)

        def on_stop(self) -> None:
            stops.append(self)

        @task
        def work(self) -> None:
            slots = current[-1]._users[type(self).__name__]
            if all(slot.user is not self for slot in slots):
                late.append(type(self).__name__)  # begun after the runtime let go of it
            gevent.sleep(0.002)  # a request's worth of waiting inside the task

    class Steady(Flicker):
        park_after = None

    rng = random.Random(7)
    for _round in range(25):
        rt = Runtime([Flicker, Steady], StatsRecorder(), RuntimeConfig())
        current.append(rt)
        rt.set_targets({"Flicker": 15, "Steady": 15}, spawn_rate=10000)
        gevent.sleep(0.05 + rng.random() * 0.05)  # the moments of the race, on purpose
        rt.set_targets({"Flicker": 6, "Steady": 6}, spawn_rate=10000)
        gevent.sleep(rng.random() * 0.05)
        rt.stop()
        gevent.sleep(0.05)
    assert len(starts) == 750
    assert len(stops) == 750
    assert {id(u) for u in starts} == {id(u) for u in stops}
    assert late == []
