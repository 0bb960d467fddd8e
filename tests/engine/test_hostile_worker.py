"""Hostile user code against real worker processes: nothing hangs, nothing is lost.

Standalone workers (``notebookswarm._local``) and workers joined to a stand-in master (a
ROUTER socket this test speaks the protocol on by hand), against the threaded targets of
``tests/httptarget.py`` and ``notebookswarm.testing``.
"""

from __future__ import annotations

import linecache
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from notebookswarm._http.common import CUT_AT_STOP
from notebookswarm._local import run_local
from notebookswarm.cluster import protocol
from notebookswarm.engine.stuck import EXIT_STUCK
from notebookswarm.errors import NotebookSwarmError
from notebookswarm.stats.names import OVERFLOW_NAME
from notebookswarm.stats.requests import RequestStats
from notebookswarm.testing import CountingServer, wait_until
from notebookswarm.users.code import dumps_with_sources

from httptarget import Target

UsersFile = Callable[[str], Path]


def requests_of(stats: RequestStats) -> dict[tuple[str, str], tuple[int, int]]:
    """``(method, name) -> (requests, failures)``."""
    return {key: (s.requests, s.failures) for key, s in stats.endpoints.items()}


def exceptions_of(stats: RequestStats) -> dict[str, int]:
    """Exception rows as ``error text -> count``."""
    return {record.error: record.count for record in stats.exceptions.values()}


def stalls(server: Target) -> int:
    with server.lock:
        return server.paths.count("/stall")


# --- the user boundary --------------------------------------------------------------

BOUNDARY = """
import sys
from notebookswarm import HttpUser, task, constant

class ExitsInTask(HttpUser):
    fixed_count = 2
    wait_time = constant(0.05)
    @task
    def work(self):
        self.client.get("/exit")
        sys.exit(3)

class InterruptsInTask(HttpUser):
    fixed_count = 2
    wait_time = constant(0.05)
    @task
    def work(self):
        self.client.get("/interrupt")
        raise KeyboardInterrupt("from a task")

class ExitsInStart(HttpUser):
    fixed_count = 1
    wait_time = constant(0.05)
    def on_start(self):
        sys.exit("no login today")
    @task
    def work(self):
        self.client.get("/after-start")

class ExitsInWait(HttpUser):
    fixed_count = 1
    def wait_time(self):
        raise SystemExit(2)
    @task
    def work(self):
        self.client.get("/wait")

class ExitsInStop(HttpUser):
    fixed_count = 1
    wait_time = constant(0.05)
    @task
    def work(self):
        self.client.get("/steady")
    def on_stop(self):
        raise SystemExit(1)
"""


def test_sys_exit_and_keyboard_interrupt_in_user_code_never_end_the_worker(
    target: CountingServer, users_file: UsersFile
) -> None:
    """SystemExit and KeyboardInterrupt raised by user code are one exception row per
    occurrence, with the traceback: in a task or on_start the user goes on, from wait_time
    it ends that user alone; the worker runs to the end and its counts equal the target's."""
    result = run_local(users_file(BOUNDARY), host=target.url, users=7, spawn_rate=100, run_time=2)
    counted = {name: n for (_, name), (n, _) in requests_of(result.stats).items()}
    assert counted == {path: n for (_, path), n in target.counts().items()}
    assert counted["/exit"] > 4 and counted["/interrupt"] > 4 and counted["/after-start"] > 2
    assert counted["/wait"] == 1  # its wait_time raised: that user ended after one task
    assert exceptions_of(result.stats) == {
        "SystemExit: 3": counted["/exit"],
        "KeyboardInterrupt: from a task": counted["/interrupt"],
        "SystemExit: no login today": 1,
        "SystemExit: 2": 1,
        "SystemExit: 1": 1,  # on_stop, when the run ended
    }
    texts = [record.traceback for record in result.stats.exceptions.values()]
    assert any("in work\n    sys.exit(3)" in text for text in texts)


SPINNER = """
import time
from notebookswarm import HttpUser, task, constant

class Spinner(HttpUser):
    fixed_count = 1
    wait_time = constant(0.1)
    @task
    def spin(self):
        self.client.get("/")
        time.sleep(0.5)  # cooperative: the others send their requests meanwhile
        while True:
            pass

class Staller(HttpUser):
    fixed_count = 3
    wait_time = constant(0.1)
    @task
    def stall(self):
        self.client.get("/stall")
"""


def test_a_real_sigint_still_stops_a_worker_whose_task_spins(
    server: Target, users_file: UsersFile
) -> None:
    """SIGINT to a worker stops it even while a task spins on the CPU: the user boundary
    lets a real interrupt through, unlike a KeyboardInterrupt that user code raises."""
    cmd = [sys.executable, "-m", "notebookswarm.worker", "--standalone", "-f"]
    cmd += [str(users_file(SPINNER)), "-u", "4", "-r", "100", "-t", "60", "--host", server.url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: stalls(server) == 3, timeout=20, message="three stalled requests")
        time.sleep(0.6)  # the spinner's sleep is over: it holds the CPU now
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=10)
        assert proc.returncode not in (0, EXIT_STUCK)
        assert proc.stderr is not None
        assert b"WorkerInterrupt" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# --- stops that must cut --------------------------------------------------------------


@pytest.mark.parametrize("base", ["HttpUser", "FastHttpUser"])
def test_requests_cut_at_stop_timeout_are_failures_the_target_saw(
    server: Target, users_file: UsersFile, base: str
) -> None:
    """Four users stuck on a target that never answers, stop_timeout=2: the stats show 4
    requests and 4 failures saying the stop cut them, and the target saw 4."""
    source = f"""
from notebookswarm import {base}, task, constant

class Waiter({base}):
    wait_time = constant(0.1)
    @task
    def wait_for_it(self):
        self.client.get("/stall")
"""
    result = run_local(
        users_file(source), host=server.url, users=4, spawn_rate=100, run_time=1, stop_timeout=2
    )
    assert requests_of(result.stats) == {("GET", "/stall"): (4, 4)}
    assert result.stats.errors == {("GET", "/stall", CUT_AT_STOP): 4}
    assert stalls(server) == 4
    assert result.stats.endpoints[("GET", "/stall")].latency.min >= 2_000_000_000


def test_a_cpu_bound_task_cannot_hold_a_standalone_worker(
    server: Target, users_file: UsersFile
) -> None:
    """A task in `while True: pass`: past stop_timeout plus the grace the worker sends what
    it counted (the stalled requests cut, the spinning task as a StuckTask row with its
    line), says which task would not yield, and exits with its own status."""
    messages: list[protocol.Message] = []
    started = time.monotonic()
    with pytest.raises(NotebookSwarmError, match=f"exited with status {EXIT_STUCK}"):
        run_local(
            users_file(SPINNER),
            host=server.url,
            users=4,
            spawn_rate=100,
            run_time=1.5,
            stop_timeout=1,
            on_message=lambda message, _: messages.append(message),
        )
    assert time.monotonic() - started < 1.5 + 1 + 2 + 3  # run, stop_timeout, grace, slack
    stats = RequestStats()
    for message in messages:
        if isinstance(message, protocol.Report):
            stats.merge(RequestStats.from_wire(message.stats))
    assert requests_of(stats) == {("GET", "/"): (1, 0), ("GET", "/stall"): (3, 3)}
    assert stats.errors == {("GET", "/stall", CUT_AT_STOP): 3}
    with server.lock:
        assert sorted(server.paths) == ["/", "/stall", "/stall", "/stall"]
    [record] = stats.exceptions.values()
    assert record.count == 1
    assert record.error.startswith(f"StuckTask: {CUT_AT_STOP}: Spinner in Spinner.spin")
    assert "in spin\n    while True:" in record.traceback
    [stuck] = [m for m in messages if isinstance(m, protocol.Stuck)]
    assert stuck.tasks == [protocol.StuckTask(user_class="Spinner", task="Spinner.spin", users=1)]
    assert stuck.exit_code == EXIT_STUCK


# --- joined to a master -----------------------------------------------------------------


class StandInMaster:
    """A ROUTER socket in place of the master, and one worker process joined to it."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        cmd = [sys.executable, "-m", "notebookswarm.worker", "--master"]
        self.worker = subprocess.Popen(
            [*cmd, f"tcp://127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True
        )
        identity, hello = self.receive(30)
        assert isinstance(hello, protocol.Hello)
        self.identity, self.worker_id = identity, hello.worker_id
        self.stats = RequestStats()
        self.reports: list[protocol.Report] = []
        self.send(
            protocol.Welcome(
                worker_id=hello.worker_id,
                heartbeat_interval=0.5,
                master_timeout=60.0,
                report_interval=1.0,
            )
        )

    def send(self, message: protocol.Message, identity: bytes | None = None) -> None:
        self.sock.send_multipart([identity or self.identity, protocol.encode(message)])

    def receive(self, timeout: float) -> tuple[bytes, protocol.Message]:
        assert self.sock.poll(int(timeout * 1000)), f"nothing from the worker in {timeout} s"
        identity, frame = self.sock.recv_multipart()
        message = protocol.decode(frame)
        if isinstance(message, protocol.Report):
            self.reports.append(message)
            self.stats.merge(RequestStats.from_wire(message.stats))
        return identity, message

    def wait_for(self, kind: type[Any], timeout: float) -> tuple[bytes, Any]:
        """Receive (keeping reports) until a message of ``kind`` comes."""
        deadline = time.monotonic() + timeout
        while True:
            identity, message = self.receive(max(0.0, deadline - time.monotonic()))
            if isinstance(message, kind):
                return identity, message

    def load(self, source: str, classes: list[str], host: str, **options: Any) -> None:
        self.send(
            protocol.Code(
                payload=source.encode(),
                fmt="source",
                classes=classes,
                host=host,
                options={"filename": "/nowhere/users.py", **options},
            )
        )

    def close(self) -> str:
        """Reap the worker and return what it said on stderr."""
        if self.worker.poll() is None:
            self.worker.kill()
        _, err = self.worker.communicate(timeout=10)
        self.sock.close()
        self.context.term()
        return err


@pytest.fixture
def master() -> Iterator[StandInMaster]:
    stand_in = StandInMaster()
    try:
        yield stand_in
    finally:
        stand_in.close()


def test_a_stuck_worker_tells_the_master_from_its_heartbeat_thread(
    master: StandInMaster, server: Target
) -> None:
    """The hub held by a spinning task never sees the Stop; the copy sent to the heartbeat
    socket does: a last report (cut requests, the StuckTask row with the source line of a
    file that is not on this machine), a Stuck message, and the exit status."""
    master.load(SPINNER, ["Spinner", "Staller"], server.url, stop_timeout=1.0)
    master.send(protocol.Spawn(targets={"Spinner": 1, "Staller": 3}, spawn_rate=100, generation=1))
    wait_until(lambda: stalls(server) == 3, timeout=20, message="three stalled requests")
    time.sleep(0.6)  # the spinner's sleep is over: it holds the CPU now
    for identity in (master.identity, master.identity + b"/hb"):
        master.send(protocol.Stop(timeout=1.0), identity)
    identity, stuck = master.wait_for(protocol.Stuck, timeout=1.0 + 2.0 + 3.0)
    assert identity == master.identity + b"/hb"
    assert stuck.tasks == [protocol.StuckTask(user_class="Spinner", task="Spinner.spin", users=1)]
    assert master.worker.wait(timeout=10) == EXIT_STUCK
    assert requests_of(master.stats) == {("GET", "/"): (1, 0), ("GET", "/stall"): (3, 3)}
    [record] = master.stats.exceptions.values()
    assert 'File "/nowhere/users.py", line 12, in spin\n    while True:' in record.traceback
    said = master.close()  # the worker's log names the task and shows where it spins
    assert "users still running" in said and "in spin\n    while True:" in said


SLOW_SECOND_START = """
import time
from notebookswarm import HttpUser, task, constant

starts = 0

class Reader(HttpUser):
    wait_time = constant(0.1)

    def on_start(self):
        global starts
        starts += 1
        if starts > 1:  # the second start computes for 4 s: the hub is held
            until = time.perf_counter() + 4.0
            while time.perf_counter() < until:
                pass

    @task
    def read(self):
        self.client.get("/")
"""


def test_a_late_copy_of_a_finished_stop_leaves_a_healthy_worker_alone(
    master: StandInMaster, server: Target
) -> None:
    """The hub finishes numbered stop 1 before the heartbeat thread reads its copy; then a
    user's on_start holds the hub 4 s, past stop_timeout plus the grace. Nothing was left to
    stop: the worker's user goes on to its requests and the worker stays (without the stop's
    number the copy armed the watch, and the worker gave up during the hold)."""
    master.load(SLOW_SECOND_START, ["Reader"], server.url, stop_timeout=0.5)
    master.send(protocol.Spawn(targets={"Reader": 1}, spawn_rate=100, generation=1))
    wait_until(lambda: len(server.paths) >= 3, timeout=20, message="three requests")
    stop = protocol.Stop(timeout=0.5, stop_id=1)
    master.send(stop)
    master.wait_for(protocol.Stopped, timeout=10)
    master.send(stop, master.identity + b"/hb")  # the copy, read after the stop finished
    before = len(server.paths)
    master.send(protocol.Spawn(targets={"Reader": 1}, spawn_rate=100, generation=2))
    wait_until(lambda: len(server.paths) >= before + 3, timeout=20, message="requests again")
    assert master.worker.poll() is None  # a worker that gave up would have exited
    assert "users still running" not in master.close()


def test_names_past_the_limit_fold_and_the_reports_name_the_pattern(
    master: StandInMaster, server: Target
) -> None:
    """With max_names=50, later new names count under one '<other names>' row; every
    request is still counted, and the reports say how many folded and the pattern."""
    source = """
import itertools
from notebookswarm import FastHttpUser, task, constant

serial = itertools.count()

class Browser(FastHttpUser):
    wait_time = constant(0.001)
    @task
    def item(self):
        self.client.get(f"/item/{next(serial)}")
"""
    master.load(source, ["Browser"], server.url, max_names=50)
    master.send(protocol.Spawn(targets={"Browser": 2}, spawn_rate=100, generation=1))
    wait_until(lambda: len(server.paths) >= 300, timeout=20, message="300 requests")
    master.send(protocol.Stop(timeout=1.0))
    master.wait_for(protocol.Stopped, timeout=10)
    rows = requests_of(master.stats)
    overflow = rows.pop(("GET", OVERFLOW_NAME))[0]
    assert len(rows) == 50 and all(n == (1, 0) for n in rows.values())
    with server.lock:
        assert 50 + overflow == len(server.paths)
    named = [report.names for report in master.reports if report.names is not None]
    assert sum(names.folded for names in named) == overflow
    assert named[-1].distinct == 50 and named[-1].pattern == "/item/{n}"


def test_a_code_load_failure_is_one_line_here_and_the_traceback_goes_to_the_master(
    master: StandInMaster,
) -> None:
    """User code that fails to load: the worker prints one line, the master gets a Failed
    with the whole traceback (file and line), and the worker goes on to quit cleanly."""
    master.load("import os\nraise ImportError('no module named shop')\n", ["U"], "http://h")
    _, failed = master.wait_for(protocol.Failed, timeout=10)
    assert 'File "/nowhere/users.py", line 2, in <module>' in failed.reason
    assert failed.reason.endswith("ImportError: no module named shop\n")
    master.send(protocol.Quit())
    assert master.worker.wait(timeout=10) == 0
    err = master.close()
    assert err.count("no module named shop") == 1 and "Traceback" not in err


def test_a_cell_defined_task_names_its_cell_file_and_line_on_the_worker(
    master: StandInMaster,
) -> None:
    """Classes pickled from a notebook keep their cell's file name (not <dynamic-code>) and
    bring its source, so a worker's traceback shows the cell's file, line and code."""
    cell = "/tmp/ipykernel_4242/1234.py"
    source = (
        "from notebookswarm import User, task, constant\n"
        "class Cell(User):\n"
        "    wait_time = constant(0.2)\n"
        "    @task\n"
        "    def boom(self):\n"
        "        raise ValueError('boom')\n"
    )
    linecache.cache[cell] = (len(source), None, source.splitlines(True), cell)  # as ipykernel
    namespace: dict[str, Any] = {"__name__": "cell_not_importable"}
    exec(compile(source, cell, "exec"), namespace)
    payload, sources = dumps_with_sources([namespace["Cell"]])
    assert b"<dynamic-code>" not in payload and sources == {cell: source}
    master.send(
        protocol.Code(
            payload=payload, fmt="pickle", classes=["Cell"], host=None, options={"sources": sources}
        )
    )
    master.send(protocol.Spawn(targets={"Cell": 1}, spawn_rate=10, generation=1))
    deadline = time.monotonic() + 20
    while not master.stats.exceptions:
        master.receive(max(0.0, deadline - time.monotonic()))
    [record] = master.stats.exceptions.values()
    assert f"File \"{cell}\", line 6, in boom\n    raise ValueError('boom')" in record.traceback
