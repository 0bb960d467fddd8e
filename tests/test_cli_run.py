"""`notebookswarm run|master|worker` as real processes: counts, thresholds, signals, config."""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import junitparser
import psutil
import pytest

from notebookswarm import demo
from notebookswarm.cli import MASTER_FLAGS, WORKER_FLAGS, main
from notebookswarm.errors import ConfigError
from notebookswarm.notebook.console import LiveTable
from notebookswarm.notebook.frames import stats_frame
from notebookswarm.notebook.locustfiles import load_classes, locustfiles
from notebookswarm.notebook.run_options import parse
from notebookswarm.stats.requests import RequestStats
from notebookswarm.testing import CountingServer, process_gone, wait_until

LOCUSTFILE = """
from notebookswarm import HttpUser, constant, task

class Reader(HttpUser):
    wait_time = constant(0.02)

    @task(3)
    def index(self):
        self.client.get("/")

    @task
    def about(self):
        self.client.get("/about")


class Writer(HttpUser):
    wait_time = constant(0.02)

    @task
    def write(self):
        self.client.post("/write")
"""


@pytest.fixture
def locustfile(tmp_path: Path) -> Path:
    """A locustfile in the style of Locust's documentation, with our imports."""
    path = tmp_path / "locustfile.py"
    path.write_text(textwrap.dedent(LOCUSTFILE))
    return path


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "notebookswarm", *args]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anyone's NOTEBOOKSWARM_*/LOCUST_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTEBOOKSWARM_", "LOCUST_"))}
    return {**env, **extra}


def run(args: list[str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("run", *args), cwd=cwd, env=clean_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def stats_counts(path: Path) -> dict[tuple[str, str], int]:
    """Per-endpoint request counts of a Locust-format _stats.csv (Aggregated left out)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {(r["Type"], r["Name"]): int(r["Request Count"]) for r in rows if r["Type"]}


def test_csv_counts_equal_what_the_target_received(
    tmp_path: Path, locustfile: Path, target: CountingServer, no_strays: None
) -> None:
    """Two workers for 3 s of the class named: _stats.csv and --json count per endpoint
    exactly what the target received; passing thresholds exit 0, their JUnit file parses."""
    out = tmp_path / "out"
    done = run(
        ["-f", str(locustfile), "-H", target.url, "-u", "4", "-r", "20", "-t", "3s",
         "--workers", "2", "--csv", str(out / "run"), "--json", "--junit", str(out / "j.xml"),
         "--threshold", "failure_ratio<0.01", "--threshold", "GET /:requests>0", "Reader"],
        tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    received = target.counts()
    assert set(received) == {("GET", "/"), ("GET", "/about")}
    assert stats_counts(out / "run_stats.csv") == received
    printed = json.loads(done.stdout)  # --json: stdout holds the JSON alone
    assert {(e["method"], e["name"]): e["num_requests"] for e in printed} == received
    assert "2 of 2 held" in done.stderr
    suite = next(iter(junitparser.JUnitXml.fromfile(str(out / "j.xml"))))
    assert [(case.name, case.is_passed) for case in suite] == [
        ("failure_ratio<0.01", True),
        ("GET /:requests>0", True),
    ]
    for name in ("stats_history", "failures", "exceptions"):
        assert (out / f"run_{name}.csv").is_file()


SHAPED = """
from locust import HttpUser, LoadTestShape, constant, events, task


class Reader(HttpUser):
    wait_time = constant(0.05)

    @task
    def index(self):
        self.client.get("/")


class Stages(LoadTestShape):
    stages = [(1.5, 2, 10), (3.0, 4, 10)]

    def tick(self):
        run_time = self.get_run_time()
        for end, users, rate in self.stages:
            if run_time < end:
                return users, rate
        return None


@events.test_stop.add_listener
def report(environment, **kwargs):
    if environment.runner.__class__.__name__ == "MasterRunner":
        print(f"controller test_stop: {environment.stats.total.num_requests}", flush=True)
"""


def test_a_locust_locustfile_with_a_shape_runs_until_the_shape_ends(
    tmp_path: Path, target: CountingServer, no_strays: None
) -> None:
    """A locustfile importing `locust` with a LoadTestShape and no -t runs until its shape
    is over; its test_stop listener runs in the command; the counts are the target's."""
    path = tmp_path / "shaped.py"
    path.write_text(SHAPED)
    done = run(["-f", str(path), "-H", target.url, "--workers", "2", "--csv", "out"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LoadTestShape" in done.stdout and "stopping: the swarm stopped" in done.stdout
    assert stats_counts(tmp_path / "out_stats.csv") == target.counts()
    assert f"controller test_stop: {target.count()}" in done.stdout


def test_a_breached_threshold_exits_3_and_says_which(tmp_path: Path, no_strays: None) -> None:
    """`--threshold p95_ms<1` against the demo site (20 ms queries) stops the run once the
    grace is over (--abort-on-threshold), exits 3, prints the breached threshold with what
    was observed, and fails its JUnit test case."""
    path = tmp_path / "contest.py"
    path.write_text(
        "from notebookswarm import HttpUser, constant, task\n\n"
        "class Contestant(HttpUser):\n"
        "    wait_time = constant(0.1)\n\n"
        "    @task\n"
        "    def problems(self):\n"
        "        self.client.get('/problems')\n"
    )
    with demo.start_target(query_ms=20, jitter=0) as site:
        done = run(
            ["-f", str(path), "-H", site.url, "-u", "2", "-t", "60s", "--workers", "2",
             "--threshold", "p95_ms<1", "--threshold", "requests>0", "--abort-on-threshold",
             "--abort-grace", "2s", "--interval", "0.5s", "--junit", str(tmp_path / "j.xml")],
            tmp_path,
        )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "stopping: threshold breached" in done.stdout
    assert re.search(r"breached: p95_ms<1  \(observed \d+", done.stdout)
    assert "1 of 2 held" in done.stdout
    suite = next(iter(junitparser.JUnitXml.fromfile(str(tmp_path / "j.xml"))))
    assert [(case.name, case.is_passed) for case in suite] == [
        ("p95_ms<1", False),
        ("requests>0", True),
    ]


def test_a_malformed_threshold_is_refused_before_anything_starts(
    tmp_path: Path, locustfile: Path, target: CountingServer, no_strays: None
) -> None:
    """A threshold that does not parse exits 2 naming the bad part; no worker ever ran."""
    done = run(["-f", str(locustfile), "-H", target.url, "--threshold", "p95_ms<fast"], tmp_path)
    assert done.returncode == 2
    assert "limit 'fast' is not a number" in done.stderr
    assert "workers joined" not in done.stdout + done.stderr
    assert target.count() == 0


def test_locustfile_may_be_a_file_folder_module_or_list(
    tmp_path: Path, locustfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-f resolves as Locust's: a file, a name without .py, a folder's public .py files, a
    module on sys.path, a comma list; what it cannot find is named."""
    folder = tmp_path / "suite"
    folder.mkdir()
    for name in ("b.py", "a.py", "_helpers.py", "__init__.py", "locust.py", "notes.txt"):
        (folder / name).write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert locustfiles(str(locustfile)) == [locustfile]
    assert locustfiles(str(tmp_path / "locustfile")) == [locustfile]
    assert locustfiles(str(folder)) == [folder / "a.py", folder / "b.py"]
    assert locustfiles("suite.b") == [folder / "b.py"]
    assert locustfiles(f"{locustfile}, {folder / 'a.py'}") == [locustfile, folder / "a.py"]
    with pytest.raises(ConfigError, match=r"could not find 'nowhere\.py'"):
        locustfiles("nowhere.py")
    assert [c.__name__ for c in load_classes([locustfile], ["Writer"])] == ["Writer"]
    with pytest.raises(ConfigError, match=r"no user class named Nobody: .* Reader, Writer"):
        load_classes([locustfile], ["Nobody"])


def test_settings_layer_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """locust.conf < pyproject.toml's [tool.notebookswarm] < LOCUST_*/NOTEBOOKSWARM_*
    variables < flags, each layer overriding the one before."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.locust.conf of anyone's
    (tmp_path / "locust.conf").write_text(
        "host = http://file.example\nusers = 3\nspawn-rate = 2\nrun-time = 7s\n"
        "tags = [a, b]\ncsv = from-file\n"
    )
    (tmp_path / "pyproject.toml").write_text(
        "[tool.notebookswarm]\nusers = 4\nthreshold = ['p95_ms<500', 'rps>1']\n"
    )
    args = parse([], env={})
    assert (args.host, args.users, args.spawn_rate, args.run_time) == (
        "http://file.example", 4, 2.0, 7.0,
    )  # fmt: skip
    assert args.tags == ["a", "b"] and args.threshold == ["p95_ms<500", "rps>1"]
    env = {"LOCUST_USERS": "5", "LOCUST_HOST": "http://locust.example", "LOCUST_CSV": "env"}
    args = parse([], env=env)
    assert (args.host, args.users, args.csv_prefix) == ("http://locust.example", 5, "env")
    env |= {"NOTEBOOKSWARM_USERS": "6", "NOTEBOOKSWARM_HOST": "http://ours.example"}
    args = parse([], env=env)
    assert (args.host, args.users, args.spawn_rate) == ("http://ours.example", 6, 2.0)
    args = parse(["-u", "8", "--host", "http://flag.example", "-t", "1m"], env=env)
    assert (args.host, args.users, args.run_time) == ("http://flag.example", 8, 60.0)


def test_refused_and_ignored_locust_flags(capsys: pytest.CaptureFixture[str]) -> None:
    """A Locust flag we cannot honour is refused with what to do instead; a web UI flag is
    accepted and ignored."""
    with pytest.raises(SystemExit) as refused:
        parse(["--master"], env={})
    assert refused.value.code == 2
    assert "notebookswarm master" in capsys.readouterr().err
    args = parse(["--web-port", "8089", "--headless", "--autostart"], env={})
    assert args.web_port == "8089" and args.headless


class Running:
    """A `notebookswarm run` subprocess whose output lines are read as they come."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            command("run", *args), cwd=cwd, env=clean_env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(re.search(pattern, line) for line in self.output[-1:]):
            left = deadline - time.monotonic()
            assert left > 0, f"no line matching {pattern!r} in:\n{''.join(self.output)}"
            try:
                self.output.append(self.lines.get(timeout=left))
            except queue.Empty:
                continue

    def children(self) -> list[int]:
        return [p.pid for p in psutil.Process(self.process.pid).children(recursive=True)]

    def finish(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(10)  # it ends at the end of the output
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return code


@pytest.fixture
def running(tmp_path: Path, locustfile: Path, target: CountingServer) -> Iterator[Running]:
    """A run of up to a minute, showing a line every half second; killed if a test fails."""
    proc = Running(
        ["-f", str(locustfile), "-H", target.url, "-u", "4", "-r", "20", "-t", "60s",
         "--workers", "2", "--interval", "0.5s", "--csv", str(tmp_path / "out" / "run")],
        tmp_path,
    )  # fmt: skip
    try:
        proc.wait_for(r"running: .* [1-9]\d* reqs")
        yield proc
    finally:
        if proc.process.poll() is None:
            proc.process.kill()
        proc.finish(timeout=30)
        assert proc.process.stdout is not None
        proc.process.stdout.close()


def test_sigint_stops_gracefully_and_writes_everything(
    tmp_path: Path, running: Running, target: CountingServer, no_strays: None
) -> None:
    """The first SIGINT stops gracefully: exit 0, every output written, the counts equal
    the target's, and no process of the run is left."""
    started = running.children()
    running.process.send_signal(signal.SIGINT)
    assert running.finish(timeout=60) == 0, "".join(running.output)
    assert "stopping: interrupted" in "".join(running.output)
    assert stats_counts(tmp_path / "out" / "run_stats.csv") == target.counts()
    wait_until(lambda: all(process_gone(pid) for pid in started), 5, message="no process left")


def test_a_second_sigint_quits_at_once_leaving_no_process(
    tmp_path: Path, running: Running, no_strays: None
) -> None:
    """A second SIGINT quits at once with 130, writes nothing, and leaves no process."""
    started = running.children()
    assert len(started) >= 3  # a master and two workers
    running.process.send_signal(signal.SIGINT)
    running.wait_for("stopping gracefully")
    running.process.send_signal(signal.SIGINT)
    assert running.finish(timeout=15) == 130
    assert not (tmp_path / "out" / "run_stats.csv").exists()
    wait_until(lambda: all(process_gone(pid) for pid in started), 5, message="no process left")


def test_master_and_worker_subcommands_read_the_environment(no_strays: None) -> None:
    """`notebookswarm master` and `worker` take their flags from NOTEBOOKSWARM_* variables
    (flags still win), and the worker joins the master."""
    from notebookswarm.cluster.launch import reap
    from notebookswarm.notebook.swarm import Swarm

    master_env = clean_env(NOTEBOOKSWARM_BIND="0.0.0.0", NOTEBOOKSWARM_STANDALONE="true")
    master = subprocess.Popen(  # the flag's 127.0.0.1 wins: 0.0.0.0 would need keys
        command("master", "--bind", "127.0.0.1"), env=master_env, stdout=subprocess.PIPE, text=True
    )
    processes = [master]
    try:
        assert master.stdout is not None
        endpoints = json.loads(master.stdout.readline())
        worker_env = clean_env(NOTEBOOKSWARM_MASTER=endpoints["worker"])
        processes.append(subprocess.Popen(command("worker"), env=worker_env))
        with Swarm.connect(endpoints["control"]) as swarm:
            wait_until(lambda: len(swarm.workers) == 1, 30, message="the worker joined")
    finally:
        for proc in reversed(processes):
            reap(proc, timeout=10)  # terminate; kill if it will not go


def help_flags(module: str) -> set[str]:
    text = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True
    ).stdout.split("options:", 1)[1]
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])\b", text)) - {"-h", "--help"}


@pytest.mark.parametrize(
    ("module", "flags"),
    [("notebookswarm.master", MASTER_FLAGS), ("notebookswarm.worker", WORKER_FLAGS)],
)
def test_subcommands_know_every_flag_of_their_process(module: str, flags: tuple) -> None:
    """`notebookswarm master|worker` declare exactly the flags of `python -m` their process."""
    assert {name for flag in flags for name in flag.names} == help_flags(module)


def test_live_table_redraws_in_place_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the table is redrawn in place within 80 columns; into a log it is one
    plain line per interval, without carriage returns or escapes."""
    monkeypatch.setenv("COLUMNS", "80")
    recorded = RequestStats()
    for i in range(30):
        recorded.record_request("GET", f"/a/very/long/path/{i % 3}/" + "x" * 60, 10**7, 10, None)
    stats = stats_frame(recorded, 3.0)
    for tty in (False, True):
        out = io.StringIO()
        live = LiveTable(out, tty=tty)
        for _ in range(2):
            live.show("  1.0 s running: 2 users, 30 reqs, 10.0 req/s", stats, {})
        text = out.getvalue()
        if tty:
            assert text.count("\x1b[") == 2 and "\x1b[8F\x1b[J" in text  # up 8 lines, clear
            assert max(len(line) for line in text.split("\n")) <= 80 + len("\x1b[8F\x1b[J")
        else:
            assert text == "  1.0 s running: 2 users, 30 reqs, 10.0 req/s\n" * 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`notebookswarm --version` prints the package's version."""
    from notebookswarm._version import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"notebookswarm {__version__}"


def test_single_user_prints_every_request(
    tmp_path: Path, locustfile: Path, target: CountingServer, no_strays: None
) -> None:
    """run --single-user runs one user of the named class and prints each of its requests."""
    done = run(
        ["-f", str(locustfile), "-H", target.url, "-t", "1", "--single-user", "Reader"], tmp_path
    )
    assert done.returncode == 0, done.stderr
    printed = [line for line in done.stdout.splitlines() if re.search(r"\bGET\s+/", line)]
    assert len(printed) >= target.count() > 0
