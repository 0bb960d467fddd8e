"""A swarm driven from a real Jupyter kernel, as a notebook would drive it."""

from __future__ import annotations

import os
import signal
import time

from notebookswarm.testing import CountingServer, process_gone, wait_until

from kernel import kernel

DEFINE = """
import notebookswarm as nbs

class Contestant(nbs.HttpUser):
    wait_time = nbs.constant(0.1)

    @nbs.task
    def index(self):
        self.client.get("/")
"""


def test_stats_arrive_while_the_kernel_is_idle() -> None:
    """A user defined in a cell runs on the workers; rows arrive while the kernel sits idle;
    after stop() the Aggregated total equals the target's count; gevent never loads."""
    with CountingServer() as target, kernel() as k:
        k.run(DEFINE)
        k.run(
            f"""
            swarm = nbs.Swarm(Contestant, host={target.url!r}, workers=1)
            swarm.start(users=5, spawn_rate=20)
            swarm.wait("spawned", timeout=30)
            rows_before = len(swarm.history)
            """
        )
        idle_from = time.monotonic()
        while time.monotonic() - idle_from < 5:  # the kernel idles: the behaviour under test
            time.sleep(0.1)
        grown = int(k.run("print(len(swarm.history) - rows_before)"))
        assert grown >= 2 * 4  # at least 4 updates, each an endpoint row and Aggregated
        total = int(k.run("swarm.stop(); print(int(swarm.stats.iloc[-1]['requests']))"))
        assert total == target.count() > 100
        assert k.run("import sys; print('gevent' in sys.modules)").strip() == "False"
        pids = [int(p) for p in k.run("print(*swarm._processes.pids())").split()]
        k.run("swarm.close()")
        assert all(process_gone(pid) for pid in pids)


def test_killing_the_kernel_ends_the_swarm() -> None:
    """SIGKILL the kernel mid-run: master and workers are gone within controller_timeout
    + 2 s, and the target receives nothing afterwards."""
    with CountingServer() as target, kernel() as k:
        k.run(DEFINE)
        pids = k.run(
            f"""
            from notebookswarm.cluster.config import MasterConfig
            config = nbs.SwarmConfig(master=MasterConfig(controller_timeout=3.0))
            swarm = nbs.Swarm(Contestant, host={target.url!r}, workers=2, config=config)
            swarm.start(users=6, spawn_rate=20)
            swarm.wait("spawned", timeout=30)
            import os
            print(os.getpid(), *swarm._processes.pids())
            """
        )
        kernel_pid, *swarm_pids = (int(p) for p in pids.split())
        assert len(swarm_pids) == 3
        os.kill(kernel_pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(
            lambda: all(process_gone(pid) for pid in swarm_pids),
            timeout=3.0 + 2,
            message="the swarm's processes to end with their kernel",
        )
        after = target.count()
        assert after > 0
        while time.monotonic() - killed < 6:  # watch for stray traffic
            assert target.count() == after
            time.sleep(0.1)
