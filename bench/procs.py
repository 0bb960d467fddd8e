"""Process bookkeeping for the benchmark: CPU seconds of process trees, RSS, the target's
request counter, reaping.

A generator's CPU is user + system time summed over every process it runs (Locust's one
process; our master and workers; wrk), read with psutil at the start and the end of a
measurement window. Requests are counted at the target (nginx's ``stub_status``, or the
fallback server's copy of it), the same way for every generator, so no generator's own
bookkeeping is trusted for the numbers that are compared.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterable
from typing import Any

import psutil
from bench_http_clients import STATUS_PATH

from notebookswarm.testing import wait_until


def tree(pids: Iterable[int]) -> list[psutil.Process]:
    """Return the processes ``pids`` and all their descendants that still exist."""
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            found[pid] = proc
            for child in proc.children(recursive=True):
                found[child.pid] = child
        except psutil.Error:
            continue
    return list(found.values())


class CpuMeter:
    """CPU seconds (user + system) used by a set of process trees between two reads."""

    def __init__(self, roots: Callable[[], Iterable[int]]) -> None:
        self.roots = roots
        self.seen: dict[int, float] = {}

    def read(self) -> dict[int, float]:
        """Return CPU seconds so far per process; a process that ended keeps its last value."""
        for proc in tree(self.roots()):
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                self.seen[proc.pid] = times.user + times.system
        return dict(self.seen)

    @staticmethod
    def between(before: dict[int, float], after: dict[int, float]) -> float:
        """CPU seconds used from ``before`` to ``after`` (a new process counts from zero)."""
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def rss(pids: Iterable[int]) -> int:
    """Resident set size in bytes, summed over the trees of ``pids``."""
    total = 0
    for proc in tree(pids):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def target_requests(port: int, timeout: float = 5.0) -> int:
    """Requests the target has handled so far, read from its stub_status page."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {STATUS_PATH} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"Reading" in data or data.count(b"\n") >= 7:
                break
    body = data.split(b"\r\n\r\n", 1)[1].decode()
    # "Active connections: 1\nserver accepts handled requests\n 5 5 9\n..."
    return int(body.splitlines()[2].split()[2])


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> None:
    """Wait until ``condition()`` is truthy; fail naming ``what`` after ``timeout`` s.

    The one poll of the package's tests, :func:`notebookswarm.testing.wait_until`.
    """
    wait_until(condition, timeout, interval=0.05, message=what)


def pin(pids: Iterable[int], cpu: int) -> None:
    """Pin processes (and their descendants) to one CPU when there are two or more."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return
    for proc in tree(pids):
        with contextlib.suppress(OSError, psutil.Error):
            os.sched_setaffinity(proc.pid, {cpu})


def reap(proc: subprocess.Popen[Any], timeout: float = 10.0, sig: int = signal.SIGTERM) -> int:
    """Ask a process to end with ``sig``, kill it after ``timeout`` s; return its status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
