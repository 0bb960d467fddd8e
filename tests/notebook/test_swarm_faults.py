"""Hostile user code and careless notebooks, on real processes: nothing hangs, is lost or leaks."""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

import pytest

import notebookswarm as nbs
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.errors import ConfigError, NotebookSwarmError
from notebookswarm.notebook.swarm import Swarm, SwarmConfig
from notebookswarm.testing import CountingServer, descendants, process_gone, wait_until

pytestmark = pytest.mark.usefixtures("no_strays")

FAST = SwarmConfig(
    stop_timeout=2.0,
    master=MasterConfig(heartbeat_interval=0.5, heartbeat_timeout=2.0, master_timeout=5.0),
)


class Visitor(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def home(self) -> None:
        self.client.get("/")


class Spinner(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def spin(self) -> None:
        self.client.get("/")
        if self.client.get("/spin?").status_code == 200:
            while True:  # never yields: gevent cannot stop this greenlet
                pass


class Quitter(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def leave(self) -> None:
        self.client.get("/")
        sys.exit(3)


class Waiter(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def wait_forever(self) -> None:
        self.client.get("/silent")


class Hostless(nbs.HttpUser):
    @nbs.task
    def home(self) -> None:
        self.client.get("/")


def aggregated(swarm: Any, column: str = "requests") -> int:
    frame = swarm.stats
    return int(frame.loc[frame["name"] == "Aggregated", column].iloc[0])


def test_a_shape_that_raises_stops_the_swarm_and_wait_raises_it(target: CountingServer) -> None:
    """A shape whose evaluation raises stops the swarm; state says failed and wait("done")
    raises the shape's own exception with its traceback."""

    def broken(elapsed: float) -> float:
        if elapsed > 1.0:
            raise RuntimeError("the shape broke at 1 s")
        return 2

    with Swarm(Visitor, host=target.url, workers=1, config=FAST) as swarm:
        swarm.shape(broken)
        with pytest.raises(RuntimeError, match="the shape broke") as raised:
            swarm.wait("done", timeout=30)
        assert any(entry.name == "broken" for entry in raised.traceback)
        assert swarm.state == "failed"
        wait_until(lambda: swarm._data.state == "stopped", timeout=20, message="stopped")
        assert aggregated(swarm) == target.count()


def test_a_dashboard_made_and_moved_at_once_steers_a_running_swarm(target: CountingServer) -> None:
    """On a running swarm, a dashboard made and moved before its first frame sets the users."""
    from notebookswarm.notebook.dashboard import Dashboard

    with Swarm(Visitor, host=target.url, workers=1, config=FAST) as swarm:
        swarm.start(users=2, spawn_rate=50)
        swarm.wait("spawned", timeout=30)
        dashboard = Dashboard(swarm)
        assert dashboard.users_slider.value == 2  # it starts from the swarm's state
        dashboard.users_slider.value = 5  # no sleep, no frame seen yet
        wait_until(lambda: swarm.user_count == 5, timeout=20, message="5 users")
        swarm.stop()


def test_a_dropped_swarm_is_collected_and_its_processes_end(target: CountingServer) -> None:
    """Rebinding the only reference to a running swarm and collecting ends its processes."""
    before = descendants()
    swarm: Swarm | None = Swarm(Visitor, host=target.url, workers=1, config=FAST)
    assert swarm is not None
    swarm.start(users=2, spawn_rate=50)
    swarm.wait("spawned", timeout=30)
    pids = swarm._processes.pids() if swarm._processes else []
    swarm = None  # what re-running a notebook cell does to the old swarm
    gc.collect()
    wait_until(lambda: all(process_gone(pid) for pid in pids), timeout=5, message="gone")
    assert not (descendants() - before)
    sent = target.count()
    time.sleep(1.0)  # the behaviour under test: no traffic after the swarm was dropped
    assert target.count() == sent


def test_no_host_anywhere_is_refused_before_any_process_starts() -> None:
    """Swarm(U) with no host on the swarm or the class raises ConfigError and starts nothing."""
    before = descendants()
    with pytest.raises(ConfigError, match="Hostless has no host"):
        Swarm(Hostless, workers=1)
    for host in ("http://127.0.0.1:99999", "http://[::1", "ftp://x", "127.0.0.1:8080"):
        with pytest.raises(ConfigError, match="host"):
            Swarm(Hostless, host=host, workers=1)
    assert descendants() == before


def test_a_task_that_never_yields_cannot_keep_a_swarm_from_stopping(
    target: CountingServer,
) -> None:
    """A CPU-bound task: stop() returns within stop_timeout + 5 s with the state stopped, a
    warning names the task, and every request the target saw is in the statistics."""
    target.route("/spin", status=200)
    with Swarm(Spinner, host=target.url, workers=1, config=FAST) as swarm:
        swarm.start(users=2, spawn_rate=50)
        wait_until(lambda: target.count("GET", "/spin") >= 1, timeout=30, message="a spin")
        began = time.monotonic()
        swarm.stop()
        assert time.monotonic() - began < FAST.stop_timeout + 5
        assert swarm.state == "stopped"
        assert any("Spinner.spin" in warning for warning in swarm.warnings), swarm.warnings
        assert aggregated(swarm) == target.count()


def test_sys_exit_in_a_task_is_an_exception_and_the_worker_lives(target: CountingServer) -> None:
    """sys.exit() in a task is counted as an exception per occurrence; workers live, the
    swarm reaches its users, and the counts equal the target's."""
    with Swarm(Quitter, host=target.url, workers=1, config=FAST) as swarm:
        swarm.start(users=2, spawn_rate=50)
        wait_until(lambda: target.count() >= 4, timeout=30, message="traffic")
        swarm.stop()
        exceptions = swarm.exceptions
        assert exceptions["error"].str.contains("SystemExit").any(), exceptions
        assert int(exceptions["count"].sum()) == target.count()
        assert aggregated(swarm) == target.count()
        assert swarm._processes is not None and not swarm._processes.dead_workers()


def test_a_worker_that_dies_makes_wait_raise_with_its_exit_status(target: CountingServer) -> None:
    """A worker killed mid-run (os._exit in its process) makes wait() raise naming its status
    within heartbeat_timeout + 1 s, and a swarm with no live worker refuses to steer."""
    with Swarm(Visitor, host=target.url, workers=1, config=FAST) as swarm:
        swarm.start(users=2, spawn_rate=50)
        swarm.wait("spawned", timeout=30)
        assert swarm._processes is not None
        worker = swarm._processes.workers[0]
        os.kill(worker.pid, 9)
        killed = time.monotonic()
        with pytest.raises(NotebookSwarmError, match="exited with status -9"):
            swarm.wait("stopped", timeout=30)
        assert time.monotonic() - killed < FAST.master.heartbeat_timeout + 1
        with pytest.raises(NotebookSwarmError, match="no live worker"):
            swarm.set_users(3)


def test_requests_cut_at_stop_timeout_are_failures(target: CountingServer) -> None:
    """Four users stuck on a target that never answers, stop_timeout=2: the stats show 4
    requests and 4 failures saying why; the target saw 4."""
    target.route("/silent", delay=600.0)
    with Swarm(Waiter, host=target.url, workers=1, config=FAST) as swarm:
        swarm.start(users=4, spawn_rate=100)
        wait_until(lambda: target.count() == 4, timeout=30, message="4 requests")
        swarm.stop()
        assert aggregated(swarm) == 4 == target.count()
        assert aggregated(swarm, "failures") == 4
        errors = swarm.errors
        assert errors["error"].str.contains("stop_timeout").all(), errors
