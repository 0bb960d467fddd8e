"""Workers that may use different amounts of CPU get users in proportion to it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.control import ControlClient
from notebookswarm.cluster.launch import reap, start_master
from notebookswarm.errors import NotebookSwarmError
from notebookswarm.notebook.loading import load_code_for_file
from notebookswarm.testing import CountingServer, wait_until

pytestmark = [
    pytest.mark.usefixtures("no_strays"),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to share"),
]

USERS = """
from notebookswarm import HttpUser, constant, task

class Waiter(HttpUser):
    wait_time = constant(1)

    @task
    def home(self):
        self.client.get("/")
"""


def worker_on(cpus: set[int], endpoint: str) -> subprocess.Popen[bytes]:
    """A worker process whose affinity mask allows only ``cpus``."""
    return subprocess.Popen(
        [sys.executable, "-m", "notebookswarm.worker", "--master", endpoint],
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        start_new_session=True,
    )


def test_users_split_by_the_cpu_each_worker_may_use(
    target: CountingServer, users_file: object
) -> None:
    """A worker allowed one CPU and one allowed two get 30 users as 10 and 20."""
    path = users_file(USERS)  # type: ignore[operator]
    master = start_master(MasterConfig(heartbeat_interval=0.5))
    client = ControlClient(master.control_endpoint)
    workers = [worker_on({0}, master.worker_endpoint), worker_on({0, 1}, master.worker_endpoint)]
    try:
        client.request(load_code_for_file(path, target.url, {}))
        wait_until(lambda: len(client.request(protocol.Hail()).workers) == 2, timeout=30)
        rows = {r.pid: r for r in client.request(protocol.Hail()).workers}
        assert rows[workers[0].pid].cpus == 1.0
        assert rows[workers[1].pid].cpus == 2.0
        client.request(protocol.StartSwarm(targets=protocol.Targets(users=30, spawn_rate=100)))

        def users_of(pid: int) -> int:
            rows = {r.pid: r for r in client.request(protocol.Hail()).workers}
            return rows[pid].users

        wait_until(
            lambda: (users_of(workers[0].pid), users_of(workers[1].pid)) == (10, 20),
            timeout=30,
            message="users split 10:20",
        )
    finally:
        with contextlib.suppress(NotebookSwarmError):
            client.request(protocol.QuitMaster(), timeout=3)
        client.close()
        for worker in workers:
            reap(worker, timeout=5)
        master.stop()
