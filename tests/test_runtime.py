"""The gevent runtime in a real monkey-patched worker process (a subprocess per test)."""

from __future__ import annotations

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
from notebookswarm.runtime import Runtime, RuntimeConfig
from notebookswarm.stats import StatsRecorder

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
        left = sorted(u.serial for u, _ in rt._users["Worker"])
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
