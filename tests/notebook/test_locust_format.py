"""Locust-format outputs: Locust 2.x's CSV header rows and JSON shape, our numbers in them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from notebookswarm.notebook.run import Run
from notebookswarm.notebook.rundata import RunData
from notebookswarm.stats.requests import RequestStats

from updates import as_update

T0 = 1_700_000_000
MS = 1_000_000

# Locust 2.x's header rows, as locust/stats.py (StatsCSV, StatsCSVFileWriter) writes them.
LOCUST_PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%"]
LOCUST_PERCENTILES += ["100%"]
LOCUST_STATS = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time"]
LOCUST_STATS += ["Average Response Time", "Min Response Time", "Max Response Time"]
LOCUST_STATS += ["Average Content Size", "Requests/s", "Failures/s", *LOCUST_PERCENTILES]
LOCUST_HISTORY = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s"]
LOCUST_HISTORY += [*LOCUST_PERCENTILES, "Total Request Count", "Total Failure Count"]
LOCUST_HISTORY += ["Total Median Response Time", "Total Average Response Time"]
LOCUST_HISTORY += ["Total Min Response Time", "Total Max Response Time"]
LOCUST_HISTORY += ["Total Average Content Size"]
LOCUST_FAILURES = ["Method", "Name", "Error", "Occurrences"]
LOCUST_EXCEPTIONS = ["Count", "Message", "Traceback", "Nodes"]
# locust --json: StatsEntry's serialised fields, in StatsEntryDict's order.
LOCUST_JSON_KEYS = ["name", "method", "last_request_timestamp", "start_time", "num_requests"]
LOCUST_JSON_KEYS += ["num_none_requests", "num_failures", "total_response_time"]
LOCUST_JSON_KEYS += ["max_response_time", "min_response_time", "total_content_length"]
LOCUST_JSON_KEYS += ["response_times", "num_reqs_per_sec", "num_fail_per_sec"]


def make_run() -> Run:
    """Five seconds of a run: GET / 10 a second (10..19 ms), POST /login 2 a second with one
    503 each second, an exception in user code at the third second."""
    data = RunData()
    for i in range(5):
        stats = RequestStats()
        for k in range(10):
            stats.record_request("GET", "/", (10 + k) * MS, 100, None)
        stats.record_request("POST", "/login", 50 * MS, 10, None)
        stats.record_request("POST", "/login", 70 * MS, 0, "HTTP 503 Service Unavailable")
        if i == 2:
            try:
                raise ValueError("no such page")
            except ValueError as exc:
                stats.record_exception(exc)
        update = {"start": T0 + i, "end": T0 + i + 1, "span": 1.0, "users": 12}
        update |= {"target_users": 12, "stats": stats.to_wire()}
        data.ingest(as_update(update))
    return Run(data, {"started": T0})


def read(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, list[list[str]]]:
    """The four files of make_run() written with style='locust'."""
    folder = make_run().to_csv(tmp_path / "out" / "run", style="locust")
    assert folder == tmp_path / "out"
    names = ("stats", "stats_history", "failures", "exceptions")
    return {name: read(folder / f"run_{name}.csv") for name in names}


def test_headers_are_locusts_with_ours_after(files: dict[str, list[list[str]]]) -> None:
    """Each file's header row starts with Locust 2.x's columns, in Locust's order."""
    assert files["stats"][0][: len(LOCUST_STATS)] == LOCUST_STATS
    assert files["stats"][0][len(LOCUST_STATS) :] == [
        "Corrected 50%",
        "Corrected 95%",
        "Corrected 99%",
        "Corrected 100%",
    ]
    assert files["stats_history"][0] == LOCUST_HISTORY
    assert files["failures"][0] == LOCUST_FAILURES
    assert files["exceptions"][0] == LOCUST_EXCEPTIONS


def test_stats_rows_hold_the_runs_numbers(files: dict[str, list[list[str]]]) -> None:
    """_stats.csv: one row per endpoint by name, then Aggregated, with exact counts."""
    head, *rows = files["stats"]
    table = {(r[0], r[1]): dict(zip(head, r, strict=True)) for r in rows}
    assert [(r[0], r[1]) for r in rows] == [("GET", "/"), ("POST", "/login"), ("", "Aggregated")]
    root, login, total = table["GET", "/"], table["POST", "/login"], table["", "Aggregated"]
    assert (root["Request Count"], root["Failure Count"]) == ("50", "0")
    assert (login["Request Count"], login["Failure Count"]) == ("10", "5")
    assert (total["Request Count"], total["Failure Count"]) == ("60", "5")
    assert float(root["Average Response Time"]) == pytest.approx(14.5, abs=0.01)
    assert float(root["Min Response Time"]) == pytest.approx(10.0, abs=0.01)
    assert root["100%"] == "19" and login["100%"] == "70"
    assert root["Median Response Time"] in ("14", "15")
    assert float(root["Average Content Size"]) == 100.0
    assert float(root["Requests/s"]) == pytest.approx(10.0)
    assert float(login["Failures/s"]) == pytest.approx(1.0)


def test_history_has_running_totals(files: dict[str, list[list[str]]]) -> None:
    """_stats_history.csv: an Aggregated row per update whose totals accumulate."""
    head, *rows = files["stats_history"]
    assert [r[3] for r in rows] == ["Aggregated"] * 5
    table = [dict(zip(head, r, strict=True)) for r in rows]
    assert [int(r["Timestamp"]) for r in table] == [T0 + i for i in range(1, 6)]
    assert [r["Total Request Count"] for r in table] == ["12", "24", "36", "48", "60"]
    assert [r["Total Failure Count"] for r in table] == ["1", "2", "3", "4", "5"]
    assert table[0]["User Count"] == "12"
    assert float(table[0]["Requests/s"]) == pytest.approx(12.0)
    assert table[-1]["100%"] == "70"


def test_full_history_has_every_endpoint(tmp_path: Path) -> None:
    """With full_history, every endpoint's row precedes the Aggregated one each update."""
    make_run().to_csv(tmp_path / "run", style="locust", full_history=True)
    _, *rows = read(tmp_path / "run_stats_history.csv")
    assert [r[3] for r in rows[:3]] == ["/", "/login", "Aggregated"]
    assert len(rows) == 15


def test_failures_and_exceptions_rows(files: dict[str, list[list[str]]]) -> None:
    """_failures.csv counts each error; _exceptions.csv each exception with its traceback."""
    assert files["failures"][1:] == [["POST", "/login", "HTTP 503 Service Unavailable", "5"]]
    [exception] = files["exceptions"][1:]
    assert exception[0] == "1" and "no such page" in exception[1]
    assert "ValueError" in exception[2]


def test_json_is_locusts_list_of_endpoints() -> None:
    """to_locust_json() is locust --json's shape: per endpoint, its keys, per-second counts."""
    entries = json.loads(json.dumps(make_run().to_locust_json()))
    assert [(e["method"], e["name"]) for e in entries] == [("GET", "/"), ("POST", "/login")]
    root, login = entries
    assert list(root) == LOCUST_JSON_KEYS
    assert (root["num_requests"], root["num_failures"]) == (50, 0)
    assert (login["num_requests"], login["num_failures"]) == (10, 5)
    assert root["total_response_time"] == pytest.approx(725.0, abs=0.1)
    assert sum(root["response_times"].values()) == 50
    assert sorted(int(k) for k in root["response_times"]) == list(range(10, 20))
    assert root["num_reqs_per_sec"] == {str(T0 + i): 10 for i in range(1, 6)}
    assert login["num_fail_per_sec"] == {str(T0 + i): 1 for i in range(1, 6)}
    assert root["total_content_length"] == 5000 and root["start_time"] == T0


def test_a_loaded_run_writes_the_same_files(tmp_path: Path) -> None:
    """Run.load(run.save(...)).to_csv(style='locust') writes what the original wrote."""
    run = make_run()
    run.to_csv(tmp_path / "a" / "run", style="locust")
    Run.load(run.save(tmp_path / "saved")).to_csv(tmp_path / "b" / "run", style="locust")
    for name in ("stats", "stats_history", "failures", "exceptions"):
        assert read(tmp_path / "a" / f"run_{name}.csv") == read(tmp_path / "b" / f"run_{name}.csv")
