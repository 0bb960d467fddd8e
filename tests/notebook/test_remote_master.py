"""A notebook steering a standalone master it did not start: code shipped from here, workers
that join before and during the run, a dropped controller link that resumes, patience."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator

import pandas as pd
import pytest

import notebookswarm as nbs
from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.control import ControlClient
from notebookswarm.cluster.launch import MasterProcess, reap, start_master, start_worker
from notebookswarm.errors import ConfigError, NotebookSwarmError
from notebookswarm.notebook.swarm import Swarm, SwarmConfig
from notebookswarm.stats.requests import RequestStats
from notebookswarm.testing import CountingServer, wait_until

from fresh import python_output
from tcpproxy import Proxy

pytestmark = pytest.mark.usefixtures("no_strays")

TIMINGS = {"heartbeat_interval": 0.5, "heartbeat_timeout": 3.0, "master_timeout": 30.0}


class Visitor(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def home(self) -> None:
        self.client.get("/")


@pytest.fixture
def service() -> Iterator[tuple[MasterProcess, list[subprocess.Popen[bytes]]]]:
    """A standalone master (a service) with one worker that joined before any controller."""
    master = start_master(MasterConfig(standalone=True, controller_timeout=4.0, **TIMINGS))
    workers = [start_worker(master.worker_endpoint)]
    try:
        yield master, workers
    finally:
        admin = ControlClient(master.control_endpoint)
        with contextlib.suppress(NotebookSwarmError):
            admin.request(protocol.QuitMaster(), timeout=3)
        admin.close()
        for worker in workers:
            reap(worker, timeout=5)
        master.stop()


def aggregated_history(swarm: Swarm) -> pd.DataFrame:
    history = swarm.history
    return history[history["name"] == "Aggregated"]


def test_classes_from_here_reach_workers_before_and_during_the_run(
    service: tuple[MasterProcess, list[subprocess.Popen[bytes]]], target: CountingServer
) -> None:
    """Classes defined here run on a standalone master's workers, one that joined before
    the controller and one that joins mid-run and gets its share; loading new code while
    it runs is refused; closing the swarm leaves the service running."""
    master, workers = service
    config = SwarmConfig(master=MasterConfig(**TIMINGS))
    swarm = Swarm(
        Visitor, host=target.url, master=master.control_endpoint, workers=1, config=config
    )
    try:
        swarm.start(users=6, spawn_rate=100)
        swarm.wait("spawned", timeout=30)
        workers.append(start_worker(master.worker_endpoint))
        wait_until(
            lambda: (w := swarm.workers).shape[0] == 2 and bool((w["users"] == 3).all()),
            timeout=30,
            message="the late worker's share",
        )
        with pytest.raises(ConfigError, match="stop it before loading"):
            Swarm(Visitor, host=target.url, master=master.control_endpoint, config=config)
        swarm.stop()
        stats = swarm.stats
        total = int(stats.loc[stats["name"] == "Aggregated", "requests"].iloc[0])
        assert total == target.count()
    finally:
        swarm.close()
    assert master.process.poll() is None
    assert all(worker.poll() is None for worker in workers)


def test_a_controller_link_down_for_5_s_resumes_without_gap_or_double_count(
    service: tuple[MasterProcess, list[subprocess.Popen[bytes]]], target: CountingServer
) -> None:
    """The controller's link to a standalone master drops for 5 s: afterwards its history
    has one row a second with no gap, and its totals equal the target's count."""
    master, _ = service
    host, port = master.control_endpoint.removeprefix("tcp://").rsplit(":", 1)
    proxy = Proxy((host, int(port)))
    config = SwarmConfig(master=MasterConfig(**TIMINGS))
    try:
        with Swarm(Visitor, host=target.url, master=proxy.endpoint, config=config) as swarm:
            wait_until(lambda: swarm.workers.shape[0] == 1, timeout=30, message="the worker")
            swarm.start(users=2, spawn_rate=100)
            swarm.wait("spawned", timeout=30)
            wait_until(lambda: len(aggregated_history(swarm)) >= 2, timeout=10, message="rows")
            proxy.cut()
            time.sleep(5)  # the outage under test, not a synchronisation
            proxy.restore()
            down_rows = len(aggregated_history(swarm))
            wait_until(
                lambda: len(aggregated_history(swarm)) >= down_rows + 7,
                timeout=20,
                message="the missed seconds filled in",
            )
            swarm.stop()
            times = aggregated_history(swarm)["time"]
            gaps = times.diff().dropna().dt.total_seconds()
            assert times.is_unique
            assert gaps.max() < 1.6, gaps.tolist()
            stats = swarm.stats
            total = int(stats.loc[stats["name"] == "Aggregated", "requests"].iloc[0])
            assert total == target.count()
            assert int(aggregated_history(swarm)["requests"].sum()) == target.count()
    finally:
        proxy.close()


def test_a_standalone_master_stops_a_swarm_its_controllers_left(
    service: tuple[MasterProcess, list[subprocess.Popen[bytes]]], target: CountingServer
) -> None:
    """Past controller_timeout without a controller, a standalone master stops the swarm
    and keeps serving."""
    master, _ = service
    config = SwarmConfig(master=MasterConfig(**TIMINGS))
    swarm = Swarm(
        Visitor, host=target.url, master=master.control_endpoint, workers=1, config=config
    )
    swarm.start(users=2, spawn_rate=100)
    swarm.wait("spawned", timeout=30)
    swarm.close()  # leaves the swarm running on the service, with no controller
    left = time.monotonic()

    def quiet() -> bool:  # no controller may connect meanwhile: its hails are presence
        assert target.log is not None
        last = target.log[-1][3] if target.log else left
        return time.monotonic() - max(last, left) > 0.5  # no request for half a second

    wait_until(quiet, timeout=15, message="the abandoned swarm stopped")
    assert time.monotonic() - left < 4.0 + 5
    assert master.process.poll() is None
    admin = ControlClient(master.control_endpoint)
    try:
        wait_until(lambda: status(admin).state == "stopped", timeout=15, message="stopped")
        # Every worker sent its last report: the master counted what the target received.
        requests = RequestStats.from_wire(status(admin, stats=True).stats or {})
        assert requests.total().requests == target.count() > 0
    finally:
        admin.close()


def status(client: ControlClient, stats: bool = False) -> protocol.Status:
    return client.request(protocol.GetStatus() if stats else protocol.Hail())


def test_auto_workers_follow_the_affinity_mask() -> None:
    """workers="auto" in a process allowed one CPU counts one worker."""
    code = (
        "import os; os.sched_setaffinity(0, {0})\n"
        "from notebookswarm.notebook.processes import worker_count\n"
        "print(worker_count('auto'))\n"
    )
    assert python_output(code) == "1"
