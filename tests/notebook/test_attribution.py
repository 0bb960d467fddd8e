"""Which server resource hit its limit: on made-up metrics exactly, on the demo target for real."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import notebookswarm as nbs
from notebookswarm.notebook.analysis import capacity
from notebookswarm.notebook.attribution import attribute
from notebookswarm.notebook.frames import AGGREGATED
from notebookswarm.notebook.watch import Watcher
from notebookswarm.testing import wait_until

T0 = 1_700_000_000.0
USERS = [10, 20, 30, 40, 50, 60]


def made_up(series: dict[tuple[str, str], list[float]], seconds: int = 5) -> pd.DataFrame:
    """Watched rows holding each series' value per step for the whole step."""
    rows = []
    for (metric, kind), levels in series.items():
        for i, level in enumerate(levels):
            for s in range(seconds):
                rows.append((T0 + i * seconds + s + 1, "app", metric, "", kind, level))
    frame = pd.DataFrame(rows, columns=["time", "source", "metric", "labels", "kind", "value"])
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    return frame


def steps(seconds: int = 5) -> list[tuple[float, float, int]]:
    """The step windows of USERS."""
    return [(T0 + i * seconds, T0 + (i + 1) * seconds, n) for i, n in enumerate(USERS)]


def capacity_table(knee: int = 2) -> tuple[pd.DataFrame, pd.Series]:
    """Throughput rising to a plateau at step `knee`, p95 climbing after it."""
    throughput = [min(n * 10, USERS[knee] * 10) for n in USERS]
    p95 = [20.0 if n <= USERS[knee] else 20.0 * n / USERS[knee] for n in USERS]
    table = pd.DataFrame({"users": USERS, "throughput": throughput, "p95_ms": p95})
    return table, table.iloc[knee]


def test_the_inner_pool_ranks_before_the_workers_queue_it_fills() -> None:
    """The pool saturates at the knee, the workers' line fills later and grows larger: the
    pool's waiting gauge ranks first, its in-use gauge beside it, and the sentence says so."""
    table, knee = capacity_table()
    server = made_up(
        {
            ("db_pool_size", "gauge"): [8] * 6,
            ("db_pool_in_use", "gauge"): [3, 6, 8, 8, 8, 8],
            ("db_pool_waiting", "gauge"): [0, 0, 6, 24, 24, 24],
            ("app_workers", "gauge"): [32] * 6,
            ("app_workers_busy", "gauge"): [3, 6, 14, 32, 32, 32],
            ("app_workers_queued", "gauge"): [0, 0, 0, 10, 60, 110],
            ("http_requests_total", "rate"): [100, 200, 300, 300, 300, 300],
            ("idle_connections", "gauge"): [5, 5, 5, 5, 5, 5],
        }
    )
    found = attribute(server, steps(), table, knee)
    ranked = list(found.table["metric"])
    assert ranked[:2] == ["db_pool_waiting", "db_pool_in_use"]
    assert ranked.index("app_workers_queued") > ranked.index("db_pool_in_use")
    assert "http_requests_total" not in ranked and "idle_connections" not in ranked
    assert found.limit == "db_pool_waiting"
    assert found.sentence.startswith(
        "db_pool_waiting grew from 0 to 24 at 60 users while db_pool_in_use held at 8 of 8"
    )
    row = found.table.set_index("metric").loc["db_pool_in_use"]
    assert (row["before"], row["at"], row["after"], row["bound"]) == (6, 8, 8, 8)
    assert row["rule"] == "held at its bound" and row["onset_users"] == 30
    levels = found.levels.set_index("metric").loc["db_pool_waiting"]
    assert list(levels[[f"users_{n}" for n in USERS]]) == [0, 0, 6, 24, 24, 24]


def test_cpu_at_a_core_and_a_rising_cost_are_named() -> None:
    """A process's CPU held near one core is a limit; a per-request cost that doubles is
    evidence ranked after it; nothing else claims anything."""
    table, knee = capacity_table()
    server = made_up(
        {
            ("process_cpu_seconds_total", "rate"): [0.3, 0.6, 0.97, 0.99, 0.98, 0.99],
            ("http_request_duration_seconds", "mean"): [0.02, 0.02, 0.02, 0.027, 0.033, 0.04],
        }
    )
    found = attribute(server, steps(), table, knee)
    assert list(found.table["rule"]) == ["held at its bound", "cost rises"]
    assert found.sentence.startswith(
        "process_cpu_seconds_total held at 0.99 cores of 1 from 30 users on"
    )


def test_beside_a_held_bound_the_sentence_says_where_the_time_went() -> None:
    """Two sync app workers held at 2 of 2 while the database's statements take 1.7 s per
    second at the knee: the sentence names the workers, then the seconds spent per second
    that are at least a tenth of the bound, largest first (the CPU's 0.05 is not)."""
    table, knee = capacity_table()
    server = made_up(
        {
            ("app_workers", "gauge"): [2] * 6,
            ("app_workers_busy", "gauge"): [1, 1.5, 2, 2, 2, 2],
            ("pg_statements_seconds_total", "rate"): [0.3, 0.7, 1.7, 1.75, 1.74, 1.74],
            ("pg_leaderboard_seconds_total", "rate"): [0.1, 0.3, 0.6, 0.7, 0.8, 0.6],
            ("process_cpu_seconds_total", "rate"): [0.01, 0.02, 0.05, 0.05, 0.05, 0.05],
            ("http_requests_total", "rate"): [100, 200, 300, 300, 300, 300],
        }
    )
    found = attribute(server, steps(), table, knee)
    assert found.limit == "app_workers_busy"
    assert found.sentence.startswith(
        "app_workers_busy held at 2 of 2 from 30 users on; seconds spent per second at the "
        "knee: pg_statements_seconds_total 1.7 (85% of the bound), "
        "pg_leaderboard_seconds_total 0.6 (knee at 30 users;"
    )
    assert list(found.time["metric"]) == [
        "pg_statements_seconds_total",
        "pg_leaderboard_seconds_total",
    ]
    assert list(found.time["share_of_bound"]) == [0.85, 0.3]


def test_a_queue_beside_its_pool_says_where_the_pools_time_went() -> None:
    """The pool's waiters grow while its 8 connections are held: the time spent per second
    is the queries', and the time waiting for the pool (outside it) is not named."""
    table, knee = capacity_table()
    server = made_up(
        {
            ("db_pool_size", "gauge"): [8] * 6,
            ("db_pool_in_use", "gauge"): [3, 6, 8, 8, 8, 8],
            ("db_pool_waiting", "gauge"): [0, 0, 6, 24, 24, 24],
            ("db_query_seconds_total", "rate"): [2.0, 4.0, 7.6, 7.9, 7.9, 7.9],
            ("db_pool_wait_seconds_total", "rate"): [0.0, 0.0, 3.0, 9.0, 9.0, 9.0],
        }
    )
    found = attribute(server, steps(), table, knee)
    assert found.sentence.startswith(
        "db_pool_waiting grew from 0 to 24 at 60 users while db_pool_in_use held at 8 of 8; "
        "seconds spent per second at the knee: db_query_seconds_total 7.6 (95% of the bound) "
        "(knee"
    )


def test_no_evidence_says_what_to_watch() -> None:
    """Flat metrics name no limit and the sentence says which metrics would."""
    table, knee = capacity_table()
    found = attribute(made_up({("db_pool_in_use", "gauge"): [1] * 6}), steps(), table, knee)
    assert found.table.empty and found.limit is None
    assert found.sentence.startswith("no watched metric shows a limit")


class WithServer:
    """A run with watched rows beside it, as ``run.server`` holds them."""

    def __init__(self, run: Any, server: pd.DataFrame) -> None:
        self.run = run
        self.server = server

    def __getattr__(self, name: str) -> Any:
        return getattr(self.run, name)


READER = """
from notebookswarm import FastHttpUser, task, constant

class Reader(FastHttpUser):
    wait_time = constant(0)

    @task
    def problems(self):
        self.client.get("/problems")
"""


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A step load on the demo target (4 connections, 20 ms: 200 req/s) with its /metrics
    watched every second from before the load until after it."""
    users = tmp_path_factory.mktemp("users") / "reader.py"
    users.write_text(READER)
    with (
        nbs.demo.start_target(pool_size=4, query_ms=20) as target,
        nbs.Swarm(str(users), host=target.url, workers=1) as swarm,
        Watcher(every=1.0) as watcher,
    ):
        watcher.watch(target.metrics_url, name="demo")
        wait_until(lambda: len(watcher) > 0, timeout=10, message="the first scrape")
        counted = target.metrics()["endpoints"]["problems"]["requests"]
        swarm.step_load(start=2, step=2, every="3s", until=14, spawn_rate=100)
        swarm.wait("done", timeout=120)
        end = max(watcher.frame()["time"]).timestamp()
        # Two more ticks after the last request: the last second's counts are in.
        wait_until(lambda: max(watcher.frame()["time"]).timestamp() >= end + 2, timeout=10)
        watcher.stop()
        counted = target.metrics()["endpoints"]["problems"]["requests"] - counted
        run = swarm.result()
    yield {"run": run, "server": watcher.frame(), "errors": watcher.errors(), "counted": counted}


def test_watched_rows_share_the_history_seconds(watched: dict[str, Any]) -> None:
    """Every second of the history during the load has the demo's rows in the same second,
    stamped on whole seconds, and no scrape failed."""
    server, history = watched["server"], watched["run"].history
    assert watched["errors"].empty
    agg = history[(history["name"] == AGGREGATED) & (history["requests"] > 0)]
    watched_seconds = {int(t.timestamp()) for t in server["time"]}
    assert {int(t.timestamp()) for t in agg["time"]} <= watched_seconds
    assert all(t.timestamp() == int(t.timestamp()) for t in server["time"])


def test_a_counters_rate_matches_the_targets_own_count(watched: dict[str, Any]) -> None:
    """The watched rate of http_requests_total{endpoint="problems"}, over the run, adds up
    to the requests the target counted (and the swarm sent) within 2%."""
    server = watched["server"]
    rate = server[
        (server["metric"] == "http_requests_total") & (server["labels"] == 'endpoint="problems"')
    ]
    assert (rate["kind"] == "rate").all()
    seconds = rate["time"].map(lambda t: t.timestamp()).diff().fillna(1.0)
    total = float((rate["value"] * seconds).sum())
    assert total == pytest.approx(watched["counted"], rel=0.02)
    sent = int(watched["run"].stats.set_index("name").loc["/problems", "requests"])
    assert sent == watched["counted"]


def test_attribution_ranks_the_demo_pool_waiting_first(
    watched: dict[str, Any], tmp_path: Path
) -> None:
    """capacity(run) with the watched rows names db_pool_waiting first, with the pool held
    at 4 of 4, and draws the evidence on the step load's time axis."""
    cap = capacity(WithServer(watched["run"], watched["server"]))
    assert cap.server is not None
    assert cap.server.limit == "db_pool_waiting"
    assert "while db_pool_in_use held at 4 of 4" in cap.server.sentence
    waiting = cap.server.table.iloc[0]
    assert waiting["after"] >= 5 and waiting["after"] >= 3 * waiting["before"]  # it grew
    assert not math.isnan(cap.throughput)
    figure = cap.server.figure()
    assert len(figure.data) >= 3
    figure.write_html(tmp_path / "attribution.html", include_plotlyjs=False)
