"""The processes a local swarm owns: one master and its workers, started, awaited, ended.

:class:`LocalProcesses` starts them as subprocesses of this process (each in its own
session, so interrupting a kernel does not kill them), waits until the workers joined,
and ends them all on :meth:`shutdown` — also from a finalizer, at garbage collection or
interpreter exit. Nothing here imports gevent.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import weakref
from collections.abc import Callable
from typing import Any

from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.control import ControlClient
from notebookswarm.cluster.launch import MasterProcess, reap, start_master, start_worker
from notebookswarm.errors import ConfigError, NotebookSwarmError


def worker_count(workers: int | str) -> int:
    """Return how many workers to start: ``"auto"`` is one per CPU this process may use."""
    if workers == "auto":
        try:
            from notebookswarm.cluster.capacity import default_workers
        except ImportError:  # pragma: no cover - capacity ships with the package
            return os.cpu_count() or 1
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be 'auto' or an integer >= 1, got {workers!r}")
    return workers


class LocalProcesses:
    """A master and ``count`` workers on 127.0.0.1, owned by this process."""

    def __init__(self, config: MasterConfig) -> None:
        self.master: MasterProcess = start_master(config)
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_workers(self, count: int) -> None:
        """Start ``count`` workers that join the master."""
        for _ in range(count):
            self.workers.append(start_worker(self.master.worker_endpoint))

    def await_workers(
        self, count: int, rows: Callable[[], list[protocol.WorkerRow]], timeout: float
    ) -> None:
        """Wait until ``count`` workers joined; raise at once when one failed or exited."""
        deadline = time.monotonic() + timeout
        while True:
            current = rows()
            failed = [r for r in current if r.error]
            if failed:
                raise NotebookSwarmError(
                    f"a worker could not load the user code:\n{failed[0].error}"
                )
            ready = sum(1 for r in current if r.state != "lost")
            if ready >= count:
                return
            dead = [w for w in self.workers if w.poll() is not None]
            if dead:
                raise NotebookSwarmError(
                    f"a worker process exited with status {dead[0].returncode} before joining"
                )
            if time.monotonic() > deadline:
                raise NotebookSwarmError(f"{ready} of {count} workers joined within {timeout:g} s")
            time.sleep(0.05)

    def pids(self) -> list[int]:
        """Return the master's pid, then every worker's."""
        return [self.master.process.pid, *(w.pid for w in self.workers)]

    def dead_workers(self) -> list[tuple[int, int]]:
        """Return ``(pid, exit status)`` of every worker process that has ended."""
        return [(w.pid, w.returncode) for w in self.workers if w.poll() is not None]


def shutdown(client: ControlClient, processes: LocalProcesses | None) -> None:
    """Quit the master (which quits its workers), then reap every process we started.

    A module-level function, so a finalizer can hold it without holding the swarm.
    """
    if processes is not None:
        with contextlib.suppress(NotebookSwarmError):  # it may be gone already
            client.request(protocol.QuitMaster(), timeout=3)
    client.close()
    if processes is None:
        return
    deadline = time.monotonic() + 5
    for proc in processes.workers:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            reap(proc, timeout=1)
    processes.master.stop()


_Method = Callable[..., Any]


def weakly(owner: Any, method: _Method) -> Callable[..., Any]:
    """Call ``method(owner, *args)`` while ``owner`` lives; do nothing once it is collected.

    Threads and the control client hold these instead of bound methods, so they never keep
    a swarm alive that the notebook dropped.
    """
    ref = weakref.ref(owner)

    def call(*args: Any) -> Any:
        swarm = ref()
        return None if swarm is None else method(swarm, *args)

    return call


def describe_dead(dead: list[tuple[int, int]]) -> str:
    return ", ".join(f"pid {pid} exited with status {code}" for pid, code in dead)


def await_remote_workers(
    count: int, rows: Callable[[], list[protocol.WorkerRow]], timeout: float
) -> None:
    """Wait until ``count`` workers of a remote master are live."""
    deadline = time.monotonic() + timeout
    while sum(1 for r in rows() if r.state != "lost" and r.error is None) < count:
        if time.monotonic() > deadline:
            raise NotebookSwarmError(
                f"fewer than {count} workers joined the master within {timeout:g} s: "
                "start workers with `notebookswarm worker --master tcp://HOST:PORT`"
            )
        time.sleep(0.05)
