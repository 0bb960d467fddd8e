"""The benchmark harness (bench/) at tiny numbers: its real code paths run without nginx, wrk
or Locust, and its parsers read the tools' real output formats."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from notebookswarm.testing import descendants, wait_until

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8080/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   366.21us  120.55us   4.11ms   89.74%
    Req/Sec   135.91k     4.10k  141.05k    72.00%
  Latency Distribution
     50%  342.00us
     75%  390.00us
     90%  471.00us
     99%    1.02ms
  1352430 requests in 10.00s, 198.62MB read
Requests/sec: 135203.52
Transfer/sec:     19.86MB
"""


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, ModuleType]]:
    """The harness modules, imported the way bench/run_bench.py imports them."""
    monkeypatch.syspath_prepend(str(BENCH))
    import report
    import throughput

    yield {"throughput": throughput, "report": report}


def test_wrk_latency_distribution_and_count_are_read_in_milliseconds(
    bench: dict[str, ModuleType],
) -> None:
    """wrk's ``--latency`` percentiles (us, ms, s) and request count are read as ms and an int."""
    parsed = bench["throughput"].parse_wrk(WRK_OUTPUT)
    assert parsed == pytest.approx({"p50_ms": 0.342, "p99_ms": 1.02, "reported_requests": 1352430})


def test_locust_percentiles_follow_locusts_own_rule(bench: dict[str, ModuleType]) -> None:
    """Locust's percentiles are read from its --json-file buckets by its own rule."""
    # Values checked against locust.stats.calculate_response_time_percentile (2.47): it
    # walks down from the slowest bucket, so one 120 ms request in 100 is the p99.
    entries = [
        {"num_requests": 90, "num_none_requests": 0, "response_times": {"1": 50, "2": 40}},
        {"num_requests": 10, "num_none_requests": 0, "response_times": {"4": 9, "120": 1}},
    ]
    throughput = bench["throughput"]
    got = throughput.locust_percentiles(entries)
    assert got == {"p50_ms": 2.0, "p99_ms": 120.0, "reported_requests": 100}
    assert throughput.locust_percentile({1: 50, 2: 40, 4: 9, 120: 1}, 100, 0.98) == 4


def test_smoke_run_measures_every_part_and_leaves_no_process(tmp_path: Path) -> None:
    """``run_bench.py --smoke`` runs all four parts with real processes and prints the tables."""
    before = descendants()
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_bench.py"), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    parts = results["parts"]
    assert set(parts) == {"throughput", "memory", "master", "startup"}

    runs = parts["throughput"]["runs"]
    assert set(runs) == {"ours-fast", "ours-http"}
    for (run,) in runs.values():
        assert run["requests"] > 0 and run["cpu_s"] > 0
        assert run["rate"] == pytest.approx(run["requests"] / run["cpu_s"])
        assert run["reported_requests"] >= run["requests"] - 10  # theirs spans the window
        assert 0 < run["p50_ms"] <= run["p99_ms"]

    for series in ("ours", "ours_unparked"):
        steps = parts["memory"][series]["steps"]
        assert [s["users"] for s in steps] == [1, 300]
        assert steps[1]["rss_bytes"] > 0 and steps[1]["kb_per_user"] > 0

    (master,) = parts["master"]["series"]
    assert [s["workers"] for s in master["steps"]] == [2, 4]
    assert [round(s["reports_per_update"]) for s in master["steps"]] == [2, 4]
    assert master["ingest"]["frames"] > 0 and master["ingest"]["ingest_ms"] > 0

    assert parts["startup"]["first_request_ms"] > 0

    for heading in ("Requests per generator CPU-second", "Memory per waiting user", "Master"):
        assert heading in proc.stdout
    wait_until(lambda: not descendants() - before, timeout=5, message="no stray process")
