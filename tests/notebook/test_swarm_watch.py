"""swarm.watch on a real step load: the server's rows share history's seconds and travel."""

from __future__ import annotations

from pathlib import Path

import pytest

import notebookswarm as nbs
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.notebook.run import Run
from notebookswarm.notebook.swarm import Swarm, SwarmConfig

pytestmark = pytest.mark.usefixtures("no_strays")


class Reader(nbs.FastHttpUser):
    wait_time = nbs.constant(0.02)

    @nbs.task
    def problems(self) -> None:
        self.client.get("/problems")


def test_watched_metrics_share_history_seconds_and_are_saved(tmp_path: Path) -> None:
    """During a step load, the demo target's /metrics watched from the swarm gives rows on
    the same seconds as history, a counter rate that adds up to the target's own count, and
    the rows survive save/load and appear in the report."""
    config = SwarmConfig(master=MasterConfig(heartbeat_interval=0.5))
    with (
        nbs.demo.start_target(pool_size=4, query_ms=5) as target,
        Swarm(Reader, host=target.url, workers=1, config=config) as swarm,
    ):
        assert swarm.watch(target.metrics_url, name="demo") == "demo"
        swarm.step_load(start=2, step=4, every=2, until=10)
        swarm.wait("done", timeout=60)
        run = swarm.result()
    server, history = run.server, run.history
    assert set(server["source"]) == {"demo"}
    assert not server.empty and run.server_errors.empty
    server_seconds = set(server["time"].dt.floor("s"))
    history_seconds = set(history["time"].dt.floor("s"))
    shared = server_seconds & history_seconds
    assert len(shared) >= 0.8 * len(history_seconds), (server_seconds, history_seconds)
    assert "db_pool_waiting" in set(server["metric"])
    saved = Run.load(run.save(tmp_path / "run"))
    assert saved.server.equals(run.server)
    page = run.to_html(tmp_path / "report.html").read_text()
    assert "The server&#x27;s side" in page or "The server's side" in page
