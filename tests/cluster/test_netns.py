"""Across hosts: a master, two workers and the target on four machines made of network
namespaces (tests/netns.py), with partitions of one worker at a time.

Needs root and iproute2 (`.ci/run` runs as root; `make netns-deps` installs iproute2). The
number of partitions is ``NBS_NETNS_PARTITIONS`` (6 here; `make netns-stress` runs 30).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import notebookswarm as nbs
from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.keys import keygen
from notebookswarm.notebook.swarm import Swarm, SwarmConfig
from notebookswarm.testing import CountingServer, wait_until

from netns import HOST_ADDRESS, Machines, first_line, unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))

#: A partition (7 s) outlasts heartbeat_timeout and stays well under master_timeout, which
#: also covers TCP's retransmission backoff after it (up to ~7 s more, measured).
TIMINGS = MasterConfig(heartbeat_interval=0.5, heartbeat_timeout=3.0, master_timeout=30.0)
PARTITION = 7.0
PARTITIONS = int(os.environ.get("NBS_NETNS_PARTITIONS", "6"))
WORKER_PORT, CONTROL_PORT = 5557, 5558
USERS = 10


class Reader(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task(3)
    def home(self) -> None:
        self.client.get("/home")

    @nbs.task
    def problems(self) -> None:
        self.client.get("/problems")


class Submitter(nbs.FastHttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def submit(self) -> None:
        self.client.post("/submit", data=b"print(42)")


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[Machines]:
    """Machines a (master), b and c (workers) on a bridge; gone after the test, even failed."""
    net = Machines(["a", "b", "c"], tmp_path)
    try:
        net.up()
        yield net
    finally:
        net.down()


def command(*args: str) -> list[str]:
    """The container entry point: ``notebookswarm ARGS`` with this interpreter."""
    return [sys.executable, "-m", "notebookswarm", *args]


def start_master(net: Machines, keys: Path) -> str:
    """Start a standalone master with keys on machine a; return its worker endpoint."""
    timings = [
        f"--{name.replace('_', '-')}={getattr(TIMINGS, name)}"
        for name in ("heartbeat_interval", "heartbeat_timeout", "master_timeout")
    ]
    bind = net.address["a"]
    argv = ["master", "--bind", bind, "--worker-port", str(WORKER_PORT)]
    argv += ["--control-port", str(CONTROL_PORT), "--keys", str(keys), "--standalone"]
    first_line(net.start("a", command(*argv, *timings), "master"))
    return f"tcp://{bind}:{WORKER_PORT}"


def reached_target(swarm: Swarm) -> dict[tuple[str, str], int]:
    """Requests per endpoint that reached the target by the stats: connection failures aside.

    Any other failure fails the test: none is expected here.
    """
    errors = swarm.errors
    connect = errors["error"].str.contains("onnect|nreachable", regex=True)
    assert errors[~connect].empty, errors[~connect].to_string()
    failed = errors[connect].groupby(["method", "name"])["count"].sum()
    stats = swarm.stats
    rows = stats[stats["name"] != "Aggregated"]
    return {
        (m, n): int(r) - int(failed.get((m, n), 0))
        for m, n, r in zip(rows["method"], rows["name"], rows["requests"], strict=True)
    }


def rows_by_pid(swarm: Swarm) -> dict[int, pd.Series]:
    workers = swarm.workers
    return {int(row["pid"]): row for _, row in workers.iterrows()}


def test_a_keyless_worker_is_refused_and_says_why(machines: Machines, tmp_path: Path) -> None:
    """A worker without the CurveZMQ keys, on another machine, exits at once saying the master
    requires keys, and the master says it refused a connection."""
    keygen(tmp_path / "keys")
    endpoint = start_master(machines, tmp_path / "keys")
    intruder = machines.start("c", command("worker", "--master", endpoint), "keyless")
    assert intruder.wait(30) == 1
    assert "requires CurveZMQ keys" in machines.log("keyless")
    wait_until(
        lambda: "refused a connection on the worker socket" in machines.log("master"),
        timeout=10,
        message="the master's word on the refusal",
    )


@dataclass
class Rig:
    """What one partition acts on and watches."""

    machines: Machines
    workers: dict[str, subprocess.Popen[bytes]]
    swarm: Swarm
    target: CountingServer
    lost: list[protocol.LostInterval]

    def halves(self) -> bool:
        """Say whether both workers are live and say they run half the users each."""
        return all(
            row["state"] != "lost" and row["users"] == USERS // 2
            for row in rows_by_pid(self.swarm).values()
        )


def partition(rig: Rig, victim: str, how: str, at_once: bool) -> str:
    """Start, cut ``victim`` off for PARTITION s, let it back, stop; check; say how long.

    ``at_once``: stop as soon as the master hears from it again (its users stalled on
    connections that TCP has not resumed yet), else once both workers run their half.
    """
    swarm, survivor = rig.swarm, rig.workers["c" if victim == "b" else "b"].pid
    swarm.start(users=USERS, spawn_rate=100)
    wait_until(
        lambda: rig.halves() and bool((swarm.workers["rps"] > 0).all()),
        timeout=20,
        message="both workers running their half",
    )
    lost_before = len(rig.lost)
    cut_at = time.time()
    rig.machines.cut(victim, how)
    try:
        wait_until(lambda: len(rig.lost) > lost_before, timeout=10, message="the worker lost")
        moved = rig.lost[-1].until - cut_at  # when the master sent its users to the survivor
        assert rig.lost[-1].worker == rows_by_pid(swarm)[rig.workers[victim].pid]["id"]
        assert moved <= TIMINGS.heartbeat_timeout + 1
        wait_until(
            lambda: rows_by_pid(swarm)[survivor]["users"] == USERS,
            timeout=TIMINGS.heartbeat_timeout + 3,
            message="its users running on the other worker",
        )
        time.sleep(max(0.0, cut_at + PARTITION - time.time()))  # the outage under test
    finally:
        rig.machines.restore(victim, how)
    restored = time.monotonic()
    if at_once:
        wait_until(
            lambda: bool((swarm.workers["state"] != "lost").all()), timeout=20, message="back"
        )
    else:
        wait_until(rig.halves, timeout=20, message="the worker back with its half")
    back = time.monotonic() - restored
    swarm.stop()
    stopped = time.monotonic() - restored - back
    counts = rig.target.counts()
    assert reached_target(swarm) == counts
    when = "at once" if at_once else "settled"
    return (
        f"{victim} {how:4} {when}: users moved {moved:.1f} s after the cut; back {back:.1f} s "
        f"after the link returned; stopped in {stopped:.1f} s; {sum(counts.values())} requests"
    )


def test_partitions_move_users_and_lose_no_request(machines: Machines, tmp_path: Path) -> None:
    """Classes defined here run on workers of two other machines; each 7 s partition of one
    worker moves its users to the other within heartbeat_timeout + 1 s, the worker re-joins
    when the link returns, and after each graceful stop the requests per endpoint equal what
    the target received, exactly."""
    keys = keygen(tmp_path / "keys")
    endpoint = start_master(machines, keys)
    worker = command("worker", "--master", endpoint, "--keys", str(keys))
    workers = {name: machines.start(name, worker, f"worker-{name}") for name in ("b", "c")}
    config = SwarmConfig(master=TIMINGS, runs_dir=None)
    control = f"tcp://{machines.address['a']}:{CONTROL_PORT}"
    with (
        CountingServer(host=HOST_ADDRESS) as target,
        Swarm(
            Reader, Submitter, host=target.url, master=control, keys=keys, workers=2, config=config
        ) as swarm,
    ):
        rig = Rig(machines, workers, swarm, target, [])
        swarm.on_frame(lambda update: rig.lost.extend(update.lost))
        assert set(rows_by_pid(swarm)) == {proc.pid for proc in workers.values()}
        for cycle in range(PARTITIONS):
            # Each worker, each way of cutting, stopping at once or once settled.
            victim, how = "bc"[cycle % 2], ("port", "link")[cycle // 2 % 2]
            done = partition(rig, victim, how, at_once=cycle % 2 == cycle // 2 % 2)
            print(f"partition {cycle + 1}/{PARTITIONS}, {done}")
        assert all(proc.poll() is None for proc in workers.values())
    assert len(rig.lost) == PARTITIONS
    assert not any("master silent" in machines.log(f"worker-{name}") for name in workers)
