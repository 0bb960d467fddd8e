"""Day-long runs, shortened: a controller killed mid-run leaves a run that loads from disk,
memory and ingest time stay flat over simulated hours, and the fault soak accounts for
every request. ``make soak`` runs the fault soak for about 20 minutes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultsoak import Soak, run

from notebookswarm.notebook.run import Run

HERE = Path(__file__).resolve().parents[1]  # the tests' helpers
#: The controller's budget (docs/performance.md): a day of 100 endpoints under 300 MB.
BUDGET_MB = 300


def test_a_killed_controller_leaves_an_incomplete_run_up_to_the_kill(
    tmp_path: Path, no_strays: None
) -> None:
    """SIGKILL of the controller process mid-run: Run.load of its streamed folder marks it
    incomplete, its history reaches to within 3 s of the kill, and it holds no request
    the target did not receive."""
    soak = Soak(tmp_path)
    try:
        soak.start_controller()
        began = time.time()
        deadline = time.monotonic() + 30
        while soak.target.count() < 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # a few updates after the first ones
        killed_at = soak.sigkill_controller()
        loaded = Run.load(soak.folders[-1])
        assert loaded.complete is False
        assert "incomplete" in repr(loaded)
        times = loaded.history["time"]
        assert killed_at - times.max().timestamp() < 3.0
        assert times.min().timestamp() < began + 3.0
        assert 0 < loaded.stats.iloc[-1]["requests"] <= soak.target.count()
    finally:
        soak.close()


def test_six_simulated_hours_keep_memory_and_ingest_time_flat(tmp_path: Path) -> None:
    """Six simulated hours of 100 endpoints (an update every 4 s, fed as fast as it goes)
    streamed to disk: the controller's RSS stays under the budget and grows less than 5%
    from the second hour to the sixth (the first hour's history query leaves its heap to
    the allocator); ingest time and the last hour's history query take about the same time
    at the end as at the start."""
    out = subprocess.run(
        [sys.executable, str(HERE / "soak_replay.py"), "6", str(tmp_path), "4"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=HERE,
        check=True,
    )
    hours = [json.loads(line) for line in out.stdout.splitlines()]
    assert [h["hour"] for h in hours] == [1, 2, 3, 4, 5, 6]
    assert max(h["rss_mb"] for h in hours) < BUDGET_MB, hours
    assert hours[5]["rss_mb"] < hours[1]["rss_mb"] * 1.05, hours

    def mean(key: str, part: list[dict[str, float]]) -> float:
        return sum(h[key] for h in part) / len(part)

    assert mean("ingest_ms", hours[4:]) < mean("ingest_ms", hours[:2]) * 1.5, hours
    assert mean("history_s", hours[4:]) < mean("history_s", hours[:2]) * 2.0, hours
    assert {h["history_rows"] for h in hours} == {900 * 101}


@pytest.mark.timeout(300)
def test_fault_soak_accounts_for_every_request(tmp_path: Path, no_strays: None) -> None:
    """4 workers against a counting target through a worker SIGKILLed and replaced, one
    SIGSTOPped 8 s, the target refusing connections 5 s and stalling 10 s, a burst of 500s
    and the controller SIGKILLed: after each, every request the target saw is in the
    statistics or lost with a reason, none counted twice, and no process is left."""
    soak = run(tmp_path, cycles=1, steady=1.0)
    faults = [a.fault for a in soak.accounts]
    assert len(faults) == 7, faults
    assert all(a.ok for a in soak.accounts)
    last = soak.accounts[-1]
    assert last.target > 1000
    assert last.answered <= last.target <= last.recorded + last.lost
