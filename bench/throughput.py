"""Requests per generator CPU-second: wrk, Locust and notebookswarm against the same target.

Every generator is a real run of the real tool: ``wrk``, ``locust --headless`` (one
process), and a notebookswarm ``Swarm`` with one worker (master + worker processes).
Each gets the same users (connections, for wrk), no wait between requests, and the same
measurement: after it has sent its first requests and a warm-up, a window of fixed length
in which requests are counted at the target and CPU (user + system) is summed over all
of the generator's processes. With two or more cores the target runs on CPU 0 and every
generator process on CPU 1. Generators run one after another, round after round, so a
neighbour's load on the machine falls on all of them alike; ratios are taken per round.

The latencies in the table are each tool's own report for its whole run (wrk's
``--latency``, Locust's response-time table, our ``swarm.stats``), set beside wrk's.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from procs import CpuMeter, pin, reap, target_requests, wait_for

USERS_SOURCE = """\
from {package} import {base}, constant, task


class {name}({base}):
    wait_time = constant(0)

    @task
    def index(self):
        self.client.get("/")
"""


def write_users(workdir: Path, package: str, kind: str) -> Path:
    """Write a file with one user class that GETs / back to back; return its path."""
    base = "FastHttpUser" if kind == "fast" else "HttpUser"
    name = "Fast" if kind == "fast" else "Http"
    path = workdir / f"{package}_{kind}.py"
    path.write_text(USERS_SOURCE.format(package=package, base=base, name=name))
    return path


#: Label, tool and client kind of each generator, in table order.
GENERATORS = {
    "wrk": ("wrk", "fast"),
    "locust-fast": ("locust", "fast"),
    "locust-http": ("locust", "http"),
    "ours-fast": ("ours", "fast"),
    "ours-http": ("ours", "http"),
}
LABELS = {
    "wrk": "wrk (C, 1 thread)",
    "locust-fast": "Locust FastHttpUser",
    "locust-http": "Locust HttpUser",
    "ours-fast": "notebookswarm FastHttpUser",
    "ours-http": "notebookswarm HttpUser",
}
TARGET_CPU, GENERATOR_CPU = 0, 1


@dataclass(frozen=True)
class Settings:
    """One throughput comparison: who runs, how many users, how long, how often."""

    generators: Sequence[str]
    users: int = 50
    warmup: float = 2.0
    window: float = 8.0
    rounds: int = 3
    locust_python: Path | None = None


# --- the generators -----------------------------------------------------------------


class WrkRun:
    """``wrk -t1 -cUSERS --latency`` for as long as the measurement needs."""

    def __init__(self, url: str, users: int, seconds: float) -> None:
        wrk = shutil.which("wrk")
        if wrk is None:
            raise RuntimeError("wrk is not installed: apt-get install wrk (make bench does)")
        cmd = [wrk, "-t1", f"-c{users}", f"-d{max(1, round(seconds))}s", "--latency", url + "/"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def finish(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # wrk stops and prints its report
        out, err = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"wrk failed: {err.decode(errors='replace')}")
        return parse_wrk(out.decode())


_WRK_LINE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(text: str) -> dict[str, Any]:
    """Read p50/p99 (ms) and the request count from ``wrk --latency`` output."""
    out: dict[str, Any] = {}
    for pct, value, unit in _WRK_LINE.findall(text):
        out[f"p{pct}_ms"] = float(value) * _UNIT_MS[unit]
    if match := re.search(r"^\s*(\d+) requests in", text, re.MULTILINE):
        out["reported_requests"] = int(match.group(1))
    return out


class LocustRun:
    """``locust --headless`` with one user class, ended with SIGTERM (its own clean exit)."""

    def __init__(self, python: Path, kind: str, url: str, users: int, workdir: Path) -> None:
        users_file = write_users(workdir, "locust", kind)
        self.json_prefix = workdir / f"locust-{kind}"
        cmd = [str(python), "-m", "locust", "-f", str(users_file), "--headless"]
        cmd += ["-u", str(users), "-r", str(users), "--host", url, "--only-summary"]
        cmd += ["--json-file", str(self.json_prefix), "--loglevel", "WARNING"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def finish(self) -> dict[str, Any]:
        reap(self.proc, timeout=30)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        report = Path(f"{self.json_prefix}.json")
        if not report.exists():
            raise RuntimeError(f"locust wrote no {report}:\n{err[-2000:]}")
        return locust_percentiles(json.loads(report.read_text()))


def locust_percentile(times: dict[int, int], count: int, q: float) -> int:
    """What Locust reports as the ``q`` percentile (its own algorithm, rounded ms buckets)."""
    wanted = int(count * q)
    seen = 0
    for value in sorted(times, reverse=True):
        seen += times[value]
        if count - seen <= wanted:
            return value
    return 0


def locust_percentiles(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p99 (ms) over all entries of Locust's ``--json-file`` report."""
    times: dict[int, int] = {}
    count = 0
    for entry in entries:
        count += int(entry["num_requests"]) - int(entry.get("num_none_requests") or 0)
        for value, n in entry["response_times"].items():
            times[int(float(value))] = times.get(int(float(value)), 0) + int(n)
    return {
        "p50_ms": float(locust_percentile(times, count, 0.5)),
        "p99_ms": float(locust_percentile(times, count, 0.99)),
        "reported_requests": count,
    }


class OursRun:
    """A ``Swarm`` with one worker: real master and worker processes on 127.0.0.1."""

    def __init__(self, kind: str, url: str, users: int, workdir: Path) -> None:
        from notebookswarm import Swarm, SwarmConfig

        before = {p.pid for p in psutil.Process().children()}
        self.swarm = Swarm(
            str(write_users(workdir, "notebookswarm", kind)),
            host=url,
            workers=1,
            config=SwarmConfig(stop_timeout=2.0),
        )
        self._pids = [p.pid for p in psutil.Process().children() if p.pid not in before]
        self.swarm.start(users=users, spawn_rate=float(users))

    def pids(self) -> list[int]:
        return self._pids

    def finish(self) -> dict[str, Any]:
        try:
            self.swarm.stop()
            stats = self.swarm.stats
        finally:
            self.swarm.close()
        row = stats[stats["name"] == "Aggregated"].iloc[0]
        return {
            "p50_ms": float(row["p50_ms"]),
            "p99_ms": float(row["p99_ms"]),
            "reported_requests": int(row["requests"]),
        }


Starter = Callable[[str, int, float, Path], Any]


def starter(name: str, settings: Settings) -> Starter:
    """Return a function that starts generator ``name`` against a URL."""
    tool, kind = GENERATORS[name]
    if tool == "wrk":
        return lambda url, users, seconds, workdir: WrkRun(url, users, seconds)
    if tool == "locust":
        python = settings.locust_python
        if python is None:
            raise RuntimeError("the Locust generators need --locust-python (make bench sets it)")
        return lambda url, users, seconds, workdir: LocustRun(python, kind, url, users, workdir)
    return lambda url, users, seconds, workdir: OursRun(kind, url, users, workdir)


# --- measuring ----------------------------------------------------------------------


def measure(name: str, settings: Settings, port: int) -> dict[str, Any]:
    """Run one generator once; return window requests, CPU seconds and its latencies."""
    url = f"http://127.0.0.1:{port}"
    start = starter(name, settings)
    with tempfile.TemporaryDirectory(prefix=f"nbs-bench-{name}-") as tmp:
        base = target_requests(port)
        seconds = settings.warmup + settings.window + 30  # wrk's -d: ended by the window
        began = time.monotonic()
        run = start(url, settings.users, seconds, Path(tmp))
        try:
            pin(run.pids(), GENERATOR_CPU)
            wait_for(
                lambda: target_requests(port) > base + settings.users,
                60,
                f"{name} sending its first requests",
            )
            time.sleep(settings.warmup)
            pin(run.pids(), GENERATOR_CPU)  # threads and children started since
            meter = CpuMeter(run.pids)
            cpu0, count0, t0 = meter.read(), target_requests(port), time.monotonic()
            time.sleep(settings.window)
            cpu1, count1, t1 = meter.read(), target_requests(port), time.monotonic()
        except BaseException:
            _abandon(run)
            raise
        reported = _finish(run)
    requests = count1 - count0 - 1  # the second status read counts itself
    cpu = CpuMeter.between(cpu0, cpu1)
    return {
        "generator": name,
        "requests": requests,
        "cpu_s": cpu,
        "wall_s": t1 - t0,
        "rate": requests / cpu if cpu > 0 else 0.0,
        "rps": requests / (t1 - t0),
        "startup_s": t0 - began - settings.warmup,
        **reported,
    }


def _finish(run: Any) -> dict[str, Any]:
    result: dict[str, Any] = run.finish()
    return result


def _abandon(run: Any) -> None:
    try:
        run.finish()
    except Exception as exc:  # already failing: say so, keep the first error
        print(f"bench: cleaning up after a failure: {exc}", flush=True)
