"""The real demo stack: PostgreSQL, gunicorn and the contest site, started and stopped for real."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from notebookswarm._demo import stack_sql as sql
from notebookswarm._demo.pg import PG_ROOT
from notebookswarm._demo.stack import Stack, StackError, start_stack
from notebookswarm.errors import ConfigError
from notebookswarm.testing import wait_until

pytestmark = pytest.mark.skipif(
    not list(PG_ROOT.glob("*/bin/initdb")), reason="no PostgreSQL server: run `make db-deps`"
)

SMALL: dict[str, Any] = {"contests": 3, "users": 50, "submissions": 600}
WORKERS = 3


def _leftovers(parent: Path) -> list[psutil.Process]:
    """Every process whose working directory is under ``parent`` (every stack process's is)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.cwd().startswith(str(parent)):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture
def parent() -> Iterator[Path]:
    """A directory for stacks that the unprivileged PostgreSQL account can search."""
    path = Path(tempfile.mkdtemp(prefix="nbs-stack-test-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        for process in _leftovers(path):
            process.kill()
        leftover = list(path.iterdir())
        subprocess.run(["rm", "-rf", str(path)], check=False)
        assert leftover == [], f"a stack left {leftover}"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """One stack with the default data for the tests that only look and load."""
    with start_stack(workers=WORKERS, pool_size=4) as running:
        yield running


def _scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(stack.metrics_url, timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _submits(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    key = ("http_requests_total", (("endpoint", "submit"), ("method", "POST"), ("status", "200")))
    return metrics.get(key, 0.0)


def _load_while_sampling(
    stack: Stack, clients: int, seen: Callable[[dict[str, float]], bool]
) -> tuple[dict[str, float], int]:
    """Send submits from ``clients`` threads, at least ten each, until the gauges' peaks
    satisfy ``seen`` (or 20 s pass); return the peaks and the number of submits sent."""
    peaks = {"db_pool_in_use": 0.0, "db_pool_waiting": 0.0, "app_workers_busy": 0.0}
    enough = threading.Event()
    sent = [0] * clients
    deadline = time.monotonic() + 20

    def sample() -> None:
        while not enough.is_set() and time.monotonic() < deadline:
            metrics = _scrape(stack)
            for name in peaks:
                peaks[name] = max(peaks[name], metrics[(name, ())])
            if seen(peaks):
                enough.set()

    def submit(client: int) -> None:
        with requests.Session() as session:
            while sent[client] < 10 or not (enough.is_set() or time.monotonic() > deadline):
                body = {"problem": 1, "code": f"print({sent[client]})", "username": f"c{client}"}
                session.post(f"{stack.url}/submit", json=body, timeout=30).raise_for_status()
                sent[client] += 1

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(submit, range(clients)))
    finally:
        enough.set()
        sampler.join()
    return peaks, sum(sent)


def test_endpoints_answer_the_running_contest(stack: Stack) -> None:
    """Each endpoint answers the running contest's data as the database holds it."""
    index = requests.get(stack.url, timeout=10).json()
    assert index["contest"]["id"] == 50
    assert index["contest"]["name"] == "Weekly Contest 50"
    problems = requests.get(f"{stack.url}/problems", timeout=10).json()["problems"]
    with psycopg.connect(stack.dsn) as conn:
        counts: dict[int, int] = dict(
            conn.execute(
                "SELECT problem_id, count(*) FROM submissions WHERE contest_id = 50 GROUP BY 1"
            ).fetchall()
        )
    assert [p["label"] for p in problems] == list("ABCDEFGH")
    assert {p["id"]: p["attempts"] for p in problems} == counts
    first = problems[0]["id"]
    page = requests.get(f"{stack.url}/problems/{first}", timeout=10).json()
    assert page["title"] == problems[0]["title"] and "Read the input" in page["statement"]
    assert requests.get(f"{stack.url}/problem/{first}", timeout=10).json() == page
    assert requests.get(f"{stack.url}/problems/99999", timeout=10).status_code == 404
    assert requests.get(f"{stack.url}/nowhere", timeout=10).status_code == 404
    assert requests.get(f"{stack.url}/submit", timeout=10).status_code == 405


def test_login_and_submit_store_rows(stack: Stack) -> None:
    """Login makes the user and sets a cookie; a submit under it is stored and counted."""
    with requests.Session() as session:
        login = session.post(f"{stack.url}/login", json={"username": "ada"}, timeout=10)
        assert login.json()["username"] == "ada" and session.cookies["user"] == "ada"
        answer = session.post(
            f"{stack.url}/submit", json={"problem": 393, "code": "print(42)"}, timeout=10
        ).json()
        bad = session.post(f"{stack.url}/submit", json={"problem": "x"}, timeout=10)
    assert bad.status_code == 400
    with psycopg.connect(stack.dsn) as conn:
        row = conn.execute(
            "SELECT u.username, s.problem_id, s.contest_id, s.source FROM submissions s "
            "JOIN users u ON u.id = s.user_id WHERE s.id = %s",
            [answer["submission"]],
        ).fetchone()
    assert row == ("ada", 393, 50, "print(42)")
    assert answer["username"] == "ada" and answer["verdict"] in (
        "accepted", "wrong answer", "time limit exceeded", "runtime error", "compilation error",
    )  # fmt: skip


def _leaderboard_in_python(dsn: str) -> list[dict[str, Any]]:
    """The leaderboard recomputed from raw rows, to check the SQL against."""
    with psycopg.connect(dsn) as conn:
        (starts,) = conn.execute("SELECT starts_at FROM contests WHERE id = 50").fetchone() or ()
        rows = conn.execute(
            "SELECT user_id, problem_id, submitted_at FROM submissions "
            "WHERE contest_id = 50 AND verdict = 'AC'"
        ).fetchall()
        names: dict[int, str] = dict(conn.execute("SELECT id, username FROM users").fetchall())
    firsts: dict[tuple[int, int], Any] = {}
    for user, problem, at in rows:
        firsts[user, problem] = min(at, firsts.get((user, problem), at))
    scores: dict[int, list[Any]] = {}
    for (user, _), at in firsts.items():
        elapsed: timedelta = at - starts
        seconds = Decimal(elapsed.days * 86400 + elapsed.seconds) + Decimal(
            elapsed.microseconds
        ) / Decimal(1_000_000)
        score = scores.setdefault(user, [0, Decimal(0)])
        score[0] += 1
        score[1] += seconds
    ranked = sorted(
        (-solved, int((total / 60).quantize(Decimal(1), ROUND_HALF_UP)), user)
        for user, (solved, total) in scores.items()
    )[: sql.LEADERBOARD_ROWS]
    return [
        {"rank": rank, "name": names[user], "solved": -minus, "penalty": penalty}
        for rank, (minus, penalty, user) in enumerate(ranked, start=1)
    ]


def test_leaderboard_matches_the_rows(stack: Stack) -> None:
    """The leaderboard is the top 20 by solved then penalty, recomputed from the raw rows."""
    answer = requests.get(f"{stack.url}/leaderboard", timeout=30).json()
    assert answer["contest"] == 50
    assert answer["rows"] == _leaderboard_in_python(stack.dsn)


def _buffers(plan: str) -> int:
    """Pages the whole query touched: the top node's shared hit + read."""
    first = re.search(r"Buffers: shared((?: \w+=\d+)+)", plan)
    assert first is not None, plan
    return sum(int(n) for n in re.findall(r"=(\d+)", first.group(1)))


def test_index_turns_the_leaderboards_seq_scan_into_an_index_scan(stack: Stack) -> None:
    """Without the index the leaderboard scans all submissions; with it, a few pages."""
    assert not stack.has_index()
    before = stack.explain_leaderboard(analyze=True)
    assert "Seq Scan on submissions" in before and sql.INDEX_NAME not in before
    stack.add_index()
    try:
        assert stack.has_index()
        after = stack.explain_leaderboard(analyze=True)
        assert "Seq Scan on submissions" not in after
        assert f"Index Scan using {sql.INDEX_NAME} on submissions" in after
        # Pages read is exact for given data, where time is not: 7,210 against 221.
        assert _buffers(before) > 10 * _buffers(after)
        fast = requests.get(f"{stack.url}/leaderboard", timeout=30).json()["rows"]
        assert fast == _leaderboard_in_python(stack.dsn)
    finally:
        stack.drop_index()
    assert not stack.has_index()


def test_metrics_parse_and_pool_gauges_follow_the_load(stack: Stack) -> None:
    """Under two clients' submits the pool lends two connections; counts match the requests."""
    before = _scrape(stack)
    assert before[("db_pool_size", ())] == WORKERS * 4
    assert before[("app_workers", ())] == WORKERS
    peaks, sent = _load_while_sampling(stack, 2, lambda p: p["db_pool_in_use"] >= 2)
    after = _scrape(stack)
    assert _submits(after) - _submits(before) == sent
    # Each submit holds its connection 20 ms for the judge, so both are seen in flight.
    assert peaks["db_pool_in_use"] == 2 and peaks["app_workers_busy"] == 2
    assert peaks["db_pool_waiting"] == 0
    for gauge in ("db_pool_in_use", "db_pool_waiting", "app_workers_busy"):
        assert after[(gauge, ())] == 0
    histogram = ("http_request_duration_seconds_count", (("endpoint", "submit"),))
    assert after[histogram] - before.get(histogram, 0) == sent


def test_db_metrics_counts_connections_statements_and_commits(stack: Stack) -> None:
    """db_metrics gives floats: the pools' connections, each query run, commits that grow."""
    first = stack.db_metrics()
    assert all(isinstance(value, float) for value in first.values())
    wait_until(
        lambda: stack.db_metrics()["pg_connections"] == WORKERS * 4,
        timeout=15,
        message="every pooled database connection",
    )
    requests.get(f"{stack.url}/problems", timeout=30).raise_for_status()
    requests.get(f"{stack.url}/leaderboard", timeout=30).raise_for_status()
    now = stack.db_metrics()
    assert now["pg_problem_list_calls_total"] == first["pg_problem_list_calls_total"] + 1
    assert now["pg_leaderboard_calls_total"] == first["pg_leaderboard_calls_total"] + 1
    assert now["pg_leaderboard_seconds_total"] > first["pg_leaderboard_seconds_total"]
    assert now["pg_statements_calls_total"] >= first["pg_statements_calls_total"] + 2
    # pg_stat_database's counters are published within a second of a busy backend's work
    # and within ten of an idle one's.
    wait_until(
        lambda: stack.db_metrics()["pg_xact_commit_total"] > first["pg_xact_commit_total"],
        timeout=15,
        message="a commit after the first scrape",
    )
    assert first["pg_submissions_rows"] >= 250_000


def test_cache_spares_the_database_and_restart_keeps_the_url(stack: Stack) -> None:
    """With the cache on, repeated leaderboards hit the database once per worker at most."""
    url = stack.url
    stack.restart(cache=True, cache_ttl=600)
    try:
        assert stack.url == url and stack.settings.cache
        calls = stack.db_metrics()["pg_leaderboard_calls_total"]
        for _ in range(12):
            requests.get(f"{stack.url}/leaderboard", timeout=30).raise_for_status()
        metrics = _scrape(stack)
        misses = metrics[("app_cache_requests_total", (("result", "miss"),))]
        hits = metrics[("app_cache_requests_total", (("result", "hit"),))]
        assert hits + misses == 12 and 1 <= misses <= WORKERS
        # The database ran the leaderboard query once per miss and never for a hit.
        assert stack.db_metrics()["pg_leaderboard_calls_total"] == calls + misses
    finally:
        stack.restart(cache=False)


def test_threads_beyond_the_pool_wait_for_connections(stack: Stack) -> None:
    """One worker of four threads with a pool of one: the other submits wait for it."""
    stack.restart(workers=1, threads=4, pool_size=1)
    try:
        assert _scrape(stack)[("app_workers", ())] == 4
        peaks, _ = _load_while_sampling(stack, 3, lambda p: p["db_pool_waiting"] >= 2)
        assert peaks["db_pool_in_use"] == 1
        assert peaks["db_pool_waiting"] == 2  # three submits, one connection
    finally:
        stack.restart(workers=WORKERS, threads=1, pool_size=4)


def test_attribution_says_the_busy_workers_wait_for_the_database(stack: Stack) -> None:
    """The default setup (two sync app workers) under a step load past its knee: the
    workers are the limit, held at 2 of 2, and most of their seconds at the knee are the
    database's statements, which the sentence names beside them."""
    import notebookswarm as nbs
    from notebookswarm.analysis import capacity

    class Contestant(nbs.FastHttpUser):
        wait_time = nbs.between(0.5, 1.5)

        @nbs.task(2)
        def problems(self) -> None:
            self.client.get("/problems")

        @nbs.task
        def leaderboard(self) -> None:
            self.client.get("/leaderboard")

    stack.restart(workers=2, threads=1, pool_size=4)
    try:
        with nbs.Swarm(Contestant, host=stack.url, workers=1) as swarm:
            swarm.watch(stack.metrics_url, name="site")
            swarm.watch(stack.db_metrics, name="postgres")
            swarm.step_load(start=30, step=30, every="3s", until=300)
            swarm.wait("done", timeout=120)
            run = swarm.result()
    finally:
        stack.restart(workers=WORKERS, threads=1, pool_size=4)
    found = capacity(run, think_time=1.0).server
    assert found is not None and found.limit == "app_workers_busy", found
    [held] = found.table.loc[found.table["metric"] == "app_workers_busy", "bound"]
    assert held == 2
    top = found.time.iloc[0]
    assert top["metric"] == "pg_statements_seconds_total", found.time
    assert top["share_of_bound"] >= 0.5, found.time
    assert "seconds spent per second at the knee: pg_statements_seconds_total" in found.sentence


def test_stop_leaves_no_process_and_no_directory(parent: Path) -> None:
    """stop() ends PostgreSQL, gunicorn, its workers and the watchdog and removes the files."""
    stack = start_stack(parent_dir=str(parent), **SMALL)
    running = _leftovers(parent)
    names = " ".join(p.name() for p in running)
    assert "postgres" in names and stack.directory.exists()
    assert {p.pid for p in running} >= set(stack.pids().values())
    assert len(running) >= 1 + 1 + 2 + 1  # postmaster, gunicorn master, 2 workers, watchdog
    stack.stop()
    assert stack.stopped and not stack.directory.exists()
    _gone, alive = psutil.wait_procs(running, timeout=5)
    assert alive == []


def test_start_failing_on_the_database_port_cleans_up(parent: Path) -> None:
    """A database port in use fails the start with postgres' reason and leaves nothing."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(StackError, match="postgres exited"):
            start_stack(db_port=port, parent_dir=str(parent), **SMALL)
    assert list(parent.iterdir()) == [] and _leftovers(parent) == []


def test_start_failing_after_the_database_is_up_cleans_up(parent: Path) -> None:
    """A site port in use fails the start after PostgreSQL ran and loaded; nothing stays."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            start_stack(port=port, parent_dir=str(parent), **SMALL)
    assert list(parent.iterdir()) == [] and _leftovers(parent) == []


def test_an_exception_in_the_with_block_stops_the_stack(parent: Path) -> None:
    """Leaving the with block by an exception still stops everything."""
    with (
        pytest.raises(RuntimeError, match="test body"),
        start_stack(parent_dir=str(parent), **SMALL) as stack,
    ):
        assert requests.get(stack.url, timeout=10).status_code == 200
        raise RuntimeError("test body failed")
    assert list(parent.iterdir()) == [] and _leftovers(parent) == []


def test_bad_settings_raise_before_anything_starts(parent: Path) -> None:
    """A bad setting is a ConfigError naming it, and nothing was started."""
    with pytest.raises(ConfigError, match="workers=0"):
        start_stack(workers=0, parent_dir=str(parent))
    with pytest.raises(ConfigError, match="cache_ttl"):
        start_stack(cache_ttl=-1, parent_dir=str(parent))
    assert list(parent.iterdir()) == []


_OWNER = """
import json, sys, time
from notebookswarm._demo.stack import start_stack
stack = start_stack(parent_dir=sys.argv[1], contests=3, users=50, submissions=600)
print(json.dumps({"directory": str(stack.directory), "url": stack.url}), flush=True)
time.sleep(120)
"""


def test_watchdog_cleans_up_after_a_killed_owner(parent: Path) -> None:
    """When the owning process is killed, the watchdog ends the stack and removes its files."""
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(parent)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()  # the owner prints once the stack serves, or dies
        started = json.loads(line)
        assert requests.get(started["url"], timeout=10).status_code == 200
        assert len(_leftovers(parent)) >= 4
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    wait_until(
        lambda: _leftovers(parent) == [] and not os.listdir(parent),
        timeout=15,
        message="no process or file of the stack left",
    )
