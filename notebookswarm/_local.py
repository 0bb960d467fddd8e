"""Run one swarm in a single local worker process and collect its statistics.

The simplest way to run users: no master, one worker subprocess started with
``--standalone``, its frames read from a pipe. Public as
:func:`notebookswarm.testing.run_local`, for testing a user class (and used by our own
tests of the engine); the notebook ``Swarm`` runs the same worker runtime under a master.
Everything is checked here, before the worker starts, so bad input starts nothing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from notebookswarm._checks import check_count, check_rate
from notebookswarm.cluster import protocol
from notebookswarm.errors import ConfigError, NotebookSwarmError
from notebookswarm.stats.requests import RequestStats
from notebookswarm.users.core import check_host, check_user_classes, resolve_host
from notebookswarm.users.loader import load_file


@dataclass
class LocalResult:
    """What a local run produced: cumulative stats, every report, and the last heartbeat."""

    stats: RequestStats = field(default_factory=RequestStats)
    reports: list[protocol.Report] = field(default_factory=list)
    heartbeat: protocol.Heartbeat | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def duration(self) -> float:
        """Seconds between the first report's start and the last report's end."""
        if self.started is None or self.ended is None:
            return 0.0
        return self.ended - self.started


def check_run(users: object, spawn_rate: object, run_time: object) -> None:
    """Raise ConfigError naming the value and the fix if a run's numbers are wrong."""
    check_count("users", users)
    check_rate("spawn_rate", spawn_rate, "users per second")
    check_rate("run_time", run_time, "seconds")


def _read_frame(stream: IO[bytes]) -> bytes | None:
    header = stream.read(4)
    if len(header) < 4:
        return None
    frame = stream.read(int.from_bytes(header, "big"))
    return frame


def run_local(
    locustfile: str | Path,
    *,
    host: str | None = None,
    users: int = 1,
    spawn_rate: float = 1.0,
    run_time: float = 10.0,
    classes: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    exclude_tags: Sequence[str] | None = None,
    stop_timeout: float = 10.0,
    report_interval: float = 1.0,
    on_message: Callable[[protocol.Message, LocalResult], None] | None = None,
) -> LocalResult:
    """Run the users of ``locustfile`` for ``run_time`` seconds in one worker process."""
    check_run(users, spawn_rate, run_time)
    if host is not None:
        check_host(host)
    for cls in check_user_classes(load_file(locustfile, classes)):
        resolve_host(cls, host)
    cmd = [sys.executable, "-m", "notebookswarm.worker", "--standalone", "--locustfile",
           str(locustfile), "--users", str(users), "--spawn-rate", str(spawn_rate),
           "--run-time", str(run_time), "--stop-timeout", str(stop_timeout),
           "--report-interval", str(report_interval)]  # fmt: skip
    if host is not None:
        cmd += ["--host", host]
    for name in classes or ():
        cmd += ["--user-class", name]
    if tags:
        cmd += ["--tags", *tags]
    if exclude_tags:
        cmd += ["--exclude-tags", *exclude_tags]
    result = LocalResult()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        while (frame := _read_frame(proc.stdout)) is not None:
            message = protocol.decode(frame)
            _take(message, result)
            if on_message is not None:
                on_message(message, result)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    if code != 0:
        raise NotebookSwarmError(f"the worker exited with status {code}; see its stderr above")
    return result


def _take(message: protocol.Message, result: LocalResult) -> None:
    if isinstance(message, protocol.Refused):
        raise ConfigError(message.reason)
    if isinstance(message, protocol.Report):
        result.reports.append(message)
        result.stats.merge(RequestStats.from_wire(message.stats))
        if result.started is None:
            result.started = message.start
        result.ended = message.end
    elif isinstance(message, protocol.Heartbeat):
        result.heartbeat = message
