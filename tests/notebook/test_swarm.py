"""The notebook controller with real processes: a master and workers on 127.0.0.1 against a
target that counts, steered from the test as a notebook would steer them."""

from __future__ import annotations

import contextlib
import random
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import notebookswarm as nbs
from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.control import ControlClient
from notebookswarm.cluster.launch import reap, start_master, start_worker
from notebookswarm.errors import ConfigError, NotebookSwarmError
from notebookswarm.notebook.loading import load_code_for_file
from notebookswarm.notebook.run import Run
from notebookswarm.notebook.swarm import Swarm, SwarmConfig
from notebookswarm.testing import CountingServer, descendants, wait_until

FAST = MasterConfig(
    heartbeat_interval=0.5, heartbeat_timeout=3.0, master_timeout=5.0, controller_timeout=5.0
)
CONFIG = SwarmConfig(master=FAST, stop_timeout=2.0)

WEB_USER = """
from notebookswarm import HttpUser, task, constant

class Visitor(HttpUser):
    wait_time = constant(0.05)

    @task
    def index(self):
        self.client.get("/")
"""


class Visitor(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def index(self) -> None:
        self.client.get("/")


def item_path(n: int) -> str:
    """A module-level helper that cell-defined users call (it travels with them)."""
    return f"/item/{n}"


pytestmark = pytest.mark.usefixtures("no_strays")


def aggregated(frame: pd.DataFrame) -> int:
    """Requests on the Aggregated row of a stats frame."""
    return int(frame.loc[frame["name"] == "Aggregated", "requests"].iloc[0])


def await_updates(swarm: Swarm, n: int) -> None:
    """Wait until ``n`` more update frames than now have arrived."""

    def updates() -> int:
        return int((swarm.history["name"] == "Aggregated").sum())

    seen = updates()
    wait_until(lambda: updates() >= seen + n, timeout=n + 5, message=f"{n} more updates")


def raises_without_processes(
    error: type[BaseException], call: Callable[[], object], match: str | None
) -> BaseException:
    before = descendants()
    with pytest.raises(error, match=match) as info:
        call()
    assert descendants() == before
    return info.value


# --- bad input, before any process ---------------------------------------------------------


class Idle(nbs.HttpUser):
    pass


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Swarm(Visitor, host="localhost:80", workers=1), "'localhost:80'"),
        (lambda: Swarm(Visitor, host="ftp://example.com", workers=1), "'ftp://example.com'"),
        (lambda: Swarm(Visitor, host="http://127.0.0.1:9", workers=0), "got 0"),
        (lambda: Swarm(Visitor, host="http://127.0.0.1:9", workers="many"), "'many'"),
        (lambda: Swarm(Idle, host="http://127.0.0.1:9", workers=1), "Idle has no tasks"),
        (lambda: Swarm(host="http://127.0.0.1:9", workers=1), "no user classes"),
        (lambda: Swarm(object, host="http://127.0.0.1:9", workers=1), "not a User subclass"),
        (lambda: Swarm("/nonexistent/users.py", workers=1), "/nonexistent/users.py"),
    ],
    ids=[
        "host",
        "scheme",
        "workers0",
        "workers-word",
        "no-tasks",
        "no-classes",
        "not-user",
        "file",
    ],
)
def test_bad_construction_is_a_config_error_and_starts_nothing(
    call: Callable[[], object], match: str
) -> None:
    """A bad host, worker count or user class raises ConfigError naming it, before any process."""
    raises_without_processes(ConfigError, call, match)


@pytest.mark.parametrize(
    ("source", "error", "line"),
    [
        (
            "from notebookswarm import HttpUser\n\nclass Broken(HttpUser:\n    pass\n",
            SyntaxError,
            3,
        ),
        ("from notebookswarm import HttpUser\n\nBase = HttpUesr\n", NameError, 3),
    ],
    ids=["syntax", "name"],
)
def test_broken_users_file_raises_with_its_file_and_line(
    users_file: Callable[..., Path], source: str, error: type[BaseException], line: int
) -> None:
    """A users file with a syntax error or a missing name raises the original error, whose
    traceback shows the file and line, and starts no process."""
    path = users_file(source, name="broken_users.py")
    exc = raises_without_processes(error, lambda: Swarm(path, host="http://127.0.0.1:9"), None)
    text = "".join(traceback.format_exception(exc))
    assert f'File "{path}", line {line}' in text


# --- a live swarm -------------------------------------------------------------------------


def test_bad_steering_is_refused_and_a_closed_swarm_says_so(target: CountingServer) -> None:
    """Zero or negative users and a zero spawn rate raise ConfigError naming the value and
    start nothing; steering a closed swarm raises NotebookSwarmError saying it is closed."""
    swarm = Swarm(Visitor, host=target.url, workers=1, config=CONFIG)
    try:
        for call, match in [
            (lambda: swarm.start(users=0), "got 0"),
            (lambda: swarm.start(users=-1), "got -1"),
            (lambda: swarm.start(users=2.5), "got 2.5"),
            (lambda: swarm.start(users=5, spawn_rate=0), "got 0"),
            (lambda: swarm.set_users(-3), "got -3"),
            (lambda: swarm.set_spawn_rate(-1.0), "got -1.0"),
        ]:
            with pytest.raises(ConfigError, match=match):
                call()
        assert swarm.state == "ready"
        assert swarm.user_count == 0
    finally:
        swarm.close()
    assert target.count() == 0
    assert swarm.state == "closed"
    with pytest.raises(NotebookSwarmError, match="closed"):
        swarm.set_users(5)
    with pytest.raises(NotebookSwarmError, match="closed"):
        swarm.start(users=5)
    swarm.close()  # a second close is a no-op


def test_cell_defined_users_run_on_the_workers_and_every_request_is_counted(
    target: CountingServer,
) -> None:
    """A class defined in a function, calling a module-level helper and a closure variable,
    reaches the workers by value; after stop() the Aggregated count equals the target's."""
    prefix = "/cell"

    class CellUser(nbs.HttpUser):
        wait_time = nbs.constant(0.02)

        @nbs.task
        def fetch(self) -> None:
            self.client.get(prefix + item_path(random.randrange(3)), name=prefix + "/item")

    with Swarm(CellUser, host=target.url, workers=2, config=CONFIG) as swarm:
        swarm.start(users=4, spawn_rate=100)
        wait_until(lambda: target.count() >= 100, timeout=20, message="traffic")
        swarm.stop()
        stats = swarm.stats
        assert swarm.state == "stopped"
    assert set(target.counts()) == {("GET", f"/cell/item/{n}") for n in range(3)}
    assert aggregated(stats) == target.count()
    rows = stats.set_index(["method", "name"])
    assert rows.loc[("GET", "/cell/item"), "requests"] == target.count()
    assert rows.loc[("GET", "/cell/item"), "failures"] == 0


def test_stop_right_after_start_stops_the_users(target: CountingServer) -> None:
    """stop() called at once after start(), before any update arrived, still stops the users."""
    with Swarm(Visitor, host=target.url, workers=1, config=CONFIG) as swarm:
        for _ in range(2):  # from "ready", then from "stopped"
            swarm.start(users=2, spawn_rate=100)
            swarm.stop()
            assert swarm.state == "stopped"
            await_updates(swarm, 2)  # whatever was in flight has landed
            settled = target.count()
            await_updates(swarm, 2)
            assert target.count() == settled
            assert swarm.user_count == 0
        assert aggregated(swarm.stats) == target.count()


def test_frames_reach_callbacks_and_iterators_which_end_on_close(target: CountingServer) -> None:
    """on_frame callbacks get every update while the swarm runs; a frames() iterator yields
    them and ends when the swarm closes, or after its timeout without a frame."""
    got: list[protocol.Update] = []
    iterated: list[protocol.Update] = []
    swarm = Swarm(Visitor, host=target.url, workers=1, config=CONFIG)
    try:
        swarm.on_frame(got.append)
        frames = swarm.frames(timeout=30)
        first = next(frames)  # registers the iterator; the next update arrives within 1 s
        reader = threading.Thread(target=lambda: iterated.extend(frames), daemon=True)
        reader.start()
        swarm.start(users=2, spawn_rate=100)
        wait_until(
            lambda: sum(f.state == "running" for f in got) >= 2, timeout=20, message="frames"
        )
        assert isinstance(first, protocol.Update)
        wait_until(
            lambda: any(f.users == 2 for f in iterated), timeout=5, message="iterated frames"
        )
        quiet = time.monotonic()
        for _ in swarm.frames(timeout=0.2):  # updates come once a second: it ends soon
            assert time.monotonic() - quiet < 10
        swarm.stop()
    finally:
        swarm.close()
    reader.join(timeout=5)
    assert not reader.is_alive(), "the frames() iterator did not end on close"
    assert len(iterated) >= 2
    assert [f.end for f in iterated] == sorted(f.end for f in iterated)


def test_state_user_count_wait_and_reprs_follow_the_swarm(target: CountingServer) -> None:
    """state goes ready → spawning → running → stopped → closed, wait("spawned") returns once
    every user runs, and repr/_repr_html_ show the state and the users."""
    with Swarm(Visitor, host=target.url, workers=1, config=CONFIG) as swarm:
        states: list[str] = []
        swarm.on_frame(lambda f: states.append(f.state))
        assert swarm.state == "ready"
        assert repr(swarm).startswith("<Swarm ready: 0 users")
        swarm.start(users=3, spawn_rate=4)  # under a second of spawning
        swarm.wait("spawned", timeout=20)
        assert swarm.state == "running"
        assert swarm.user_count == 3
        assert "running: 3 users" in repr(swarm)
        page = swarm._repr_html_()
        assert "<td>running</td>" in page
        assert "<td>3</td>" in page
        with pytest.raises(ConfigError, match="'soon'"):
            swarm.wait("soon")
        swarm.stop()
        assert swarm.state == "stopped"
        assert swarm.user_count == 0
        swarm.wait("stopped", timeout=0.1)  # already there
        assert "<td>stopped</td>" in swarm._repr_html_()
    assert swarm.state == "closed"
    assert repr(swarm).startswith("<Swarm closed")
    changes = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert changes[0] == "spawning"
    assert changes[-1] == "stopped"
    assert "running" in changes
    assert changes.index("running") < changes.index("stopped")


def test_run_blocks_for_the_duration_and_returns_the_run(
    target: CountingServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """run(users, spawn_rate, duration) blocks for the duration, stops, and returns a Run whose
    Aggregated count equals the target's; the Run saves and loads back unchanged."""
    with Swarm(Visitor, host=target.url, workers=1, config=CONFIG) as swarm:
        began = time.monotonic()
        run = swarm.run(users=3, spawn_rate=100, duration="2s")
        assert time.monotonic() - began >= 2
        assert swarm.state == "stopped"
    assert "users" in capsys.readouterr().out  # the progress line
    assert isinstance(run, Run)
    assert aggregated(run.stats) == target.count() > 0
    history = run.history
    assert history.loc[history["name"] == "Aggregated", "requests"].sum() == target.count()
    assert run.meta["host"] == target.url
    loaded = Run.load(run.save(tmp_path / "run"))
    for name in ("stats", "history", "errors", "exceptions", "workers"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(run, name))
    pd.testing.assert_frame_equal(loaded.percentiles(), run.percentiles())


def test_workers_frame_has_a_row_per_worker(target: CountingServer) -> None:
    """swarm.workers has one row per worker process with its state and its share of users."""
    with Swarm(Visitor, host=target.url, workers=2, config=CONFIG) as swarm:
        workers = swarm.workers
        assert len(workers) == 2
        assert set(workers["pid"]) <= descendants()
        assert workers["state"].tolist() == ["ready", "ready"]
        swarm.start(users=4, spawn_rate=100)
        swarm.wait("spawned", timeout=20)
        workers = swarm.workers
        assert workers["state"].tolist() == ["running", "running"]
        assert workers["users"].tolist() == [2, 2]
        assert str(workers["last_seen"].dtype) == "datetime64[ns, UTC]"
        swarm.stop()
        wait_until(
            lambda: swarm.workers["state"].tolist() == ["stopped", "stopped"],
            timeout=5,
            message="stopped workers",
        )
        assert swarm.workers["users"].tolist() == [0, 0]


def test_connect_attaches_to_a_running_master_and_leaves_it_running(
    target: CountingServer, users_file: Callable[..., Path]
) -> None:
    """Swarm.connect attaches to a standalone master that a worker joined: it starts, stops
    and reads stats, and closing it leaves the master and worker running."""
    master = start_master(
        MasterConfig(standalone=True, heartbeat_interval=0.5, heartbeat_timeout=3.0)
    )
    worker = None
    loader = ControlClient(master.control_endpoint)
    try:
        worker = start_worker(master.worker_endpoint)
        loader.request(load_code_for_file(users_file(WEB_USER), target.url, {}))
        swarm = Swarm.connect(master.control_endpoint)
        try:
            wait_until(lambda: len(swarm.workers) == 1, timeout=20, message="the worker")
            assert swarm.workers["pid"].tolist() == [worker.pid]
            swarm.start(users=2, spawn_rate=100)
            swarm.wait("spawned", timeout=20)
            wait_until(lambda: target.count() >= 20, timeout=20, message="traffic")
            swarm.stop()
            assert aggregated(swarm.stats) == target.count()
        finally:
            swarm.close()
        assert master.process.poll() is None
        assert worker.poll() is None
        assert loader.request(protocol.Hail()).state == "stopped"
    finally:
        with contextlib.suppress(NotebookSwarmError):
            loader.request(protocol.QuitMaster(), timeout=3)
        loader.close()
        if worker is not None:
            with contextlib.suppress(Exception):
                worker.wait(5)
            reap(worker)
        master.stop()


def test_run_judges_thresholds_and_refuses_a_malformed_one_first(
    target: CountingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """swarm.run(..., thresholds=) returns the verdicts and prints the breached ones; a
    malformed threshold raises ConfigError naming it before anything starts."""
    with Swarm(Visitor, host=target.url, workers=1, config=CONFIG) as swarm:
        with pytest.raises(ConfigError, match="p95_ms<<1"):
            swarm.run(1, duration=1, thresholds=["p95_ms<<1"])
        assert target.count() == 0
        run = swarm.run(2, spawn_rate=100, duration=2, thresholds=["failure_ratio<0.5", "p50_ms<0"])
    assert run.verdicts is not None
    assert run.verdicts["passed"].tolist() == [True, False]
    assert "threshold breached: p50_ms<0" in capsys.readouterr().out
