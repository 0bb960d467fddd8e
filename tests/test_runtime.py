"""The gevent runtime in a real monkey-patched worker process (a subprocess per test)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

PRELUDE = """
from gevent import monkey
monkey.patch_all()
import json, time
import gevent
from notebookswarm import User, task, constant
from notebookswarm.engine.runtime import Runtime, RuntimeConfig
from notebookswarm.stats.requests import StatsRecorder

def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        gevent.sleep(0.01)
"""


def run_script(body: str, timeout: float = 60) -> dict[str, object]:
    """Run PRELUDE + body in a fresh interpreter; it prints one JSON object last."""
    code = PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_targets_up_and_down_stop_newest_first() -> None:
    """Raising then lowering a target starts users at the rate and stops the newest first."""
    out = run_script(
        """
        started = []
        class Worker(User):
            wait_time = constant(0.05)
            def on_start(self):
                self.serial = len(started)
                started.append(self.serial)
            @task
            def work(self):
                pass

        class Other(User):
            wait_time = constant(0.05)
            @task
            def work(self):
                pass

        rt = Runtime([Worker, Other], StatsRecorder())
        t0 = time.monotonic()
        rt.set_targets({"Worker": 6, "Other": 2}, spawn_rate=40)
        wait_for(lambda: rt.state == "running")
        ramp = time.monotonic() - t0
        counts_up = rt.user_counts()
        rt.set_targets({"Worker": 2, "Other": 2}, spawn_rate=100)
        wait_for(lambda: rt.state == "running")
        left = sorted(slot.user.serial for slot in rt._users["Worker"])
        rt.stop()
        print(json.dumps({"up": counts_up, "left": left, "ramp": ramp,
                          "after": rt.user_counts(), "state": rt.state}))
        """
    )
    assert out["up"] == {"Worker": 6, "Other": 2}
    assert out["left"] == [0, 1]
    assert out["after"] == {"Worker": 0, "Other": 0}
    assert out["state"] == "stopped"
    # 8 users at 40/s: the 8th is due 7/40 s after the first
    assert isinstance(out["ramp"], float) and out["ramp"] >= 7 / 40


def test_user_inside_a_task_finishes_it_before_stopping() -> None:
    """A user asked to stop mid-task finishes the task, then runs on_stop; a waiting one stops
    at once."""
    out = run_script(
        """
        log = []
        class Slow(User):
            wait_time = constant(0)
            @task
            def long_task(self):
                log.append("begin")
                gevent.sleep(0.3)
                log.append("end")
            def on_stop(self):
                log.append("on_stop")

        rt = Runtime([Slow], StatsRecorder(), RuntimeConfig(stop_timeout=5))
        rt.set_targets({"Slow": 1}, spawn_rate=10)
        wait_for(lambda: "begin" in log)
        t0 = time.monotonic()
        rt.stop()
        print(json.dumps({"log": log[-3:], "took": time.monotonic() - t0}))
        """
    )
    assert out["log"] == ["begin", "end", "on_stop"]


def test_stop_timeout_kills_a_user_stuck_in_a_task() -> None:
    """A task that outlives stop_timeout is killed, and on_stop still runs."""
    out = run_script(
        """
        log = []
        class Stuck(User):
            @task
            def forever(self):
                log.append("begin")
                gevent.sleep(60)
                log.append("never")
            def on_stop(self):
                log.append("on_stop")

        rt = Runtime([Stuck], StatsRecorder(), RuntimeConfig(stop_timeout=0.3))
        rt.set_targets({"Stuck": 1}, spawn_rate=10)
        wait_for(lambda: "begin" in log)
        t0 = time.monotonic()
        rt.stop()
        print(json.dumps({"log": log, "took": time.monotonic() - t0}))
        """
    )
    assert out["log"] == ["begin", "on_stop"]


def test_bad_targets_are_refused_with_the_value() -> None:
    """Unknown classes, negative counts and a negative or NaN spawn rate raise ConfigError."""
    out = run_script(
        """
        from notebookswarm.errors import ConfigError
        class A(User):
            @task
            def t(self):
                pass
        rt = Runtime([A], StatsRecorder())
        messages = []
        bad = [({"A": -1}, 1), ({"B": 1}, 1), ({"A": 1}, -3), ({"A": 1}, float("nan"))]
        for targets, rate in bad:
            try:
                rt.set_targets(targets, rate)
            except ConfigError as exc:
                messages.append(str(exc))
        print(json.dumps({"messages": messages, "users": rt.user_count(), "state": rt.state}))
        """
    )
    assert out["messages"] == [
        "users for A must be an integer >= 0, got -1",
        "unknown user class 'B': the swarm runs ['A']",
        "spawn_rate must be >= 0 users per second, got -3",
        "spawn_rate must be >= 0 users per second, got nan",
    ]
    assert out["users"] == 0 and out["state"] == "ready"


def test_a_long_wait_parks_the_user_without_its_greenlet() -> None:
    """A top-level wait of at least park_after ends the user's greenlet and a timer starts
    a fresh one for the next task: on_start once, tasks on time, no greenlet while parked;
    a nested TaskSet's waits keep theirs; a parked user stops at once with on_stop."""
    out = run_script(
        """
        from notebookswarm import TaskSet
        log = []
        kept = []  # the greenlets themselves, so no id is reused while we compare them

        def me():
            kept.append(gevent.getcurrent())
            return len({id(g) for g in kept})  # how many distinct greenlets so far

        class Parker(User):
            wait_time = constant(0.3)
            park_after = 0.2
            def on_start(self):
                log.append(["start", me()])
            def on_stop(self):
                log.append(["stop", me()])
            @task
            def work(self):
                log.append(["task", me(), time.monotonic()])

        class Nested(TaskSet):
            wait_time = constant(0.3)
            @task
            def inner(self):
                log.append(["inner", me()])

        class Nester(User):
            wait_time = constant(0.3)
            park_after = 0.2
            tasks = [Nested]

        rt = Runtime([Parker], StatsRecorder(), RuntimeConfig())
        rt.set_targets({"Parker": 1}, spawn_rate=100)
        wait_for(lambda: sum(e[0] == "task" for e in log) == 3)
        wait_for(lambda: rt._users["Parker"][0].greenlet is None)
        parked = [rt.user_count(), rt._users["Parker"][0].timer is not None]
        rt.stop()
        parker = list(log)
        log.clear()
        kept.clear()
        rt = Runtime([Nester], StatsRecorder(), RuntimeConfig())
        rt.set_targets({"Nester": 1}, spawn_rate=100)
        wait_for(lambda: len(log) == 3)
        rt.stop()
        print(json.dumps({"parker": parker, "parked": parked, "nested": log,
                          "after": rt.user_count()}))
        """
    )
    parker = out["parker"]
    assert isinstance(parker, list)
    kinds = [entry[0] for entry in parker]
    assert kinds == ["start", "task", "task", "task", "stop"]
    tasks = parker[1:4]
    assert [entry[1] for entry in tasks] == [1, 2, 3]  # a fresh greenlet for every task
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(tasks)]
    assert all(gap >= 0.3 for gap in gaps)
    assert out["parked"] == [1, True]
    nested = out["nested"]
    assert isinstance(nested, list)
    assert [entry[1] for entry in nested] == [1, 1, 1]  # waits inside a TaskSet keep it
    assert out["after"] == 0


def test_stops_racing_parked_and_waking_users_end_each_user_once() -> None:
    """Users waking every few milliseconds (parked ones and ones asleep in their greenlet),
    stopped at arbitrary moments: every user that started runs on_stop exactly once, and
    none begins a task once it has been stopped (a kill landing in that task would cut a
    request the target counted and the stats never saw)."""
    out = run_script(
        """
        import random
        starts, stops, late = [], [], []

        class Flicker(User):
            wait_time = constant(0.011)
            park_after = 0.01
            def on_start(self):
                starts.append(self)
            def on_stop(self):
                stops.append(self)
            @task
            def work(self):
                if all(slot.user is not self for slot in rt._users[type(self).__name__]):
                    late.append(type(self).__name__)  # begun after the runtime let go of it
                gevent.sleep(0.002)  # a request's worth of waiting inside the task

        class Steady(Flicker):
            park_after = None

        random.seed(7)
        for round_ in range(25):
            rt = Runtime([Flicker, Steady], StatsRecorder(), RuntimeConfig())
            rt.set_targets({"Flicker": 15, "Steady": 15}, spawn_rate=10000)
            gevent.sleep(0.05 + random.random() * 0.05)
            rt.set_targets({"Flicker": 6, "Steady": 6}, spawn_rate=10000)
            gevent.sleep(random.random() * 0.05)
            rt.stop()
            gevent.sleep(0.05)
        print(json.dumps({"starts": len(starts), "stops": len(stops),
                          "each_once": {id(u) for u in starts} == {id(u) for u in stops},
                          "late": late}))
        """
    )
    assert out["starts"] == 750
    assert out["stops"] == 750
    assert out["each_once"] is True
    assert out["late"] == []
