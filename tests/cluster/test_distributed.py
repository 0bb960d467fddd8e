"""A real master and real worker processes on 127.0.0.1, against a target that counts."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.testing import CountingServer, process_gone, wait_until

from harness import Cluster

WEB_USER = """
from notebookswarm import HttpUser, task, constant

class Visitor(HttpUser):
    wait_time = constant({wait})

    @task
    def index(self):
        self.client.get("/")
"""

FAST = MasterConfig(heartbeat_interval=0.5, heartbeat_timeout=2.0, master_timeout=10.0)


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A master with two workers; parametrize indirectly with a MasterConfig to change it."""
    config = getattr(request, "param", FAST)
    swarm = Cluster(config, workers=2)
    try:
        swarm.joined(2)
        yield swarm
    finally:
        swarm.close()


def test_two_workers_graceful_stop_loses_nothing(cluster: Cluster) -> None:
    """200 users on two workers for 10 s: after a graceful stop the target's count equals the
    master's total exactly, and each worker ran half the users."""
    with CountingServer() as target:
        cluster.load(WEB_USER.format(wait=0.5), target.url)
        cluster.start(users=200, spawn_rate=100)
        cluster.wait_for(lambda: cluster.state() == "running", 20, "running")
        per_worker = [row.users for row in cluster.workers().values()]
        assert sorted(per_worker) == [100, 100]
        time.sleep(8)  # let the swarm run: this is the load test itself, not a synchronisation
        cluster.stop_and_wait()
        status = cluster.client.request(protocol.GetStatus())
        assert cluster.total.total().requests == target.count() > 2000
        assert status.users == 0


@pytest.mark.parametrize("cluster", [FAST], indirect=True)
def test_killed_worker_is_lost_and_its_users_move(cluster: Cluster) -> None:
    """SIGKILL one of two workers: it is marked lost within heartbeat_timeout + 1 s, the
    survivor runs all users 2 s later, the lost interval is reported, and the run goes on."""
    with CountingServer() as target:
        cluster.load(WEB_USER.format(wait=0.2), target.url)
        cluster.start(users=20, spawn_rate=50)
        cluster.wait_for(lambda: cluster.state() == "running", 20, "running")
        victim, survivor = cluster.worker_procs
        killed_at = time.time()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        cluster.wait_for(
            lambda: cluster.workers()[victim.pid].state == "lost", 10, "the worker to be lost"
        )
        with cluster.lock:
            lost = [e for u in cluster.updates for e in u.lost]
        assert len(lost) == 1
        assert lost[0].until - killed_at <= FAST.heartbeat_timeout + 1
        assert lost[0].users == 10
        assert lost[0].worker == cluster.workers()[victim.pid].id
        cluster.wait_for(
            lambda: cluster.workers()[survivor.pid].users == 20, 2 + 1, "users on the survivor"
        )
        before = target.count()
        cluster.wait_for(lambda: target.count() > before + 50, 10, "the run to go on")
        cluster.stop_and_wait()


def test_stopped_then_resumed_worker_is_not_counted_twice(cluster: Cluster) -> None:
    """SIGSTOP a worker for 3 s (longer than heartbeat_timeout), then SIGCONT: it rejoins, users
    are not double counted, and after a graceful stop the target's count equals the total."""
    with CountingServer() as target:
        cluster.load(WEB_USER.format(wait=0.2), target.url)
        cluster.start(users=20, spawn_rate=50)
        cluster.wait_for(lambda: cluster.state() == "running", 20, "running")
        paused = cluster.worker_procs[0]
        paused.send_signal(signal.SIGSTOP)
        try:
            cluster.wait_for(lambda: cluster.workers()[paused.pid].state == "lost", 10, "lost")
            time.sleep(max(0.0, 3 - FAST.heartbeat_timeout))  # the pause itself lasts 3 s
        finally:
            paused.send_signal(signal.SIGCONT)
        cluster.wait_for(
            lambda: cluster.workers()[paused.pid].state != "lost", 10, "the worker to return"
        )
        cluster.wait_for(
            lambda: (
                cluster.state() == "running"
                and sorted(r.users for r in cluster.workers().values()) == [10, 10]
            ),
            10,
            "the users to be shared again",
        )
        latest = cluster.latest()
        assert latest is not None and latest.users == 20
        cluster.stop_and_wait()
        assert cluster.total.total().requests == target.count()


BURNER = """
import time
from notebookswarm import User, task, constant

class Burner(User):
    wait_time = constant(0)

    @task
    def burn(self):
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:
            pass
"""


@pytest.mark.parametrize("cluster", [MasterConfig()], indirect=True)
def test_saturated_worker_is_not_declared_lost(cluster: Cluster) -> None:
    """Users that peg a worker's CPU for 30 s do not make the master think it is dead."""
    cluster.load(BURNER, "http://127.0.0.1:9")
    cluster.start(users=4, spawn_rate=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # watch the whole 30 s
        assert all(row.state != "lost" for row in cluster.workers().values())
        time.sleep(0.2)
    with cluster.lock:
        assert not any(u.lost for u in cluster.updates)
        rows = [row for u in cluster.updates for row in u.workers]
    # Close to 100% on a quiet machine; other processes may take a share of the core.
    assert max(row.cpu_percent for row in rows) > 70
    assert max(row.loop_lag for row in rows) > 0.1
    cluster.stop_and_wait()


@pytest.mark.parametrize(
    "cluster", [MasterConfig(heartbeat_interval=0.5, master_timeout=3.0)], indirect=True
)
def test_workers_exit_when_the_master_is_killed(cluster: Cluster) -> None:
    """SIGKILL the master: every worker exits within master_timeout + 2 s and the target
    receives nothing afterwards."""
    with CountingServer() as target:
        cluster.load(WEB_USER.format(wait=0.1), target.url)
        cluster.start(users=10, spawn_rate=50)
        cluster.wait_for(lambda: target.count() > 20, 10, "traffic")
        cluster.master.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        for proc in cluster.worker_procs:
            proc.wait(timeout=3.0 + 2 - (time.monotonic() - killed))
        after_exit = target.count()
        cluster.wait_for(lambda: time.monotonic() - killed > 5.5, 10, "a quiet moment")
        assert target.count() == after_exit


CONTROLLER_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from harness import Cluster
from notebookswarm.cluster.config import MasterConfig

swarm = Cluster(MasterConfig(heartbeat_interval=0.5, controller_timeout=3.0), workers=2)
swarm.joined(2)
swarm.load('''{source}''', {url!r})
swarm.start(users=10, spawn_rate=50)
print(swarm.master.process.pid, *(p.pid for p in swarm.worker_procs), flush=True)
time.sleep(120)
"""


def test_master_and_workers_exit_when_the_controller_dies(tmp_path: object) -> None:
    """Kill the process holding the controller connection: master and workers are gone
    within controller_timeout + 2 s, and the target receives nothing afterwards."""
    import subprocess
    import sys
    from pathlib import Path

    with CountingServer() as target:
        script = CONTROLLER_SCRIPT.format(
            tests=str(Path(__file__).resolve().parents[1]),
            source=WEB_USER.format(wait=0.1),
            url=target.url,
        )
        controller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        try:
            assert controller.stdout is not None
            pids = [int(p) for p in controller.stdout.readline().split()]
            assert len(pids) == 3
            wait_until(lambda: target.count() >= 20, timeout=10, message="20 requests")
            controller.send_signal(signal.SIGKILL)
            controller.wait()
            killed = time.monotonic()
            wait_until(
                lambda: all(process_gone(pid) for pid in pids),
                timeout=3.0 + 2,
                message="the swarm's processes to end with their controller",
            )
            after = target.count()
            while time.monotonic() - killed < 6:  # watch for stray traffic
                assert target.count() == after
                time.sleep(0.1)
        finally:
            if controller.poll() is None:
                controller.kill()
                controller.wait()
            if controller.stdout is not None:
                controller.stdout.close()
            for pid in pids if "pids" in locals() else []:
                if not process_gone(pid):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("cluster", [FAST], indirect=True)
def test_newcomer_is_filled_at_the_spawn_rate(cluster: Cluster) -> None:
    """A worker that joins mid-run gets its share of the users, started at the spawn rate
    rather than in one burst: at 2 a second its 10 users show in several updates."""
    with CountingServer() as target:
        cluster.load(WEB_USER.format(wait=0.2), target.url)
        cluster.start(users=30, spawn_rate=30)
        cluster.wait_for(lambda: cluster.state() == "running", 30, "running")
        cluster.start(users=30, spawn_rate=2)  # the rate a newcomer's share starts at
        newcomer = cluster.add_worker()
        cluster.wait_for(lambda: newcomer.pid in cluster.workers(), 30, "the newcomer to join")
        took = cluster.wait_for(
            lambda: cluster.workers()[newcomer.pid].users == 10, 30, "the newcomer's share"
        )
        with cluster.lock:  # every update, not only those a poll happened to see
            seen = [
                row.users for u in cluster.updates for row in u.workers if row.pid == newcomer.pid
            ]
        ramp = sorted({n for n in seen if 0 < n < 10})
        assert len(ramp) >= 2, f"the newcomer's users, update by update: {seen}"
        assert took >= (10 - 1) / 2 - 1  # 10 users at 2/s, seen through 1 s updates
        assert sorted(r.users for r in cluster.workers().values()) == [10, 10, 10]
        cluster.stop_and_wait()
