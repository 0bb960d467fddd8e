"""A locustfile that names every request differently cannot make the controller grow without
bound: one warning with the pattern to use, names folded past the cap, reads stay quick."""

from __future__ import annotations

import random
import time

import psutil
import pytest

import notebookswarm as nbs
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.notebook.swarm import Swarm, SwarmConfig
from notebookswarm.stats.names import OVERFLOW_NAME
from notebookswarm.testing import CountingServer

pytestmark = pytest.mark.usefixtures("no_strays")

#: Controller memory a 10 s run of 20,000 names may add (docs/performance.md).
MEMORY_BUDGET = 200 * 2**20


class Scatter(nbs.FastHttpUser):
    wait_time = nbs.constant(0)

    @nbs.task
    def item(self) -> None:
        self.client.get("/item", name=f"/item/{random.randrange(20000)}")


class Few(nbs.FastHttpUser):
    wait_time = nbs.constant(0)

    @nbs.task
    def item(self) -> None:
        self.client.get("/item", name=f"/item/{random.randrange(20)}")


def run_for(user: type, target: CountingServer, seconds: float) -> tuple[Swarm, float, int]:
    """Run ``user`` for ``seconds``; return the stopped swarm, a stats read's time, RSS growth."""
    me = psutil.Process()
    before = me.memory_info().rss
    config = SwarmConfig(master=MasterConfig(heartbeat_interval=0.5))
    swarm = Swarm(user, host=target.url, workers=1, config=config)
    swarm.start(users=10, spawn_rate=100)
    swarm.wait(seconds)
    swarm.stop()
    began = time.perf_counter()
    swarm.stats  # noqa: B018  # the read being measured
    read = time.perf_counter() - began
    return swarm, read, me.memory_info().rss - before


def test_twenty_thousand_names_warn_once_fold_and_stay_bounded(target: CountingServer) -> None:
    """20,000 distinct names at full speed for 10 s: one warning naming /item/{n}, names past
    the cap counted under '<other names>', every request counted, controller memory within
    budget and a stats read within 50x a 20-name run's."""
    few, few_read, _ = run_for(Few, target, 3)
    few.close()
    sent_before = target.count()
    swarm, read, grown = run_for(Scatter, target, 10)
    try:
        warnings = [w for w in swarm.warnings if "request names" in w]
        assert len([w for w in warnings if "distinct" in w]) == 1, swarm.warnings
        assert any("/item/{n}" in w for w in warnings), warnings
        stats = swarm.stats
        names = set(stats["name"])
        assert OVERFLOW_NAME in names
        assert len(names) <= MasterConfig().max_names + 2  # the cap, overflow, Aggregated
        total = int(stats.loc[stats["name"] == "Aggregated", "requests"].iloc[0])
        assert total == target.count() - sent_before
        assert grown < MEMORY_BUDGET, grown
        print(
            f"stats read: {read * 1000:.1f} ms vs {few_read * 1000:.1f} ms ({read / few_read:.0f}x)"
        )
        assert read < 50 * max(few_read, 0.001)
    finally:
        swarm.close()
