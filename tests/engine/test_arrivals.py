"""The open model on real workers: rates kept, drops counted, latency corrected."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import notebookswarm as nbs
from notebookswarm.cluster import protocol
from notebookswarm.testing import CountingServer, wait_until


class Reader(nbs.FastHttpUser):
    @nbs.task
    def read(self) -> None:
        self.client.get("/problems")


class Frames:
    """Collect update frames with the monotonic time they arrived."""

    def __init__(self, swarm: nbs.Swarm) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[float, protocol.Update]] = []
        swarm.on_frame(self.add)

    def add(self, frame: protocol.Update) -> None:
        with self.lock:
            self.items.append((time.monotonic(), frame))

    def since(self, moment: float) -> list[protocol.Update]:
        with self.lock:
            return [f for t, f in self.items if t >= moment and f.reports]


@pytest.fixture
def target() -> Iterator[Any]:
    """The demo site, fast (2 ms a query, 50 connections), so it never limits the rate."""
    with nbs.demo.start_target(pool_size=50, query_ms=2) as site:
        yield site


def test_rate_is_kept_and_a_live_change_lands_within_a_second(target: Any) -> None:
    """200 arrivals a second for 10 s are within 2% of 2000; set_rate(400) shows in the
    first whole second after the call, on every worker."""
    with nbs.Swarm(Reader, host=target.url, workers=2) as swarm:
        frames = Frames(swarm)
        swarm.start(rate=200, max_users=40)
        swarm.wait("spawned", timeout=20)
        begin = time.monotonic()
        swarm.wait(11.5)
        steady = frames.since(begin + 1.5)[:10]  # ten whole seconds after the first
        arrivals = sum(f.stats.get("arr", [0])[0] for f in steady)
        assert len(steady) == 10
        assert arrivals == pytest.approx(2000, rel=0.02)
        # Change just after a frame arrived (about 0.3 s into a second): that second mixes
        # both rates and its frame comes a second later; the next frame is the first whole
        # second at the new rate.
        seen = len(frames.items)
        wait_until(lambda: len(frames.items) > seen, timeout=5, message="a frame")
        changed = time.monotonic()
        swarm.set_rate(400)
        swarm.wait(3.5)
        after = frames.since(changed + 1.5)
        assert after, "no update after the change"
        first = after[0]
        assert first.stats["arr"][0] == pytest.approx(400, rel=0.05)
        assert len(first.reports) == 2  # both workers' reports for that second
        swarm.stop()
        assert swarm.result().history["dropped"].sum() == 0


def test_too_small_a_pool_drops_arrivals_and_counts_them() -> None:
    """With one user and a 50 ms server, 100 arrivals a second overflow the backlog: the
    drops are counted, and requests plus backlog plus drops account for every arrival."""
    with CountingServer() as slow:
        slow.route("/problems", delay=0.05)
        with nbs.Swarm(Reader, host=slow.url, workers=1) as swarm:
            swarm.start(rate=100, max_users=1, max_backlog=20)
            swarm.wait(4)
            swarm.stop()
            history = swarm.history
    total = history[history["name"] == "Aggregated"]
    arrivals, late, dropped = (int(total[c].sum()) for c in ("arrivals", "late", "dropped"))
    served = int(total["requests"].sum())
    assert dropped > 100
    assert late > 0
    assert served == slow.count()
    assert served + dropped <= arrivals <= served + dropped + 20  # the rest sat in the backlog


def run_with_a_stall(swarm: nbs.Swarm, target: Any, **start: Any) -> None:
    """Start, run 4 s, stall the demo target for 1 s, run 6 s more, stop.

    The waits are the load test's own schedule, not synchronisation.
    """
    swarm.start(**start)
    swarm.wait("spawned", timeout=20)
    swarm.wait(4)
    target.stall(1.0)
    swarm.wait(6)
    swarm.stop()


def test_a_stall_shows_in_corrected_latency_but_hides_from_closed_users(target: Any) -> None:
    """A 1 s stall during 10 s at 200 arrivals/s gives a corrected p99 ≥ 0.9 s while the
    uncorrected p99 stays far lower; users that wait for responses under-report it (p95)."""
    with nbs.Swarm(Reader, host=target.url, workers=2) as swarm:
        run_with_a_stall(swarm, target, rate=200, max_users=10)
        corrected = swarm.percentiles([0.95, 0.99], by=None, corrected=True).iloc[0]
        naive = swarm.percentiles([0.99], by=None)["p99_ms"].iloc[0]

    class Paced(Reader):
        wait_time = nbs.constant_pacing(0.1)  # 20 users -> about 200 requests a second

    with nbs.Swarm(Paced, host=target.url, workers=2) as swarm:
        run_with_a_stall(swarm, target, users=20, spawn_rate=100)
        closed = swarm.percentiles([0.95], by=None)["p95_ms"].iloc[0]
    assert corrected["p99_ms"] >= 900
    assert naive < corrected["p99_ms"] / 3
    # About 10% of the arrivals fell due in the stall; the closed users sent only one
    # request each during it, so the stall is missing from their p95.
    assert corrected["p95_ms"] > 300
    assert closed < corrected["p95_ms"] / 10
