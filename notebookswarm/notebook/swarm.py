"""The notebook controller: start, steer and read a swarm from cells.

::

    swarm = nbs.Swarm(Contestant, host="http://127.0.0.1:8080")   # master + one worker per core
    swarm.start(users=100, spawn_rate=10)                         # returns at once
    swarm.history.tail()                                          # pandas, while it runs
    swarm.set_users(300)
    swarm.stop()                                                  # graceful: loses nothing
    run = swarm.result()
    swarm.close()                                                 # also at interpreter exit

Frames from the master arrive on a background thread (the control client's), so data keeps
coming while a cell blocks and while the kernel is idle. Nothing here imports gevent.

``Swarm`` is the one object a notebook holds, so its many public methods live together
here; each is a short door to the part that does the work: the processes
(:mod:`~notebookswarm.notebook.processes`), the shape follower
(:mod:`~notebookswarm.notebook.follower`), the DataFrames (:mod:`~notebookswarm.notebook.view`,
:mod:`~notebookswarm.notebook.rundata`), the watched server (:mod:`~notebookswarm.notebook.watch`)
and a locustfile's events (:mod:`~notebookswarm.notebook.events_host`).
"""

from __future__ import annotations

import contextlib
import html
import os
import queue
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pandas as pd

from notebookswarm._checks import check_count, check_rate
from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.control import ControlClient
from notebookswarm.errors import ConfigError, NotebookSwarmError
from notebookswarm.notebook.console import Progress
from notebookswarm.notebook.events_host import ControllerEvents
from notebookswarm.notebook.follower import ShapeFollower
from notebookswarm.notebook.loading import UserCode, load_user_code
from notebookswarm.notebook.processes import (
    LocalProcesses,
    await_remote_workers,
    describe_dead,
    shutdown,
    weakly,
    worker_count,
)
from notebookswarm.notebook.run import Run, empty_server_table
from notebookswarm.notebook.rundata import RunData
from notebookswarm.notebook.shapes import Shape, StepLoad, as_shape, parse_duration
from notebookswarm.notebook.view import RunView, T
from notebookswarm.notebook.watch import ServerRow, Watcher, grid_start
from notebookswarm.users.compat.loading import set_parsed_options
from notebookswarm.users.core import check_host

FrameCallback = Callable[[protocol.Update], None]
_RUNS_PER_S = "task runs per second"
_DURATION_WORD = re.compile(r"^\s*\d")


@dataclass(frozen=True)
class SwarmConfig:
    """Settings of a swarm: the master's timings and the users' runtime options."""

    master: MasterConfig = field(default_factory=MasterConfig)
    stop_timeout: float = 10.0
    tags: tuple[str, ...] | None = None
    exclude_tags: tuple[str, ...] = ()
    join_timeout: float = 60.0
    raw_samples_file: str | None = None  # test hook: every latency, tagged by report
    #: Stream each run into a folder named by its start time under this one (relative to
    #: the current directory when the run starts); None keeps runs in memory only. The
    #: default is ``$NOTEBOOKSWARM_RUNS_DIR`` if set (empty: None), else notebookswarm-runs.
    runs_dir: str | None = field(default_factory=lambda: default_runs_dir())
    #: A locustfile's ``environment.parsed_options`` (plain values), in the workers and here.
    parsed_options: dict[str, Any] | None = None


def default_runs_dir() -> str | None:
    """Where runs stream by default: ``$NOTEBOOKSWARM_RUNS_DIR`` (empty: nowhere), else
    ``notebookswarm-runs`` in the current directory, beside the notebook."""
    value = os.environ.get("NOTEBOOKSWARM_RUNS_DIR")
    if value is None:
        return "notebookswarm-runs"
    return value or None


class Swarm(RunView):
    """A swarm of users you start and steer from a notebook; its data as DataFrames.

    ``Swarm(User, ..., host=URL)`` starts a master and ``workers`` workers here (``"auto"``:
    one per CPU this process may use, cgroup quota and affinity included). A path instead of
    classes loads a locustfile (``user_classes=["Name"]`` picks some of its classes).
    ``master="tcp://HOST:PORT"`` (with ``keys=DIR`` beyond 127.0.0.1) loads the classes onto
    a running standalone master instead: every worker that joined it, or joins later, gets
    them; an int ``workers`` then waits for that many. ``Swarm.connect(endpoint)`` attaches
    without loading, to watch or steer.
    """

    def __init__(
        self,
        *users: Any,
        host: str | None = None,
        workers: int | str = "auto",
        config: SwarmConfig | None = None,
        user_classes: Sequence[str] | None = None,
        master: str | None = None,
        keys: str | Path | None = None,
    ) -> None:
        self.config = config or SwarmConfig()
        self.host = check_host(host) if host is not None else None
        self._lock = threading.Lock()
        self._data = RunData(runs_dir=self.config.runs_dir)
        self._callbacks: list[FrameCallback] = []
        self._iterators: list[queue.SimpleQueue[protocol.Update | None]] = []
        self._state_changed = threading.Condition(self._lock)
        self._closed = False
        self._processes: LocalProcesses | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.steps: list[tuple[float, float, int]] = []  # (start, end, users) of a step load
        self.warnings: list[str] = []  # what the master said once for people to read
        self._events: ControllerEvents | None = None  # a locustfile's master-side listeners
        self._file_shape: Any = None
        self._watcher: Watcher | None = None  # the server's side, sampled on the run's grid
        self._follower = ShapeFollower(
            set_users=weakly(self, lambda swarm, n: swarm._steer(users=n)),
            set_rate=weakly(self, lambda swarm, rate: swarm._steer(rate=rate)),
            stop=weakly(self, lambda swarm: swarm.stop()),
            changed=weakly(self, lambda swarm: swarm._notify()),
        )
        code = self._load_code(users, user_classes) if users or master is None else None
        if code is not None and code.loaded is not None:
            if self.config.parsed_options is not None:
                set_parsed_options(code.loaded, self.config.parsed_options)
            self._events = ControllerEvents(
                code.loaded,
                quit=weakly(self, lambda swarm: swarm.stop()),
                worker_count=weakly(self, lambda swarm: len(swarm._worker_rows())),
            )
        if master is not None:
            self._attach(master, keys, code, workers)
            return
        assert code is not None
        count = worker_count(workers)
        self._processes = LocalProcesses(self.config.master)
        self._client = ControlClient(self._processes.master.control_endpoint)
        # Runs on close(), on garbage collection and at interpreter exit (kernel shutdown).
        # It holds the client and the processes, never the swarm, so a swarm nothing refers
        # to any more is collected and its processes end (a re-run notebook cell).
        self._finalizer = weakref.finalize(self, shutdown, self._client, self._processes)
        try:
            self._client.on_update(weakly(self, Swarm._on_update))
            self._client.request(code.command)
            self._processes.start_workers(count)
            self._processes.await_workers(count, self._worker_rows, self.config.join_timeout)
        except BaseException:
            self.close()
            raise
        if self._events is not None:
            self._events.fire_init()

    # --- construction ------------------------------------------------------------------

    def _attach(
        self, endpoint: str, keys: str | Path | None, code: UserCode | None, workers: int | str
    ) -> None:
        """Control a running master: load ``code`` onto it (unless None) and its workers."""
        curve: dict[int, Any] = {}
        if keys is not None:
            from notebookswarm.cluster.keys import worker_curve_options

            curve = dict(worker_curve_options(keys))
        self._client = ControlClient(endpoint, curve=curve)
        # The master is not ours: closing this swarm leaves it (and its workers) running.
        self._finalizer = weakref.finalize(self, shutdown, self._client, None)
        try:
            self._client.on_update(weakly(self, Swarm._on_update))
            status = self._client.request(protocol.Hail(), timeout=self.config.join_timeout)
            with self._lock:
                self._data.state = status.state
            if code is None:
                return
            self._client.request(code.command)  # refused while a swarm runs there
            if isinstance(workers, int) and not isinstance(workers, bool):
                await_remote_workers(workers, self._worker_rows, self.config.join_timeout)
        except BaseException:
            self.close()
            raise
        if self._events is not None:
            self._events.fire_init()

    def _load_code(self, users: Sequence[Any], names: Sequence[str] | None) -> UserCode:
        options: dict[str, Any] = {
            "stop_timeout": self.config.stop_timeout,
            "tags": list(self.config.tags) if self.config.tags is not None else None,
            "exclude_tags": list(self.config.exclude_tags),
        }
        if self.config.raw_samples_file:
            options["raw_samples_file"] = self.config.raw_samples_file
        if self.config.parsed_options is not None:
            options["parsed_options"] = dict(self.config.parsed_options)
        return load_user_code(users, self.host, options, names)

    def _worker_rows(self) -> list[protocol.WorkerRow]:
        with self._lock:
            return list(self._data.worker_rows)

    @classmethod
    def connect(cls, endpoint: str, keys: str | Path | None = None) -> Swarm:
        """Attach to a running master's control endpoint to watch or steer what it runs,
        without loading code (``Swarm(User, master=endpoint, keys=...)`` loads yours)."""
        return cls(master=endpoint, keys=keys)

    # --- frames ------------------------------------------------------------------------

    def _on_update(self, update: protocol.Update) -> None:
        if self._events is not None:  # worker_report, spawning_complete, test_stop
            self._events.on_update(update)
        for warning in update.warnings:
            print(f"notebookswarm: {warning}", file=sys.stderr, flush=True)
        with self._lock:
            self._data.ingest(update)
            self.warnings += update.warnings
            callbacks = list(self._callbacks)
            iterators = list(self._iterators)
            self._state_changed.notify_all()
        for callback in callbacks:
            callback(update)
        for sink in iterators:
            sink.put(update)

    def _notify(self) -> None:
        with self._lock:
            self._state_changed.notify_all()

    def on_frame(self, callback: FrameCallback) -> None:
        """Call ``callback(update)`` with every update frame, on the background thread.

        The frame is a :class:`notebookswarm.cluster.protocol.Update`: typed, decoded once.
        """
        with self._lock:
            self._callbacks.append(callback)

    def frames(self, timeout: float | None = None) -> Iterator[protocol.Update]:
        """Yield update frames as they arrive; stop after ``timeout`` s without one, or close."""
        sink: queue.SimpleQueue[protocol.Update | None] = queue.SimpleQueue()
        with self._lock:
            self._iterators.append(sink)
        try:
            while True:
                try:
                    frame = sink.get(timeout=timeout)
                except queue.Empty:
                    return
                if frame is None:
                    return
                yield frame
        finally:
            with self._lock:
                self._iterators.remove(sink)

    # --- steering ----------------------------------------------------------------------

    def _command(self, command: protocol.ControlCommand) -> protocol.Status:
        if self._closed:
            raise NotebookSwarmError(
                f"this swarm is closed: {command.KIND} needs a new one, nbs.Swarm(...)"
            )
        status = self._client.request(command)
        if isinstance(command, protocol.StartSwarm | protocol.SetTargets):
            # The reply overtakes the update that would say so: take the state from it,
            # so wait("spawned") right after waits for this change, not the last one.
            with self._lock:
                self._data.state = status.state
                self._data.target_users = status.target_users
                self._data.spawn_rate = status.spawn_rate
        return status

    def _steer(self, **targets: Any) -> protocol.Status:
        return self._command(protocol.SetTargets(targets=protocol.Targets(**targets)))

    def start(
        self,
        users: int | None = None,
        spawn_rate: float = 1.0,
        *,
        rate: float | None = None,
        max_users: int | None = None,
        arrivals: str = "constant",
        max_backlog: int | None = None,
    ) -> None:
        """Start ``users`` users at ``spawn_rate`` users a second; returns at once.

        Or the open model: ``start(rate=500, max_users=1000)`` starts 500 task runs a
        second across the swarm (``arrivals="poisson"`` for random gaps), each run by a
        free user of a pool that grows up to ``max_users``. Arrivals with no free user
        wait in a backlog (``max_backlog``, default two seconds' worth) and start late;
        beyond it they are dropped. Both are counted; latencies are kept from the due
        time (``*_corrected_ms``) and from the send.
        """
        if rate is not None:
            if users is not None:
                raise ConfigError("pass users= (users that wait) or rate= (arrivals), not both")
            if max_users is None:
                raise ConfigError("rate= needs max_users=, the most users the pool may grow to")
            targets = protocol.Targets(
                rate=check_rate("rate", rate, _RUNS_PER_S, allow_zero=True),
                max_users=check_count("max_users", max_users, 1),
                arrivals=_check_arrivals(arrivals),
                max_backlog=None
                if max_backlog is None
                else check_count("max_backlog", max_backlog, hint=" (or None: 2 s of arrivals)"),
            )
        else:
            if users is None and self.file_shape() is not None:
                self.shape(self.file_shape())  # the locustfile's LoadTestShape drives the run
                return
            if users is None:
                raise ConfigError("start(users=N, spawn_rate=R) or start(rate=R, max_users=N)")
            targets = protocol.Targets(
                users=_check_users(users), spawn_rate=_check_rate(spawn_rate)
            )
        self._require_workers()
        if self._events is not None:
            self._events.fire_test_start()
        self._command(protocol.StartSwarm(targets=targets))
        if self.started_at is None:
            self.started_at = time.time()
        self.stopped_at = None

    def set_users(self, users: int) -> None:
        """Move to ``users`` users (at the current spawn rate); returns at once."""
        self._require_workers()
        self._steer(users=_check_users(users))

    def set_rate(self, rate: float) -> None:
        """Change the arrival rate (open model) at once, across every worker."""
        self._require_workers()
        self._steer(rate=check_rate("rate", rate, _RUNS_PER_S, allow_zero=True))

    def set_spawn_rate(self, spawn_rate: float) -> None:
        """Change the spawn rate used for the users still to start."""
        self._steer(spawn_rate=_check_rate(spawn_rate))

    def _require_workers(self) -> None:
        """Refuse a command that needs workers when every worker process has ended."""
        if self._closed or self._processes is None or not self._processes.workers:
            return  # a closed swarm says so in _command
        dead = self._processes.dead_workers()
        if len(dead) == len(self._processes.workers):
            raise NotebookSwarmError(
                f"no live worker left ({describe_dead(dead)}): close this swarm and start a new one"
            )

    def wait(self, until: str | float = "spawned", timeout: float | None = None) -> None:
        """Block until ``"spawned"`` (all users running), ``"stopped"``, ``"done"`` (a shape
        or step load finished), or for a duration (seconds or "30s").

        Raises the shape's own exception if the shape failed, and ``NotebookSwarmError``
        naming the exit status if a worker process of this swarm died.
        """
        if not isinstance(until, str) or _DURATION_WORD.match(until):
            time.sleep(parse_duration(until))
            return
        if until == "done":
            if not self._follower.done.wait(timeout):
                raise TimeoutError(f"the shape was not done within {timeout:g} s")
            self._raise_if_failed()
            return
        wanted = {"spawned": ("running",), "stopped": ("stopped",)}.get(until)
        if wanted is None:
            raise ConfigError(
                f"wait({until!r}): wait for 'spawned', 'stopped', 'done' or a duration"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._data.state not in wanted:
                if self._closed:
                    raise NotebookSwarmError("the swarm was closed while waiting")
                self._lock.release()
                try:
                    self._raise_if_failed()
                finally:
                    self._lock.acquire()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"the swarm was not {until} within {timeout:g} s")
                self._state_changed.wait(0.5 if left is None else min(left, 0.5))

    def _raise_if_failed(self) -> None:
        error = self._follower.error
        if error is not None:
            raise error
        if self._processes is not None and not self._closed:
            dead = self._processes.dead_workers()
            if dead:
                raise NotebookSwarmError(f"a worker process died: {describe_dead(dead)}")

    def stop(self, timeout: float | None = None) -> None:
        """Stop every user gracefully and wait until the last statistics have arrived."""
        if not self._follower.on_thread():
            self._follower.halt()
        # Ask the master rather than trust the last update: right after start() its
        # "spawning" update may still be on the way. The reply comes after every update
        # sent before it (the master sends one at each change), so now our state is its.
        if self._command(protocol.StopSwarm()).state == "ready":
            return
        grace = self.config.stop_timeout + self.config.master.heartbeat_timeout + 5
        self._wait_stopped(timeout if timeout is not None else grace)
        self.stopped_at = time.time()
        if self._events is not None:
            self._events.fire_test_stop()  # once: the final update may have fired it

    def file_shape(self) -> Any:
        """The locustfile's ``LoadTestShape`` as a shape ``shape()`` follows, or None."""
        if self._events is None:
            return None
        if self._file_shape is None:
            self._file_shape = self._events.shape()
        return self._file_shape

    def _wait_stopped(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._data.state != "stopped":
                if self._closed:
                    raise NotebookSwarmError("the swarm was closed while stopping")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the swarm was not stopped within {timeout:g} s")
                self._state_changed.wait(min(left, 0.5))

    def step_load(
        self,
        start: int,
        step: int,
        every: float | str,
        until: int,
        spawn_rate: float | None = None,
    ) -> StepLoad:
        """Run ``start`` users, add ``step`` every ``every``, up to ``until``; return at once.

        The steps run on a background thread; ``wait("done")`` blocks until the last step
        is over, and the swarm then stops gracefully. ``spawn_rate`` defaults to one step's
        users per second, so each step is reached within about a second.
        """
        shape = StepLoad(start, step, parse_duration(every), until)
        rate = float(spawn_rate) if spawn_rate is not None else float(max(step, start))
        _check_rate(rate)
        began = time.time()
        self.shape(shape, spawn_rate=rate)
        self.steps = [(began + s.start, began + s.end, s.users) for s in shape.steps()]
        return shape

    def shape(
        self,
        shape: Any,
        *,
        kind: str = "users",
        spawn_rate: float = 1000.0,
        max_users: int | None = None,
        stop_at_end: bool = True,
    ) -> Shape:
        """Follow a load shape from now on; returns at once, replacing any shape running.

        ``shape``: stages ``[(duration, target), ...]`` (linear ramps), a ``StepLoad``, a
        function of elapsed seconds, or an object with ``tick()``; it is evaluated ten
        times a second. ``kind="users"`` steers the user count (started at
        ``spawn_rate``, fast by default so the count follows the plan); ``kind="rate"``
        steers the arrival rate of the open model (``max_users`` sizes its pool). When
        the shape is over the swarm stops (unless ``stop_at_end=False``) and
        ``wait("done")`` returns. If the shape raises, the swarm stops, ``state`` says
        ``failed`` and ``wait()`` raises the shape's exception.
        """
        plan = as_shape(shape)
        if kind not in ("users", "rate"):
            raise ConfigError(f"kind={kind!r}: a shape steers 'users' or 'rate'")
        _check_rate(spawn_rate)
        first = plan.value_at(0.0)
        if first is None:
            raise ConfigError("the shape is over before it began: give it some duration")
        if kind == "rate":
            if max_users is None:
                raise ConfigError("a rate shape needs max_users=, the pool's largest size")
            self.start(rate=first, max_users=max_users)
        else:
            self.start(max(1, round(first)), spawn_rate)
        with self._lock:
            self.steps = []
        self._follower.follow(plan, kind, stop_at_end)
        return plan

    def watch(
        self,
        source: Any,
        every: float = 1.0,
        name: str | None = None,
        timeout: float = 2.0,
        children: bool = False,
    ) -> str:
        """Sample the target's own metrics beside the load; return the source's name.

        ``source``: a Prometheus exposition URL (``http://host:9100/metrics``), a local pid
        (CPU, memory, threads, files, connections; ``children=True`` adds its
        descendants), or a callable returning ``{metric: value}``. Samples land on the
        seconds of ``history``; read them as ``swarm.server`` (and ``server_errors``: a
        source that is down, slow or answers garbage costs an error row, never an
        exception here). See docs/server-metrics.md.
        """
        with self._lock:
            if self._watcher is None:
                start = grid_start(time.time()) + self.config.master.update_delay
                self._watcher = Watcher(start=start)
            watcher = self._watcher
        return watcher.watch(source, name=name, every=every, timeout=timeout, children=children)

    def reset_stats(self) -> None:
        """Forget the statistics so far (here and in the master); the swarm keeps running."""
        self._command(protocol.ResetStats())
        with self._lock:
            self._data = self._data.fresh()  # a new folder too, when streaming

    def dashboard(self, window: float = 900.0) -> Any:
        """Return a live widget: sliders and buttons that steer, charts that follow the swarm.

        ``window``: seconds of history the charts keep (the DataFrames keep everything).
        """
        from notebookswarm.notebook.dashboard import Dashboard

        return Dashboard(self, window=window).widget

    def run(
        self,
        users: int,
        spawn_rate: float = 1.0,
        duration: float | str = "30s",
        thresholds: Sequence[str] | None = None,
    ) -> Run:
        """Run ``users`` for ``duration`` with a progress line, stop, and return the result.

        ``thresholds``: expressions such as ``"p95_ms<500"`` or ``"GET /api:p99_ms<800"``
        (docs/cli.md), checked before anything starts; afterwards the run's verdicts are
        ``run.verdicts`` and each breached one is printed.
        """
        from notebookswarm.notebook.thresholds import breached, evaluate, parse_thresholds

        judged = parse_thresholds(thresholds or ())  # a malformed one is refused first
        seconds = parse_duration(duration)
        self.start(users, spawn_rate)
        progress = Progress(seconds)
        begin = time.monotonic()
        try:
            while (elapsed := time.monotonic() - begin) < seconds:
                progress.show(elapsed, self._progress_line(elapsed, seconds))
                time.sleep(min(0.5, seconds - elapsed))
            progress.show(seconds, self._progress_line(seconds, seconds), final=True)
        finally:
            self.stop()
        run = self.result()
        if judged:
            run.verdicts = evaluate(judged, run)
            for line in breached(run.verdicts):
                print(f"threshold breached: {line}")
        return run

    def raise_if_failed(self) -> None:
        """Raise why the swarm cannot go on: the shape's exception, or a worker that died."""
        self._raise_if_failed()

    def _progress_line(self, elapsed: float, total: float) -> str:
        width = 30
        done = int(width * elapsed / total)
        with self._lock:
            d = self._data
            return (
                f"[{'#' * done}{'.' * (width - done)}] {elapsed:5.1f}/{total:g} s  "
                f"{d.users} users  {d.last_rps:7.1f} rps  "
                f"{d.last_failure_ratio:6.1%} failures"
            )

    def result(self) -> Run:
        """Return the run so far: every DataFrame, the configuration, start and end."""
        with self._lock:
            data = self._data.snapshot()
        meta = {
            "host": self.host,
            "started": self.started_at,
            "ended": self.stopped_at,
            "users": data.target_users,
            "spawn_rate": data.spawn_rate,
            "stop_timeout": self.config.stop_timeout,
            "steps": [list(s) for s in self.steps],
        }
        return Run(data, meta, self._server_tables())

    def server_rows(self, since: int = 0) -> list[ServerRow]:
        """Return the watched rows from the ``since``-th on (for live views; [] unwatched)."""
        watcher = self._watcher
        return watcher.rows(since) if watcher is not None else []

    def _server_tables(self) -> dict[str, pd.DataFrame]:
        watcher = self._watcher
        if watcher is None:
            return {}
        return {"server": watcher.frame(), "server_errors": watcher.errors()}

    def close(self) -> None:
        """Stop the swarm and end its processes (a no-op the second time)."""
        if self._closed:
            return
        self._closed = True
        self._follower.halt()
        self._finalizer()
        if self._watcher is not None:
            self._watcher.stop()
        if self._events is not None:
            self._events.fire_quitting()
        if self._data.store is not None and self._data.store_error is None:
            # A run that ended by a close, not a crash: its folder says it is complete.
            with contextlib.suppress(OSError, NotebookSwarmError):
                self.result().save()
        with self._lock:
            self._data.state = "closed"
            self._data.close()  # the stream's last minute rewritten as Parquet
            self._state_changed.notify_all()
            iterators = list(self._iterators)
        for sink in iterators:
            sink.put(None)

    def __enter__(self) -> Swarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``ready``, ``spawning``, ``running``, ``stopping``, ``stopped``, ``failed``
        (a shape raised: ``wait()`` raises its exception) or ``closed``."""
        with self._lock:
            state = self._data.state
        if self._follower.error is not None and state != "closed":
            return "failed"
        return state

    @property
    def environment(self) -> Any:
        """A locustfile's Locust ``Environment`` as its master-side listeners see it (None
        for classes given directly)."""
        return None if self._events is None else self._events.environment

    @property
    def targets(self) -> SwarmTargets:
        """The swarm's state and targets as last known (what the dashboard starts from)."""
        with self._lock:
            d = self._data
            return SwarmTargets(d.state, d.target_users, d.spawn_rate)

    @property
    def overloaded(self) -> list[str]:
        """Workers whose CPU (> 85%) or event-loop lag (> 10 ms) means their latencies
        include the generator's own delay; empty when the measurements can be trusted."""
        with self._lock:
            return list(self._data.overloaded)

    @property
    def user_count(self) -> int:
        """Users running now, as the master last reported."""
        with self._lock:
            return self._data.users

    def _table(self, name: str) -> pd.DataFrame:
        if name in ("server", "server_errors"):
            tables = self._server_tables()
            if not tables:
                return empty_server_table(name)  # typed and empty
            return tables[name]
        return super()._table(name)

    def _read(self, reader: Callable[[RunData], T]) -> T:
        with self._lock:
            return reader(self._data)

    def _summary(self) -> dict[str, Any]:
        with self._lock:
            d = self._data
            total = d.total.total()
            return {
                "state": d.state,
                "users": d.users,
                "rps": d.last_rps,
                "failure_ratio": total.failures / total.requests if total.requests else 0.0,
                "requests": total.requests,
                "workers": sum(1 for w in d.worker_rows if w.state != "lost"),
            }

    def __repr__(self) -> str:
        s = self._summary()
        return (
            f"<Swarm {s['state']}: {s['users']} users, {s['rps']:.1f} rps, "
            f"{s['failure_ratio']:.1%} failures, {s['requests']} requests, "
            f"{s['workers']} workers>"
        )

    def _repr_html_(self) -> str:
        s = self._summary()
        cells = [
            ("state", s["state"]),
            ("users", s["users"]),
            ("rps", f"{s['rps']:.1f}"),
            ("failures", f"{s['failure_ratio']:.1%}"),
            ("requests", s["requests"]),
            ("workers", s["workers"]),
        ]
        head = "".join(f"<th>{html.escape(k)}</th>" for k, _ in cells)
        body = "".join(f"<td>{html.escape(str(v))}</td>" for _, v in cells)
        return (
            f"<table><caption>notebookswarm Swarm</caption><tr>{head}</tr><tr>{body}</tr></table>"
        )


class SwarmTargets(NamedTuple):
    """A swarm's state with its user target and spawn rate."""

    state: str
    users: int
    spawn_rate: float


def _check_users(users: object) -> int:
    return check_count("users", users, 1, ": use stop() to run none")


def _check_rate(rate: object) -> float:
    return check_rate("spawn_rate", rate, "users per second")


def _check_arrivals(kind: str) -> Literal["constant", "poisson"]:
    if kind == "constant":
        return "constant"
    if kind == "poisson":
        return "poisson"
    raise ConfigError(f"arrivals must be 'constant' or 'poisson', got {kind!r}")
