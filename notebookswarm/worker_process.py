"""What a worker process does once patched: run users, report stats and health.

Imported only by :mod:`notebookswarm.worker` after monkey-patching. Modes:

``--standalone``  run one swarm in this process for ``--run-time`` seconds and write
                  protocol frames (4-byte big-endian length, then the frame) to the
                  stdout it was started with; user code's own prints go to stderr.
                  :mod:`notebookswarm.local` starts and reads such a worker.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import BinaryIO

import gevent
import psutil

from notebookswarm import __version__, protocol
from notebookswarm.errors import ConfigError
from notebookswarm.loader import load_file
from notebookswarm.runtime import Runtime, RuntimeConfig
from notebookswarm.stats import StatsRecorder

Send = Callable[[protocol.Message], None]


class LoopMonitor:
    """Measure how late the gevent loop wakes a sleeper: the generator's own delay."""

    def __init__(self, tick: float = 0.1) -> None:
        self.tick = tick
        self._worst = 0.0
        self._greenlet = gevent.spawn(self._watch)

    def _watch(self) -> None:
        while True:
            before = time.monotonic()
            gevent.sleep(self.tick)
            late = time.monotonic() - before - self.tick
            self._worst = max(self._worst, late)

    def take(self) -> float:
        """Return the worst lateness (seconds) since the last call, and start over."""
        worst, self._worst = self._worst, 0.0
        return max(worst, 0.0)

    def close(self) -> None:
        """Stop measuring."""
        self._greenlet.kill(block=False)


class Reporter:
    """Send one stats delta and one heartbeat per report interval."""

    def __init__(self, worker_id: str, runtime: Runtime, send: Send) -> None:
        self.worker_id = worker_id
        self.runtime = runtime
        self.send = send
        self.seq = 0
        self.since = time.time()
        self.loop = LoopMonitor()
        self.process = psutil.Process()
        self.process.cpu_percent(None)  # the first call only starts the measurement

    def heartbeat(self) -> protocol.Heartbeat:
        """Describe this worker's state now."""
        return protocol.Heartbeat(
            worker_id=self.worker_id,
            state=self.runtime.state,  # type: ignore[arg-type]  # one of the four states
            users=self.runtime.user_counts(),
            cpu_percent=float(self.process.cpu_percent(None)),
            loop_lag=self.loop.take(),
        )

    def flush(self) -> None:
        """Send the stats recorded since the last flush (also when there are none)."""
        now = time.time()
        delta = self.runtime.recorder.take()
        self.send(
            protocol.Report(
                worker_id=self.worker_id,
                seq=self.seq,
                start=self.since,
                end=now,
                stats=delta.to_wire(),
            )
        )
        self.seq += 1
        self.since = now
        self.send(self.heartbeat())

    def run_every(self, interval: float) -> None:
        """Flush on an absolute schedule, every ``interval`` seconds, until killed."""
        start = time.monotonic()
        ticks = 0
        while True:
            ticks += 1
            gevent.sleep(max(0.0, start + ticks * interval - time.monotonic()))
            self.flush()


def frame_writer(stream: BinaryIO) -> Send:
    """Return a ``send`` that writes length-prefixed frames to ``stream``."""

    def send(message: protocol.Message) -> None:
        frame = protocol.encode(message)
        stream.write(len(frame).to_bytes(4, "big") + frame)
        stream.flush()

    return send


def _private_stdout() -> BinaryIO:
    """Keep the real stdout for frames and send anything user code prints to stderr."""
    frames_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(frames_fd, "wb")


def run_standalone(args: argparse.Namespace) -> int:
    """Run one swarm here for ``args.run_time`` seconds and stream frames to stdout."""
    out = _private_stdout()
    send = frame_writer(out)
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    config = RuntimeConfig(
        host=args.host,
        tags=frozenset(args.tags) if args.tags else None,
        exclude_tags=frozenset(args.exclude_tags or ()),
        stop_timeout=args.stop_timeout,
    )
    try:
        classes = load_file(args.locustfile, args.user_class or None)
        runtime = Runtime(classes, StatsRecorder(), config)
        targets = _split_evenly(args.users, [cls.__name__ for cls in classes], classes)
        runtime.set_targets(targets, args.spawn_rate)
    except ConfigError as exc:
        send(protocol.Refused(reason=str(exc)))
        return 2
    send(
        protocol.Hello(
            worker_id=worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            cores=os.cpu_count() or 1,
            version=__version__,
        )
    )
    reporter = Reporter(worker_id, runtime, send)
    ticker = gevent.spawn(reporter.run_every, args.report_interval)
    watchdog = gevent.spawn(_exit_when_orphaned, os.getppid())
    gevent.sleep(args.run_time)
    runtime.stop()
    ticker.kill()
    reporter.flush()
    send(protocol.Stopped(worker_id=worker_id))
    watchdog.kill()
    reporter.loop.close()
    out.close()
    return 0


def _split_evenly(total: int, names: list[str], classes: list[type]) -> dict[str, int]:
    from notebookswarm.dispatch import UserClassSpec, split_users

    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ConfigError(f"users must be an integer >= 0, got {total!r}")
    specs = [
        UserClassSpec(name=n, weight=c.weight, fixed_count=c.fixed_count)  # type: ignore[attr-defined]
        for n, c in zip(names, classes, strict=True)
    ]
    return split_users(total, specs)


def _exit_when_orphaned(parent: int) -> None:
    """Exit at once if the process that started this worker is gone."""
    while True:
        gevent.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the worker's command line."""
    p = argparse.ArgumentParser(prog="python -m notebookswarm.worker")
    p.add_argument("--standalone", action="store_true", help="run one swarm in this process")
    p.add_argument("--locustfile", "-f", required=True, help="Python file with user classes")
    p.add_argument("--user-class", action="append", help="run only this class (repeatable)")
    p.add_argument("--host", default=None, help="base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--users", "-u", type=int, default=1)
    p.add_argument("--spawn-rate", "-r", type=float, default=1.0)
    p.add_argument("--run-time", "-t", type=float, default=10.0, help="seconds")
    p.add_argument("--report-interval", type=float, default=1.0)
    p.add_argument("--stop-timeout", type=float, default=10.0)
    p.add_argument("--tags", nargs="*")
    p.add_argument("--exclude-tags", nargs="*")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run a worker process; see the module docstring for the modes."""
    args = parse_args(argv)
    if not args.standalone:
        print("only --standalone is available in this version", file=sys.stderr)
        return 2
    return run_standalone(args)
