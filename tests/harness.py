"""A master, its workers and a controller, all real processes, for the distributed tests."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.control import ControlClient
from notebookswarm.cluster.launch import reap, start_master, start_worker
from notebookswarm.notebook.loading import load_code_for_file
from notebookswarm.stats.requests import RequestStats
from notebookswarm.testing import wait_until


class Cluster:
    """Start a master and ``workers`` workers; collect every update the master sends."""

    def __init__(self, config: MasterConfig, workers: int = 2) -> None:
        self.master = start_master(config)
        self.worker_procs: list[subprocess.Popen[bytes]] = []
        self.client = ControlClient(self.master.control_endpoint)
        self.lock = threading.Lock()
        self.updates: list[protocol.Update] = []
        self.total = RequestStats()
        self.client.on_update(self._on_update)
        self._dir = tempfile.TemporaryDirectory()
        for _ in range(workers):
            self.add_worker()

    def _on_update(self, update: protocol.Update) -> None:
        with self.lock:
            self.updates.append(update)
            self.total.merge(RequestStats.from_wire(update.stats))

    def add_worker(self) -> subprocess.Popen[bytes]:
        """Start one more worker process."""
        proc = start_worker(self.master.worker_endpoint)
        self.worker_procs.append(proc)
        return proc

    def latest(self) -> protocol.Update | None:
        """Return the last update (None before the first)."""
        with self.lock:
            return self.updates[-1] if self.updates else None

    def state(self) -> str | None:
        """Return the swarm's state in the last update (None before the first)."""
        latest = self.latest()
        return latest.state if latest else None

    def workers(self) -> dict[int, protocol.WorkerRow]:
        """Return the last update's worker rows keyed by pid."""
        latest = self.latest()
        return {row.pid: row for row in latest.workers} if latest else {}

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll until ``condition()``; return the seconds it took, fail after ``timeout``."""
        start = time.monotonic()
        wait_until(condition, timeout, message=what)
        return time.monotonic() - start

    def load(self, source: str, host: str) -> None:
        """Load user code from source text, as a file would be loaded."""
        path = Path(self._dir.name) / "users.py"
        path.write_text(textwrap.dedent(source))
        self.client.request(load_code_for_file(path, host, {}))

    def start(self, users: int, spawn_rate: float) -> protocol.Status:
        """Start (or re-target) the swarm's users at ``spawn_rate`` a second."""
        targets = protocol.Targets(users=users, spawn_rate=spawn_rate)
        return self.client.request(protocol.StartSwarm(targets=targets))

    def joined(self, n: int, timeout: float = 30.0) -> None:
        """Wait until ``n`` workers are known and not lost."""
        self.wait_for(
            lambda: sum(w.state != "lost" for w in self.workers().values()) == n,
            timeout,
            f"{n} workers to join",
        )

    def stop_and_wait(self, timeout: float = 30.0) -> None:
        """Stop gracefully and wait for the master's 'stopped' update."""
        self.client.request(protocol.StopSwarm())
        self.wait_for(lambda: self.state() == "stopped", timeout, "stopped")

    def close(self) -> None:
        """Quit the swarm and reap every process it started."""
        with contextlib.suppress(Exception):  # the master may be gone already
            self.client.request(protocol.QuitMaster(), timeout=3)
        self.client.close()
        for proc in self.worker_procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                reap(proc)
        self.master.stop()
        self._dir.cleanup()
