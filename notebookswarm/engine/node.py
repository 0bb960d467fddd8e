"""What a worker process does once patched: run users, report stats and health.

Imported only by :mod:`notebookswarm.worker` after monkey-patching. Two modes:

``--master tcp://HOST:PORT``  join a master (:class:`WorkerNode`): receive user code and
    absolute targets, send a stats delta every report interval, and heartbeats from a
    native thread, so a hub saturated by users never makes this worker look dead. The
    same thread exits the process when the master has been silent for ``master_timeout``.
``--standalone``  run one swarm here for ``--run-time`` seconds and write protocol
    frames (4-byte big-endian length, then the frame) to the stdout the process was
    started with; user code's own prints go to stderr. :mod:`notebookswarm._local` reads it.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import socket
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import gevent
import psutil
import zmq
import zmq.green
from zmq.utils.monitor import recv_monitor_message

from notebookswarm._version import __version__
from notebookswarm.cluster import protocol
from notebookswarm.cluster.capacity import usable_cpus
from notebookswarm.cluster.keys import HANDSHAKE_FAILURES, explain_handshake, worker_curve_options
from notebookswarm.engine.boundary import escapes, install_interrupt_handler
from notebookswarm.engine.locust_events import WorkerEvents, load_worker_code
from notebookswarm.engine.runtime import READY, Runtime, RuntimeConfig
from notebookswarm.engine.stuck import EXIT_STUCK, StopWatch, hub_stack, last_words, stuck_users
from notebookswarm.errors import ConfigError
from notebookswarm.stats.names import DEFAULT_MAX_NAMES, DEFAULT_WARN_NAMES
from notebookswarm.stats.requests import StatsRecorder
from notebookswarm.users.code import install_sources
from notebookswarm.users.compat.loading import load_locustfile
from notebookswarm.users.core import User

Send = Callable[[protocol.Message], None]
#: The CPU this process may use (cgroup quota, affinity): 100% per CPU is its ceiling.
_CORES = usable_cpus()

# gevent records every greenlet's spawner and spawning stack for its debugging tools; with
# a greenlet per user that was a third of the CPU of starting one (10 of 31 µs), for
# tools a worker never runs.
gevent.config.track_greenlet_tree = False


class LoopMonitor:
    """Measure how late the gevent loop wakes a sleeper: the generator's own delay."""

    def __init__(self, tick: float = 0.1) -> None:
        self.tick = tick
        self._worst = 0.0
        self._last_wake = time.monotonic()
        self._greenlet = gevent.spawn(self._watch)

    @property
    def last_wake(self) -> float:
        """When (monotonic) the loop last ran this monitor: long ago means a blocked hub."""
        return self._last_wake

    def _watch(self) -> None:
        while True:
            before = time.monotonic()
            gevent.sleep(self.tick)
            self._last_wake = time.monotonic()
            self._worst = max(self._worst, self._last_wake - before - self.tick)

    def take(self) -> float:
        """Return the worst lateness (seconds) since the last call, and start over.

        Safe to call from a native thread: a loop blocked right now counts too.
        """
        blocked = time.monotonic() - self._last_wake - self.tick
        worst, self._worst = max(self._worst, blocked), 0.0
        return max(worst, 0.0)

    def close(self) -> None:
        """Stop measuring."""
        self._greenlet.kill(block=False)


class SamplingRecorder(StatsRecorder):
    """A test hook: also writes every latency to a file, tagged with its report's seq.

    Enabled by the ``raw_samples_file`` code option; lets a test check percentiles over a
    window against the exact samples. Costs a list append per request and a file write per
    report, so it is not for real runs.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.samples: list[tuple[str, str, int]] = []

    def record_request(
        self, method: str, name: str, latency_ns: int, nbytes: int, error: str | None
    ) -> None:
        """Count one request and keep its latency."""
        super().record_request(method, name, latency_ns, nbytes, error)
        self.samples.append((method, name, latency_ns))

    def dump(self, worker_id: str, seq: int) -> None:
        """Append the samples of the interval just taken, as ``worker seq method name ns``."""
        with open(self.path, "a") as out:
            for method, name, latency in self.samples:
                out.write(f"{worker_id}\t{seq}\t{method}\t{name}\t{latency}\n")
        self.samples = []


class Reporter:
    """Build this worker's stats deltas and heartbeats."""

    def __init__(self, worker_id: str, recorder: StatsRecorder, send: Send) -> None:
        self.worker_id = worker_id
        self.recorder = recorder
        self.send = send
        self.runtime: Runtime | None = None
        self.events: WorkerEvents | None = None  # a locustfile's listeners, when loaded
        self.seq = 0
        self.since = time.time()
        self.loop = LoopMonitor()
        self.process = psutil.Process()
        self.process.cpu_percent(None)  # the first call only starts the measurement
        #: A stop in progress, watched from a native thread (see engine.stuck).
        self.watch = StopWatch()
        self.hub_thread: int = gevent.monkey.get_original("_thread", "get_ident")()

    def heartbeat(self) -> protocol.Heartbeat:
        """Describe this worker's state now."""
        runtime = self.runtime
        return protocol.Heartbeat(
            worker_id=self.worker_id,
            state=runtime.state if runtime else READY,  # type: ignore[arg-type]
            users=runtime.user_counts() if runtime else {},
            # Over a very short interval psutil can read far above what the cores allow.
            cpu_percent=min(float(self.process.cpu_percent(None)), 100.0 * _CORES),
            loop_lag=self.loop.take(),
        )

    def flush(self) -> None:
        """Send the stats recorded since the last flush (also when there are none)."""
        now = time.time()
        delta = self.recorder.take()
        custom = self.events.report(delta) if self.events is not None else None
        report = protocol.Report(
            worker_id=self.worker_id,
            seq=self.seq,
            start=self.since,
            end=now,
            stats=delta.to_wire(),
            custom=custom,
            names=self.names(),
        )
        if isinstance(self.recorder, SamplingRecorder):
            self.recorder.dump(self.worker_id, self.seq)
        self.send(report)
        self.seq += 1
        self.since = now

    def names(self) -> protocol.NameReport | None:
        """Say how many request names this worker keeps, once they are many or folded."""
        names = self.recorder.names
        folded = names.take_folded()
        if names.distinct < DEFAULT_WARN_NAMES and not folded:
            return None
        return protocol.NameReport(
            distinct=names.distinct, folded=folded, pattern=names.top_pattern()
        )

    def stuck_check(self) -> float | None:
        """From a native thread: seconds a stop has waited, if it is stuck (engine.stuck)."""
        return self.watch.overdue(time.monotonic(), self.loop.last_wake)

    def last_words(self, waited: float) -> list[protocol.Message]:
        """From a native thread, the hub stuck: the last Report and a Stuck message."""
        users = self.runtime.live_users() if self.runtime is not None else []
        stuck = stuck_users(users, self.hub_thread)
        delta = last_words(self.recorder, users, stuck)
        report = protocol.Report(
            worker_id=self.worker_id,
            seq=self.seq,
            start=self.since,
            end=time.time(),
            stats=delta.to_wire(),
            names=self.names(),
        )
        counts = Counter((one.user_class, one.task) for one in stuck)
        tasks = [protocol.StuckTask(user_class=c, task=t, users=n) for (c, t), n in counts.items()]
        names = ", ".join(f"{t.user_class} in {t.task}" for t in tasks) or "no user task"
        stack = next((one.stack for one in stuck if one.stack), "")
        if stack:
            where = f"\nWhere it was running:\n{stack}"
        else:  # the hub is held outside user code: say where, to find the blocking call
            where = f"\nThe event loop's thread was at:\n{hub_stack(self.hub_thread)}"
        print(
            f"notebookswarm worker {self.worker_id}: users still running {waited:.1f} s after "
            f"the stop was asked ({names}): exiting with status {EXIT_STUCK}{where}",
            file=sys.stderr,
            flush=True,
        )
        stuck_message = protocol.Stuck(
            worker_id=self.worker_id, tasks=tasks, waited=waited, exit_code=EXIT_STUCK
        )
        return [report, stuck_message]

    def run_every(self, interval: float, with_heartbeat: bool) -> None:
        """Flush at every multiple of ``interval`` on the wall clock, until killed.

        Aligning to the clock rather than to this worker's start makes every worker's
        report cover the same second, so the master's per-second rows add up cleanly.
        """
        while True:
            now = time.time()
            gevent.sleep(max(0.0, (math.floor(now / interval) + 1) * interval - now))
            self.flush()
            if with_heartbeat:
                self.send(self.heartbeat())


# --- joined to a master ------------------------------------------------------------


def native_lock() -> Any:
    """A lock of the operating system's, not gevent's: the heartbeat thread may take it."""
    return gevent.monkey.get_original("_thread", "allocate_lock")()


def new_worker_id() -> str:
    """Return an id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Heartbeats:
    """A native thread that sends heartbeats and exits the process if the master goes silent.

    It has its own socket (plain, not green) and never touches the gevent hub, so it keeps
    its rhythm while users saturate the hub.
    """

    def __init__(
        self, endpoint: str, reporter: Reporter, welcome: protocol.Welcome, curve: dict[int, bytes]
    ) -> None:
        self.endpoint = endpoint
        self.reporter = reporter
        self.interval = welcome.heartbeat_interval
        self.master_timeout = welcome.master_timeout
        self.curve = curve
        start_thread: Any = gevent.monkey.get_original("_thread", "start_new_thread")
        start_thread(self._run, ())

    def _run(self) -> None:
        context = zmq.Context()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, f"{self.reporter.worker_id}/hb".encode())
        sock.setsockopt(zmq.LINGER, 0)
        for option, value in self.curve.items():
            sock.setsockopt(option, value)
        sock.connect(self.endpoint)
        last_ping = time.monotonic()
        while True:
            sock.send(protocol.encode(self.reporter.heartbeat()))
            deadline = time.monotonic() + self.interval
            while (left := deadline - time.monotonic()) > 0:
                if sock.poll(int(min(left, 0.25) * 1000) + 1):
                    self._heard(sock.recv())
                    last_ping = time.monotonic()
                waited = self.reporter.stuck_check()
                if waited is not None:
                    self._give_up(sock, context, waited)
            silent = time.monotonic() - last_ping
            if silent > self.master_timeout:
                print(
                    f"notebookswarm worker {self.reporter.worker_id}: master silent for "
                    f"{silent:.1f} s (master_timeout {self.master_timeout:g} s): exiting",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(4)

    def _heard(self, frame: bytes) -> None:
        """A Ping, or a Stop or Quit the master copies here for a worker whose hub is stuck."""
        try:
            message = protocol.decode(frame)
        except protocol.ProtocolError:
            return
        if isinstance(message, protocol.Stop | protocol.Quit):
            runtime = self.reporter.runtime
            default = runtime.config.stop_timeout if runtime is not None else 10.0
            timeout = getattr(message, "timeout", None)
            stop_id = getattr(message, "stop_id", None)
            grace = default if timeout is None else timeout
            self.reporter.watch.asked(grace, time.monotonic(), stop_id)

    def _give_up(self, sock: Any, context: Any, waited: float) -> None:
        """Send the last report and Stuck on this thread's socket, then exit (engine.stuck)."""
        for message in self.reporter.last_words(waited):
            sock.send(protocol.encode(message))
        sock.close(linger=2000)  # sent before the process goes
        context.term()
        os._exit(EXIT_STUCK)


class HandshakeFailed(Exception):
    """The master's socket refused ours during the ZeroMQ handshake."""


class WorkerNode:
    """A worker joined to a master over ZeroMQ."""

    def __init__(
        self, endpoint: str, connect_timeout: float = 30.0, curve: dict[int, bytes] | None = None
    ) -> None:
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.curve = curve or {}
        self.worker_id = new_worker_id()
        self.context = zmq.green.Context()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, self.worker_id.encode())
        self.sock.setsockopt(zmq.LINGER, 2000)
        for option, value in self.curve.items():
            self.sock.setsockopt(option, value)
        # Watch the handshake from the first connection attempt: a refusal can come fast.
        self._monitor = self.sock.get_monitor_socket(HANDSHAKE_FAILURES)
        self.sock.connect(endpoint)
        self.recorder = StatsRecorder(lock=native_lock())
        self.reporter = Reporter(self.worker_id, self.recorder, self.send)
        self.classes: list[type[User]] = []
        self.code: protocol.Code | None = None
        self.generation = -1
        self.stopper: gevent.Greenlet | None = None

    def close(self) -> None:
        """Close the socket (giving queued messages a moment) and the context."""
        self.sock.close(linger=1000)
        self.context.term()

    def send(self, message: protocol.Message) -> None:
        """Send one message to the master."""
        self.sock.send(protocol.encode(message))

    def receive(self, timeout: float | None) -> protocol.Message | None:
        """Return the next message from the master, or None after ``timeout`` seconds."""
        if timeout is not None and not self.sock.poll(int(timeout * 1000)):
            return None
        return protocol.decode(self.sock.recv())

    def say(self, text: str) -> None:
        """Tell the person running this worker (stderr)."""
        print(f"notebookswarm worker {self.worker_id}: {text}", file=sys.stderr, flush=True)

    def run(self) -> int:
        """Join the master and obey it until told to quit; return the exit status."""
        hello = protocol.Hello(
            worker_id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            cores=os.cpu_count() or 1,
            version=__version__,
            millicpus=max(1, round(1000 * usable_cpus())),
        )
        try:
            welcome = self._join(hello)
        except protocol.VersionMismatch as exc:
            self.say(exc.explain(peer="master", local="worker"))
            return 2
        except HandshakeFailed as exc:
            self.say(str(exc))
            return 1
        if isinstance(welcome, protocol.Refused):
            self.say(f"refused by the master: {welcome.reason}")
            return 2
        if not isinstance(welcome, protocol.Welcome):
            self.say(
                f"no welcome from the master at {self.endpoint} within {self.connect_timeout:g} s:"
                " is it running there, and if it needs CurveZMQ keys, does it trust this "
                "worker's key (--keys DIR)?"
            )
            return 1
        Heartbeats(self.endpoint, self.reporter, welcome, self.curve)
        ticker = gevent.spawn(self.reporter.run_every, welcome.report_interval, False)
        while True:
            try:
                message = self.receive(None)
            except protocol.ProtocolError as exc:
                self.say(f"dropped a frame from the master: {exc}")
                continue
            if isinstance(message, protocol.Quit):
                ticker.kill()
                self._stop(None)
                self.send(protocol.Goodbye(worker_id=self.worker_id))
                if self.reporter.events is not None:
                    self.reporter.events.quitting()
                return 0
            handler = getattr(self, f"_on_{type(message).__name__.lower()}", None)
            if handler is not None:
                handler(message)

    def _join(self, hello: protocol.Hello) -> protocol.Message | None:
        """Send the hello and wait for the master's first answer, watching the handshake.

        Nothing here blocks past the deadline: a master that refuses our key ends the ZeroMQ
        session, and a DEALER with no session would block a plain send forever.
        """
        monitor = self._monitor
        frame = protocol.encode(hello)
        try:
            poller = zmq.green.Poller()
            poller.register(self.sock, zmq.POLLOUT)
            poller.register(monitor, zmq.POLLIN)
            deadline = time.monotonic() + self.connect_timeout
            while (left := deadline - time.monotonic()) > 0:
                ready = dict(poller.poll(int(left * 1000) + 1))
                if monitor in ready:
                    raise HandshakeFailed(explain_handshake(recv_monitor_message(monitor)))
                flags = ready.get(self.sock, 0)
                if flags & zmq.POLLOUT:
                    try:
                        self.sock.send(frame, zmq.NOBLOCK)
                    except zmq.Again:  # the session went between the poll and the send
                        continue
                    poller.modify(self.sock, zmq.POLLIN)
                elif flags & zmq.POLLIN:
                    return self.receive(0)
            return None
        finally:
            self.sock.disable_monitor()
            monitor.close()

    def _on_code(self, message: protocol.Code) -> None:
        if self.reporter.runtime is not None:
            self._stop(None)
        try:
            options = message.options
            install_sources(options.get("sources") or {})
            if message.fmt == "source" and "filename" in options:
                install_sources({str(options["filename"]): message.payload.decode("utf-8")})
            self.classes, environment = load_worker_code(message)
            if options.get("raw_samples_file"):
                self.recorder = SamplingRecorder(str(options["raw_samples_file"]))
                self.reporter.recorder = self.recorder
            config = RuntimeConfig(
                host=message.host,
                tags=frozenset(options["tags"]) if options.get("tags") else None,
                exclude_tags=frozenset(options.get("exclude_tags") or ()),
                stop_timeout=float(options.get("stop_timeout", 10.0)),
                max_names=int(options.get("max_names", DEFAULT_MAX_NAMES)),
            )
            self.reporter.runtime = Runtime(self.classes, self.recorder, config)
            events = WorkerEvents(environment, self.worker_id, self.recorder, self._leave)
            self.reporter.events = events
            events.attach(self.reporter.runtime)
        except BaseException as exc:  # a sys.exit() at the top of a file too
            if escapes(exc):
                raise
            text = "".join(traceback.format_exception(exc))
            # One line here; the traceback goes to the master, and the person sees it once.
            self.say(f"cannot load the user code ({type(exc).__name__}: {exc}): told the master")
            self.send(protocol.Failed(worker_id=self.worker_id, reason=text))

    def _leave(self) -> None:
        """``environment.runner.quit()`` in user code: stop, report, say goodbye, exit."""
        self._stop(None)
        self.send(protocol.Goodbye(worker_id=self.worker_id))
        if self.reporter.events is not None:
            self.reporter.events.quitting()
        self.close()
        os._exit(0)

    def _on_spawn(self, message: protocol.Spawn) -> None:
        runtime = self.reporter.runtime
        if runtime is None or message.generation <= self.generation:
            return
        self.generation = message.generation
        try:
            if self.reporter.events is not None:
                self.reporter.events.starting()
            runtime.set_targets(message.targets, message.spawn_rate)
        except ConfigError as exc:
            self.send(protocol.Failed(worker_id=self.worker_id, reason=str(exc)))

    def _on_pace(self, message: protocol.Pace) -> None:
        runtime = self.reporter.runtime
        if runtime is None or message.generation <= self.generation:
            return
        self.generation = message.generation
        if self.reporter.events is not None:
            self.reporter.events.starting()
        runtime.set_arrivals(message.rate, message.max_users, message.poisson, message.max_backlog)

    def _on_stop(self, message: protocol.Stop) -> None:
        if self.stopper is None or self.stopper.dead:
            self.stopper = gevent.spawn(self._stop, message.timeout, message.stop_id)

    def _stop(self, timeout: float | None, stop_id: int | None = None) -> None:
        runtime = self.reporter.runtime
        if runtime is not None:
            grace = runtime.config.stop_timeout if timeout is None else timeout
            self.reporter.watch.asked(grace, time.monotonic(), stop_id)
            runtime.stop(timeout)
        if self.reporter.events is not None:
            self.reporter.events.stopping()  # before the flush: its report data travels in it
        self.reporter.flush()
        self.send(self.reporter.heartbeat())
        self.send(protocol.Stopped(worker_id=self.worker_id))
        self.reporter.watch.finished(stop_id)


# --- standalone --------------------------------------------------------------------


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
    from notebookswarm.cluster.dispatch import UserClassSpec, split_users

    out = _private_stdout()
    send = frame_writer(out)
    worker_id = new_worker_id()
    config = RuntimeConfig(
        host=args.host,
        tags=frozenset(args.tags) if args.tags else None,
        exclude_tags=frozenset(args.exclude_tags or ()),
        stop_timeout=args.stop_timeout,
    )
    recorder = StatsRecorder(lock=native_lock())
    try:
        loaded = load_locustfile(args.locustfile, args.user_class or None, keep=True)
        classes = loaded.classes
        runtime = Runtime(classes, recorder, config)
        events = WorkerEvents(loaded.environment, worker_id, recorder)
        events.attach(runtime)
        events.starting()
        specs = [UserClassSpec(c.__name__, c.weight, c.fixed_count) for c in classes]
        runtime.set_targets(split_users(args.users, specs), args.spawn_rate)
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
            millicpus=max(1, round(1000 * usable_cpus())),
        )
    )
    reporter = Reporter(worker_id, recorder, send)
    reporter.runtime = runtime
    reporter.events = events
    ticker = gevent.spawn(reporter.run_every, args.report_interval, True)
    watchdog = gevent.spawn(_exit_when_orphaned, os.getppid())
    start_thread: Any = gevent.monkey.get_original("_thread", "start_new_thread")
    stop_at = time.monotonic() + args.run_time
    start_thread(_watch_stop, (reporter, send, stop_at, args.stop_timeout))
    gevent.sleep(args.run_time)
    runtime.stop()
    reporter.watch.finished()
    ticker.kill()
    events.stopping()
    reporter.flush()
    send(reporter.heartbeat())
    send(protocol.Stopped(worker_id=worker_id))
    events.quitting()
    watchdog.kill()
    reporter.loop.close()
    out.close()
    return 0


def _watch_stop(reporter: Reporter, send: Send, stop_at: float, timeout: float) -> None:
    """A native thread: the stop is due at ``stop_at``; if it gets stuck, leave (engine.stuck).

    It asks the stop itself: a hub held by a task in a CPU-bound loop never wakes the
    main greenlet that would.
    """
    sleep = gevent.monkey.get_original("time", "sleep")
    asked = False
    while True:
        sleep(0.25)
        if not asked and time.monotonic() >= stop_at:
            reporter.watch.asked(timeout, stop_at)
            asked = True
        waited = reporter.stuck_check()
        if waited is not None:
            for message in reporter.last_words(waited):
                send(message)
            os._exit(EXIT_STUCK)


def _exit_when_orphaned(parent: int) -> None:
    """Exit at once if the process that started this worker is gone."""
    while True:
        gevent.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the worker's command line."""
    p = argparse.ArgumentParser(prog="python -m notebookswarm.worker")
    p.add_argument("--master", help="join the master at this endpoint, e.g. tcp://10.0.0.5:5557")
    p.add_argument("--keys", type=Path, help="CurveZMQ key directory (from `keygen`)")
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--standalone", action="store_true", help="run one swarm in this process")
    p.add_argument("--locustfile", "-f", help="Python file with user classes (standalone)")
    p.add_argument("--user-class", action="append", help="run only this class (repeatable)")
    p.add_argument("--host", default=None, help="base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--users", "-u", type=int, default=1)
    p.add_argument("--spawn-rate", "-r", type=float, default=1.0)
    p.add_argument("--run-time", "-t", type=float, default=10.0, help="seconds")
    p.add_argument("--report-interval", type=float, default=1.0)
    p.add_argument("--stop-timeout", type=float, default=10.0)
    p.add_argument("--tags", nargs="*")
    p.add_argument("--exclude-tags", nargs="*")
    p.add_argument(
        "--single-user", action="store_true", help="run one user, printing every request"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run a worker process; see the module docstring for the modes."""
    args = parse_args(argv)
    install_interrupt_handler()  # a real Ctrl-C stops the worker; a user's raise does not
    if args.single_user:
        from notebookswarm.engine.single_user import run_single_user

        return run_single_user(args)
    if args.standalone:
        if not args.locustfile:
            print("--standalone needs --locustfile FILE", file=sys.stderr)
            return 2
        return run_standalone(args)
    if not args.master:
        print("pass --master tcp://HOST:PORT (or --standalone -f FILE)", file=sys.stderr)
        return 2
    curve: dict[int, bytes] = {}
    if args.keys is not None:
        try:
            curve = worker_curve_options(args.keys)
        except ConfigError as exc:
            print(f"notebookswarm worker: {exc}", file=sys.stderr)
            return 2
    node = WorkerNode(args.master, args.connect_timeout, curve)
    try:
        return node.run()
    finally:
        node.close()
