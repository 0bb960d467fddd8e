"""Capacity, knee and comparison: on made-up runs exactly, and on the demo target for real."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import notebookswarm as nbs
from notebookswarm.analysis import capacity, compare, degradation
from notebookswarm.errors import ConfigError
from notebookswarm.notebook.run import Run
from notebookswarm.notebook.rundata import RunData
from notebookswarm.stats.requests import RequestStats

from updates import as_update

T0 = 1_700_000_000.0


def synthetic_run(plateau: float, steps: list[int], seconds: int = 5) -> Run:
    """A run whose throughput is min(users * 10, plateau) req/s with latency growing past it."""
    data = RunData()
    t = T0
    meta_steps = []
    for users in steps:
        meta_steps.append([t, t + seconds, users])
        rate = min(users * 10, plateau)
        latency_ms = 20 if users * 10 <= plateau else 20 * users * 10 / plateau
        for _ in range(seconds):
            delta = RequestStats()
            for _ in range(int(rate)):
                delta.record_request("GET", "/a", int(latency_ms * 1e6), 10, None)
            data.ingest(
                as_update(
                    {
                        "start": t,
                        "end": t + 1,
                        "state": "running",
                        "users": users,
                        "stats": delta.to_wire(),
                        "workers": [],
                        "reports": [["w", 0]],
                        "span": 1.0,
                    }
                )
            )
            t += 1
    return Run(data, {"steps": meta_steps})


def test_capacity_finds_the_plateau_and_the_knee() -> None:
    """Throughput per step is what was sent; the knee is the first step at 90% of the peak."""
    run = synthetic_run(plateau=300, steps=[10, 20, 30, 40, 50])
    cap = capacity(run)
    assert list(cap.table["users"]) == [10, 20, 30, 40, 50]
    assert [round(x) for x in cap.table["throughput"]] == [100, 200, 300, 300, 300]
    assert int(cap.knee["users"]) == 30
    assert cap.throughput == pytest.approx(300)
    assert cap.table["p95_ms"].iloc[-1] == pytest.approx(20 * 500 / 300, rel=0.01)


def test_littles_law_is_flagged_where_it_fails() -> None:
    """users ≈ throughput x (response time + think time) holds for a consistent run and is
    flagged when the think time given does not match."""
    run = synthetic_run(plateau=10_000, steps=[10, 20])  # 10 req/s per user, 20 ms each
    assert capacity(run, think_time=0.08).table["littles_law_ok"].all()
    assert not capacity(run, think_time=1.0).table["littles_law_ok"].any()


def test_capacity_needs_a_step_load() -> None:
    """A run without steps gets an error that says to use step_load."""
    with pytest.raises(ConfigError, match="step_load"):
        capacity(Run(RunData(), {}))


def test_compare_reports_deltas_and_changes() -> None:
    """compare() puts both runs side by side with after-minus-before and the relative change."""
    before = synthetic_run(plateau=300, steps=[50])
    after = synthetic_run(plateau=600, steps=[50])
    table = compare(before, after).table.set_index("name")
    row = table.loc["/a"]
    assert row["rps_after"] > row["rps_before"]
    assert row["rps_delta"] == pytest.approx(row["rps_after"] - row["rps_before"])
    assert row["p95_ms_change"] == pytest.approx(
        (row["p95_ms_after"] - row["p95_ms_before"]) / row["p95_ms_before"]
    )
    assert row["p95_ms_change"] < 0
    assert list(table.index)[-1] == "Aggregated"


USERS = """
from notebookswarm import FastHttpUser, task, constant

class Reader(FastHttpUser):
    wait_time = constant(0)

    @task
    def problems(self):
        self.client.get("/problems")
"""


@pytest.fixture(scope="module")
def tuned_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Step loads on the demo target before and after doubling its database pool."""
    users = tmp_path_factory.mktemp("users") / "reader.py"
    users.write_text(USERS)
    runs: dict[str, Any] = {}
    with (
        nbs.demo.start_target(pool_size=8, query_ms=20) as target,
        nbs.Swarm(str(users), host=target.url, workers=2) as swarm,
    ):
        for label, pool in (("before", 8), ("after", 16)):
            target.configure(pool_size=pool)
            swarm.reset_stats()
            swarm.step_load(start=4, step=4, every="3s", until=32, spawn_rate=100)
            swarm.wait("done", timeout=120)
            runs[label] = swarm.result()
            runs[f"{label}_overloaded"] = swarm.overloaded
    yield runs


def test_knee_on_the_demo_target(tuned_runs: dict[str, Any]) -> None:
    """With 8 connections at 20 ms a query the detected capacity is 400 req/s ± 20%;
    doubling the pool raises it accordingly."""
    before = capacity(tuned_runs["before"]).throughput
    after = capacity(tuned_runs["after"]).throughput
    assert before == pytest.approx(400, rel=0.2)
    assert after > 1.5 * before


def test_compare_sees_the_tuning_help(tuned_runs: dict[str, Any]) -> None:
    """compare() shows more throughput and lower p95 after enlarging the pool."""
    row = compare(tuned_runs["before"], tuned_runs["after"]).table.set_index("name")
    total = row.loc["Aggregated"]
    assert total["rps_change"] > 0.3
    assert total["p95_ms_change"] < 0


def test_degradation_names_the_endpoint(tuned_runs: dict[str, Any]) -> None:
    """degradation() says at which step /problems' p95 doubled before tuning."""
    table = degradation(tuned_runs["before"])
    row = table.set_index("name").loc["/problems"]
    assert not math.isnan(row["baseline_p95_ms"])
    assert row["degraded_at_users"] <= 32


def test_html_report_is_self_contained(tuned_runs: dict[str, Any], tmp_path: Path) -> None:
    """The report is one file: plotly.js inline, no script or stylesheet from elsewhere."""
    path = tuned_runs["after"].to_html(tmp_path / "report.html")
    text = path.read_text()
    assert "Plotly.newPlot" in text
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=", text)
