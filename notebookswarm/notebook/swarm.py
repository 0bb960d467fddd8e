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
"""

from __future__ import annotations

import contextlib
import html
import os
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from notebookswarm._checks import check_count, check_rate
from notebookswarm.cluster import protocol
from notebookswarm.cluster.control import ControlClient
from notebookswarm.cluster.launch import MasterProcess, reap, start_master, start_worker
from notebookswarm.cluster.master_state import MasterConfig
from notebookswarm.errors import ConfigError, NotebookSwarmError
from notebookswarm.notebook.run import Run
from notebookswarm.notebook.rundata import RunData
from notebookswarm.notebook.shapes import Shape, StepLoad, as_shape, parse_duration
from notebookswarm.users.code import load_args_for_classes, load_args_for_file
from notebookswarm.users.core import check_host

FrameCallback = Callable[[dict[str, Any]], None]
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


class Swarm:
    """A swarm of users you start and steer from a notebook; its data as DataFrames."""

    def __init__(
        self,
        *users: Any,
        host: str | None = None,
        workers: int | str = "auto",
        config: SwarmConfig | None = None,
        _attach: tuple[str, dict[int, Any]] | None = None,
    ) -> None:
        self.config = config or SwarmConfig()
        self.host = check_host(host) if host is not None else None
        self._lock = threading.Lock()
        self._data = RunData()
        self._callbacks: list[FrameCallback] = []
        self._iterators: list[queue.SimpleQueue[dict[str, Any] | None]] = []
        self._state_changed = threading.Condition(self._lock)
        self._closed = False
        self._master: MasterProcess | None = None
        self._workers: list[Any] = []
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.steps: list[tuple[float, float, int]] = []  # (start, end, users) of a step load
        self._shape_thread: threading.Thread | None = None
        self._active_shape: tuple[Shape, str, float, bool] | None = None
        self._shape_done = threading.Event()
        self._shape_stop = threading.Event()
        if _attach is not None:
            endpoint, curve = _attach
            self._client = ControlClient(endpoint, curve=curve)
            self._client.on_update(self._on_update)
            try:
                self._client.request("ping")
            except BaseException:
                self._client.close()
                raise
            self._owned = False
            self._finalizer = weakref.finalize(self, _shutdown, self._client, None, [])
            return
        count = _worker_count(workers)
        load_args = self._load_args(users)  # bad user code fails here, before any process
        self._owned = True
        self._master = start_master(self.config.master)
        self._client = ControlClient(self._master.control_endpoint)
        # Runs on close(), on garbage collection and at interpreter exit (kernel shutdown).
        self._finalizer = weakref.finalize(
            self, _shutdown, self._client, self._master, self._workers
        )
        try:
            self._client.on_update(self._on_update)
            self._client.request("load", **load_args)
            for _ in range(count):
                self._workers.append(start_worker(self._master.worker_endpoint))
            self._await_workers(count)
        except BaseException:
            self.close()
            raise

    # --- construction ------------------------------------------------------------------

    def _load_args(self, users: Sequence[Any]) -> dict[str, Any]:
        options: dict[str, Any] = {
            "stop_timeout": self.config.stop_timeout,
            "tags": list(self.config.tags) if self.config.tags is not None else None,
            "exclude_tags": list(self.config.exclude_tags),
        }
        if self.config.raw_samples_file:
            options["raw_samples_file"] = self.config.raw_samples_file
        if len(users) == 1 and isinstance(users[0], str | Path):
            return load_args_for_file(users[0], None, self.host, options)
        if not users:
            raise ConfigError("no user classes given: Swarm(MyUser, host=...) or Swarm('users.py')")
        return load_args_for_classes(users, self.host, options)

    def _await_workers(self, count: int) -> None:
        deadline = time.monotonic() + self.config.join_timeout
        while True:
            with self._lock:
                rows = self._data.workers_rows
                failed = [r for r in rows if r.get("error")]
                ready = sum(1 for r in rows if r.get("state") != "lost")
            if failed:
                raise NotebookSwarmError(
                    f"a worker could not load the user code:\n{failed[0]['error']}"
                )
            if ready >= count:
                return
            dead = [w for w in self._workers if w.poll() is not None]
            if dead:
                raise NotebookSwarmError(
                    f"a worker process exited with status {dead[0].returncode} before joining"
                )
            if time.monotonic() > deadline:
                raise NotebookSwarmError(
                    f"{ready} of {count} workers joined within {self.config.join_timeout:g} s"
                )
            time.sleep(0.05)

    @classmethod
    def connect(cls, endpoint: str, keys: str | Path | None = None) -> Swarm:
        """Attach to a running master's control endpoint (workers join it on their own)."""
        curve: dict[int, Any] = {}
        if keys is not None:
            from notebookswarm.cluster.keys import worker_curve_options

            curve = dict(worker_curve_options(keys))
        return cls(_attach=(endpoint, curve))

    # --- frames ------------------------------------------------------------------------

    def _on_update(self, update: protocol.Update) -> None:
        payload = update.payload
        with self._lock:
            self._data.ingest(payload)
            callbacks = list(self._callbacks)
            iterators = list(self._iterators)
            self._state_changed.notify_all()
        for callback in callbacks:
            callback(payload)
        for sink in iterators:
            sink.put(payload)

    def on_frame(self, callback: FrameCallback) -> None:
        """Call ``callback(frame)`` with every update frame, on the background thread."""
        with self._lock:
            self._callbacks.append(callback)

    def frames(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield update frames as they arrive; stop after ``timeout`` s without one, or close."""
        sink: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
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

    def _command(self, command: str, **args: Any) -> dict[str, Any]:
        if self._closed:
            raise NotebookSwarmError(
                f"this swarm is closed: {command} needs a new one, nbs.Swarm(...)"
            )
        result = self._client.request(command, **args)
        state = result.get("state")
        if command in ("start", "set") and isinstance(state, str):
            # The reply overtakes the update that would say so: take the state from it,
            # so wait("spawned") right after waits for this change, not the last one.
            with self._lock:
                self._data.state = state
        return result

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
            self._command(
                "start", rate=rate, max_users=max_users, arrivals=arrivals, max_backlog=max_backlog
            )
        else:
            if users is None:
                raise ConfigError("start(users=N, spawn_rate=R) or start(rate=R, max_users=N)")
            _check_users(users)
            _check_rate(spawn_rate)
            self._command("start", users=users, spawn_rate=spawn_rate)
        if self.started_at is None:
            self.started_at = time.time()
        self.stopped_at = None

    def set_users(self, users: int) -> None:
        """Move to ``users`` users (at the current spawn rate); returns at once."""
        _check_users(users)
        self._command("set", users=users)

    def set_rate(self, rate: float) -> None:
        """Change the arrival rate (open model) at once, across every worker."""
        check_rate("rate", rate, "task runs per second", allow_zero=True)
        self._command("set", rate=rate)

    def set_spawn_rate(self, spawn_rate: float) -> None:
        """Change the spawn rate used for the users still to start."""
        _check_rate(spawn_rate)
        self._command("set", spawn_rate=spawn_rate)

    def wait(self, until: str | float = "spawned", timeout: float | None = None) -> None:
        """Block until ``"spawned"`` (all users running), ``"stopped"``, ``"done"`` (a step
        load finished), or for a duration (seconds or "30s")."""
        if not isinstance(until, str) or _DURATION_WORD.match(until):
            time.sleep(parse_duration(until))
            return
        if until == "done":
            if not self._shape_done.wait(timeout):
                raise TimeoutError(f"the step load was not done within {timeout:g} s")
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
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"the swarm was not {until} within {timeout:g} s")
                self._state_changed.wait(0.5 if left is None else min(left, 0.5))

    def stop(self, timeout: float | None = None) -> None:
        """Stop every user gracefully and wait until the last statistics have arrived."""
        if threading.current_thread() is not self._shape_thread:
            self._shape_stop.set()
        # Ask the master rather than trust the last update: right after start() its
        # "spawning" update may still be on the way. The reply comes after every update
        # sent before it (the master sends one at each change), so now our state is its.
        # A "stopped" reply may be news whose update (with the last stats) is on its way.
        if self._command("stop").get("state") == "ready":
            return
        grace = self.config.stop_timeout + self.config.master.heartbeat_timeout + 5
        self.wait("stopped", timeout if timeout is not None else grace)
        self.stopped_at = time.time()

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
        ``wait("done")`` returns.
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
        self._shape_done.clear()
        with self._lock:
            self._active_shape = (plan, kind, time.monotonic(), stop_at_end)
            running = self._shape_thread is not None and self._shape_thread.is_alive()
            self.steps = []
        if not running:
            self._shape_stop.clear()
            self._shape_thread = threading.Thread(
                target=self._follow_shape, daemon=True, name="notebookswarm-shape"
            )
            self._shape_thread.start()
        return plan

    def _follow_shape(self) -> None:
        sent: tuple[Any, float] | None = None
        try:
            while not self._shape_stop.is_set():
                with self._lock:
                    active = self._active_shape
                if active is None:
                    break
                plan, kind, began, stop_at_end = active
                value = plan.value_at(time.monotonic() - began)
                if value is None:
                    with self._lock:
                        if self._active_shape is active:
                            self._active_shape = None
                    if stop_at_end:
                        self.stop()
                    break
                if kind == "users":
                    value = float(round(value))
                if sent is None or sent[0] is not active or sent[1] != value:
                    if kind == "users":  # a plan may pass through 0 users: no user check
                        self._command("set", users=int(value))
                    else:
                        self._command("set", rate=value)
                    sent = (active, value)
                self._shape_stop.wait(0.1)
        except NotebookSwarmError:
            pass  # closed under us: nothing left to steer
        finally:
            self._shape_done.set()
            with self._lock:
                self._state_changed.notify_all()

    def reset_stats(self) -> None:
        """Forget the statistics so far (here and in the master); the swarm keeps running."""
        self._command("reset")
        with self._lock:
            self._data = RunData(self._data.fine_seconds)

    def dashboard(self, window: float = 900.0) -> Any:
        """Return a live widget: sliders and buttons that steer, charts that follow the swarm.

        ``window``: seconds of history the charts keep (the DataFrames keep everything).
        """
        from notebookswarm.notebook.dashboard import Dashboard

        return Dashboard(self, window=window).widget

    def run(self, users: int, spawn_rate: float = 1.0, duration: float | str = "30s") -> Run:
        """Run ``users`` for ``duration`` with a progress line, stop, and return the result."""
        seconds = parse_duration(duration)
        self.start(users, spawn_rate)
        begin = time.monotonic()
        try:
            while (elapsed := time.monotonic() - begin) < seconds:
                self._progress(elapsed, seconds)
                time.sleep(min(0.5, seconds - elapsed))
            self._progress(seconds, seconds)
            print()
        finally:
            self.stop()
        return self.result()

    def _progress(self, elapsed: float, total: float) -> None:
        width = 30
        done = int(width * elapsed / total)
        with self._lock:
            d = self._data
            line = (
                f"[{'#' * done}{'.' * (width - done)}] {elapsed:5.1f}/{total:g} s  "
                f"{d.users} users  {d.last_rps:7.1f} rps  "
                f"{d.last_failure_ratio:6.1%} failures"
            )
        print("\r" + line, end="", flush=True)

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
        return Run(data, meta)

    def close(self) -> None:
        """Stop the swarm and end its processes (a no-op the second time)."""
        if self._closed:
            return
        self._closed = True
        self._shape_stop.set()
        self._finalizer()
        with self._lock:
            self._data.state = "closed"
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
        """``ready``, ``spawning``, ``running``, ``stopping``, ``stopped`` or ``closed``."""
        with self._lock:
            return self._data.state

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

    def _read(self, reader: Callable[[RunData], pd.DataFrame]) -> pd.DataFrame:
        with self._lock:
            return reader(self._data)

    @property
    def stats(self) -> pd.DataFrame:
        """Cumulative per-endpoint stats plus ``Aggregated``; see docs/statistics.md (DataFrames)."""
        return self._read(RunData.stats)

    @property
    def history(self) -> pd.DataFrame:
        """One row per second per endpoint, plus ``Aggregated``; see docs/statistics.md (DataFrames)."""
        return self._read(RunData.history)

    @property
    def errors(self) -> pd.DataFrame:
        """Failures by ``(method, name, error)`` with counts."""
        return self._read(RunData.errors)

    @property
    def exceptions(self) -> pd.DataFrame:
        """Exceptions raised by user code, with traceback and count."""
        return self._read(RunData.exceptions)

    @property
    def workers(self) -> pd.DataFrame:
        """One row per worker: id, host, state, users, CPU %, loop lag, rps, last seen."""
        return self._read(RunData.workers)

    def percentiles(
        self,
        q: Sequence[float] = (0.5, 0.95, 0.99),
        start: Any = None,
        end: Any = None,
        by: str | Sequence[str] | None = "name",
        corrected: bool = False,
    ) -> pd.DataFrame:
        """Exact percentiles (ms) over a window; see :meth:`RunData.percentiles`."""
        with self._lock:
            return self._data.percentiles(q, start, end, by, corrected)

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
                "workers": sum(1 for w in d.workers_rows if w.get("state") != "lost"),
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


def _shutdown(client: ControlClient, master: MasterProcess | None, workers: list[Any]) -> None:
    """Quit the master (which quits its workers), then reap every process we started."""
    if master is not None:
        with contextlib.suppress(NotebookSwarmError):  # it may be gone already
            client.request("quit", timeout=3)
    client.close()
    deadline = time.monotonic() + 5
    for proc in workers:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except Exception:
            reap(proc, timeout=1)
    if master is not None:
        master.stop()


def _worker_count(workers: int | str) -> int:
    if workers == "auto":
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be 'auto' or an integer >= 1, got {workers!r}")
    return workers


def _check_users(users: object) -> None:
    check_count("users", users, 1, ": use stop() to run none")


def _check_rate(rate: object) -> None:
    check_rate("spawn_rate", rate, "users per second")
