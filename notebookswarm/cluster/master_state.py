"""The master's decisions, without I/O: what to send when a frame arrives or time passes.

:class:`MasterState` is fed decoded messages from workers and controllers together with
``now`` and returns the messages to send; :meth:`MasterState.tick` does the same for the
passing of time (lost workers, a silent controller, the once-a-second update). The master
process owns the sockets and the clock; everything here is tested without either. It is
one state machine, so it stays one class in one module (dispatch, configuration and the
wire are its own modules).

Swarm states: ``ready`` (nothing asked yet), ``spawning``, ``running``, ``stopping``,
``stopped``. Worker states: ``ready``, ``spawning``, ``running``, ``stopped``, ``lost``.

To add a control command: 1. declare its message in :mod:`~notebookswarm.cluster.protocol`
and add it to ``ControlCommand``; 2. add its ``case`` to :meth:`MasterState._run` (mypy
says so until you do); 3. list it in ``docs/distributed.md`` (Protocol); 4. test it here.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, assert_never

from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.dispatch import (
    UserClassSpec,
    WorkerCapacity,
    dispatch,
    share_by_cores,
    split_rate,
    split_users,
)
from notebookswarm.errors import ConfigError
from notebookswarm.stats.names import NameLimit
from notebookswarm.stats.requests import RequestStats

#: Above this CPU % or event-loop lag (s), a worker's latencies include its own delay.
OVERLOADED_CPU = 85.0
OVERLOADED_LAG = 0.010

_USERS_PER_S = "users per second"
_RUNS_PER_S = "task runs per second"
_MAX_RATE = 1e7

Channel = Literal["worker", "control"]
Out = tuple[Channel, bytes, protocol.Message]
"""A message to send: on which socket, to which peer identity, what."""


@dataclass
class WorkerInfo:
    """What the master knows of one worker."""

    worker_id: str
    identity: bytes
    host: str
    pid: int
    cores: int
    millicpus: int  # the CPU it may use, in thousandths: its weight in dispatch
    joined: float
    last_seen: float
    state: str = "ready"
    users: dict[str, int] = field(default_factory=dict)
    cpu_percent: float = 0.0
    loop_lag: float = 0.0
    rps: float = 0.0
    last_report_end: float | None = None
    recent_cpu: deque[float] = field(default_factory=lambda: deque(maxlen=3))
    error: str | None = None

    def saturated(self, config: MasterConfig) -> bool:
        """Say whether the CPU stayed above the threshold for the last few heartbeats."""
        return len(self.recent_cpu) >= config.saturated_beats and all(
            cpu > config.saturated_cpu for cpu in self.recent_cpu
        )

    def row(self) -> protocol.WorkerRow:
        """Describe the worker for an update frame or a status."""
        return protocol.WorkerRow(
            id=self.worker_id,
            host=self.host,
            pid=self.pid,
            cores=self.cores,
            cpus=self.millicpus / 1000,
            state=self.state,
            users=sum(self.users.values()),
            cpu_percent=self.cpu_percent,
            loop_lag=self.loop_lag,
            rps=self.rps,
            last_seen=self.last_seen,
            error=self.error,
            overloaded=self.overloaded(),
        )

    def overloaded(self) -> bool:
        """Say whether this worker's own delay may be in its latencies (CPU or loop lag)."""
        return self.state != "lost" and (
            self.cpu_percent > OVERLOADED_CPU or self.loop_lag > OVERLOADED_LAG
        )


@dataclass(frozen=True)
class Arrivals:
    """The open model's settings: task runs a second over a pool of at most max_users.

    ``max_backlog`` None means two seconds' worth of arrivals at the current rate.
    """

    rate: float
    max_users: int
    poisson: bool = False
    max_backlog: int | None = None

    def backlog(self) -> int:
        """Return how many arrivals may wait for a free user before drops."""
        if self.max_backlog is not None:
            return self.max_backlog
        return max(1, math.ceil(2 * self.rate))


@dataclass
class Code:
    """User code as a controller loaded it: opaque bytes plus plain-data class metadata."""

    message: protocol.Code
    specs: list[UserClassSpec]


class MasterState:
    """Everything the master decides; feed it messages and time, send what it returns."""

    def __init__(self, config: MasterConfig, now: float) -> None:
        self.config = config
        self.state: protocol.SwarmState = "ready"
        self.workers: dict[str, WorkerInfo] = {}
        self.controllers: dict[bytes, float] = {}
        self.code: Code | None = None
        self.target_users = 0
        self.spawn_rate = 1.0
        self.class_targets: dict[str, int] = {}
        self.arrivals: Arrivals | None = None  # set: the open model (arrival rate)
        self.assignment: dict[str, dict[str, int]] = {}
        self.generation = 0
        #: Request names the swarm keeps (the workers' own limits are per worker): later
        #: new ones are folded into one "<other names>" row per method.
        self.names = NameLimit(config.max_names)
        self._folded = RequestStats()  # everything up to the last update
        self.pending = RequestStats(names=self.names)
        self.pending_lost: list[protocol.LostInterval] = []
        self.pending_failures: list[protocol.WorkerFailure] = []
        self.pending_reports: list[protocol.ReportId] = []
        self.pending_custom: list[protocol.CustomReport] = []
        self.pending_warnings: list[str] = []
        self.warned: set[str] = set()
        self.pending_seconds: dict[str, float] = {}  # per worker: seconds its reports cover
        self.dropped = 0
        self.started = now
        self.last_update = now
        self.next_update = self._next_update_after(now)
        self.last_controller = now
        self.update_seq = 0
        self.exit_requested = False
        #: The last updates sent, for a controller whose link dropped (``Replay``).
        self.sent: deque[protocol.Update] = deque(maxlen=config.replay_updates)
        self.abandoned = False  # standalone: the controllers left, and the swarm was stopped
        #: The last stop, sent again to a worker that missed it; numbered (``stop_id``).
        self.last_stop = protocol.Stop(timeout=None)

    # --- workers ---------------------------------------------------------------------

    def on_worker(self, identity: bytes, message: protocol.Message, now: float) -> list[Out]:
        """Handle one message from a worker socket (anything else is dropped and counted)."""
        match message:
            case protocol.Hello():
                return self._worker_hello(identity, message, now)
            case protocol.Heartbeat():
                return self._worker_heartbeat(identity, message, now)
            case protocol.Report():
                return self._worker_report(identity, message, now)
            case protocol.Stopped():
                return self._worker_stopped(identity, message, now)
            case protocol.Stuck():
                return self._worker_stuck(identity, message, now)
            case protocol.Goodbye():
                return self._worker_goodbye(identity, message, now)
            case protocol.Failed():
                return self._worker_failed(identity, message, now)
            case _:
                self.dropped += 1
                return []

    def _worker_hello(self, identity: bytes, msg: protocol.Hello, now: float) -> list[Out]:
        self.workers[msg.worker_id] = WorkerInfo(
            worker_id=msg.worker_id,
            identity=identity,
            host=msg.host,
            pid=msg.pid,
            cores=msg.cores,
            millicpus=msg.millicpus,
            joined=now,
            last_seen=now,
            recent_cpu=deque(maxlen=self.config.saturated_beats),
        )
        c = self.config
        out: list[Out] = [
            (
                "worker",
                identity,
                protocol.Welcome(
                    worker_id=msg.worker_id,
                    heartbeat_interval=c.heartbeat_interval,
                    master_timeout=c.master_timeout,
                    report_interval=c.report_interval,
                ),
            )
        ]
        if self.code is not None:
            out.append(("worker", identity, self.code.message))
        return out + self._redispatch()

    def _known(self, worker_id: str, now: float) -> tuple[WorkerInfo | None, list[Out]]:
        """Return the worker (marking it seen), and what to send it if it was lost.

        A worker back from a partition while the swarm stops or has stopped missed the
        Stop and still runs its users: it is told to stop now (and a stop in progress
        waits for its last report); otherwise it gets its share again.
        """
        worker = self.workers.get(worker_id)
        if worker is None:
            return None, []
        worker.last_seen = now
        if worker.state == "lost":
            worker.state = "ready"
            if self.state in ("stopping", "stopped"):
                return worker, _to_both(worker, self.last_stop)
            return worker, self._redispatch()
        return worker, []

    def _worker_heartbeat(self, identity: bytes, msg: protocol.Heartbeat, now: float) -> list[Out]:
        worker, out = self._known(msg.worker_id, now)
        if worker is None:
            self.dropped += 1
            return []
        # Heartbeats travel on their own connection and can overtake the reports (after a
        # partition, TCP connections resume seconds apart): only Stopped, sent after the
        # worker's last report on the same socket, says it has stopped, and a beat sent
        # before that does not undo it. A new dispatch moves a stopped worker on.
        if worker.state != "stopped" and msg.state != "stopped":
            worker.state = msg.state
            worker.users = dict(msg.users)
        worker.cpu_percent = msg.cpu_percent
        worker.loop_lag = msg.loop_lag
        was_saturated = worker.saturated(self.config)
        worker.recent_cpu.append(msg.cpu_percent)
        if worker.saturated(self.config) != was_saturated:
            out += self._redispatch()
        out.append(("worker", identity, protocol.Ping(now=now)))
        self._settle()
        return out

    def _worker_report(self, identity: bytes, msg: protocol.Report, now: float) -> list[Out]:
        worker, out = self._known(msg.worker_id, now)
        if worker is None:
            self.dropped += 1
            return []
        try:
            delta = RequestStats.from_wire(msg.stats)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            self.dropped += 1
            return out
        # Merged once here and folded into the total once per update: histogram merging is
        # most of the master's work, so it must not happen twice per report.
        self.pending.merge(delta)
        self.pending_reports.append(protocol.ReportId(worker=msg.worker_id, seq=msg.seq))
        span = msg.end - msg.start
        self.pending_seconds[msg.worker_id] = self.pending_seconds.get(msg.worker_id, 0.0) + span
        requests = sum(stats.requests for stats in delta.endpoints.values())
        worker.rps = requests / span if span > 0 else 0.0
        worker.last_report_end = msg.end
        if msg.custom is not None:  # report_to_master data: forwarded once, with this delta
            self.pending_custom.append(protocol.CustomReport(worker=msg.worker_id, data=msg.custom))
        if msg.names is not None or len(self.names.seen) >= self.config.warn_names:
            self._watch_names(msg.names)
        return out

    def _watch_names(self, names: protocol.NameReport | None) -> None:
        """Warn once when request names run into the thousands, and once when some fold."""
        many = "many" not in self.warned and len(self.names.seen) >= self.config.warn_names
        folded = "folded" not in self.warned and bool(
            (names and names.folded) or self.names.folded_total
        )
        if not (many or folded):  # the common case, every report: nothing to compute
            return
        pattern = (names.pattern if names else None) or self.names.top_pattern()
        hint = (
            f"; most share the pattern {pattern!r}: group them with name={pattern!r} in the request"
            if pattern
            else "; group them with name=... in the request"
        )
        if many:
            self.warned.add("many")
            self.pending_warnings.append(
                f"{len(self.names.seen)} distinct request names so far{hint} (each name costs "
                "memory in every process and a row in every table)"
            )
        if folded:
            self.warned.add("folded")
            self.pending_warnings.append(
                f"past {self.config.max_names} request names, new ones are counted under "
                f"'<other names>' per method, so memory stays bounded{hint}"
            )

    def _worker_stuck(self, identity: bytes, msg: protocol.Stuck, now: float) -> list[Out]:
        """A worker whose users would not stop is leaving: say which task would not yield."""
        worker, out = self._known(msg.worker_id, now)
        stuck = ", ".join(f"{t.users} {t.user_class} in {t.task}" for t in msg.tasks)
        text = (
            f"worker {msg.worker_id} was stopped by force after {msg.waited:.1f} s: its users "
            f"would not stop ({stuck}); a task that never yields (a CPU loop, a blocking call "
            "that gevent cannot patch) cannot be stopped gracefully — its in-flight requests "
            "are counted as failures 'stopped: still running at stop_timeout'"
        )
        self.pending_warnings.append(text)
        if worker is not None:
            worker.state = "stopped"
            worker.users = {}
            worker.error = text
        self._settle()
        return out

    def _worker_stopped(self, identity: bytes, msg: protocol.Stopped, now: float) -> list[Out]:
        worker, out = self._known(msg.worker_id, now)
        if worker is not None:
            worker.state = "stopped"
            worker.users = {}
        self._settle()
        return out

    def _worker_goodbye(self, identity: bytes, msg: protocol.Goodbye, now: float) -> list[Out]:
        if self.workers.pop(msg.worker_id, None) is None:
            return []
        self._settle()
        return self._redispatch()

    def _worker_failed(self, identity: bytes, msg: protocol.Failed, now: float) -> list[Out]:
        worker, out = self._known(msg.worker_id, now)
        if worker is not None:
            worker.error = msg.reason
        self.pending_failures.append(
            protocol.WorkerFailure(worker=msg.worker_id, reason=msg.reason)
        )
        out += self._redispatch()  # a worker that cannot run users leaves them to the others
        self._settle()
        return out

    def _alive(self) -> list[WorkerInfo]:
        return [w for w in self.workers.values() if w.state != "lost" and w.error is None]

    def _redispatch(self) -> list[Out]:
        """Send every live worker its absolute targets and its part of the spawn rate."""
        alive = self._alive()
        if self.state not in ("spawning", "running") or not alive:
            return []
        capacities = [
            WorkerCapacity(w.worker_id, w.millicpus, w.saturated(self.config)) for w in alive
        ]
        if self.arrivals is not None:
            return self._pace(alive, capacities, self.arrivals)
        # A saturated worker keeps at most what it runs now, not its last target.
        current = {
            w.worker_id: w.users
            if w.saturated(self.config)
            else self.assignment.get(w.worker_id, {})
            for w in alive
        }
        self.assignment = dispatch(self.class_targets, capacities, current)
        running = {w.worker_id: w.users for w in alive}
        rates = split_rate(self.spawn_rate, self.assignment, running)
        return self._to_each(
            alive,
            lambda w, generation: protocol.Spawn(
                targets=self.assignment[w.worker_id],
                spawn_rate=rates[w.worker_id],
                generation=generation,
            ),
        )

    def _pace(
        self, alive: list[WorkerInfo], capacities: list[WorkerCapacity], arrivals: Arrivals
    ) -> list[Out]:
        """Split the arrival rate, the pool and the backlog over the workers by cores."""
        cores = sum(w.millicpus for w in alive)
        pools = share_by_cores(arrivals.max_users, capacities)
        backlogs = share_by_cores(arrivals.backlog(), capacities)
        return self._to_each(
            alive,
            lambda w, generation: protocol.Pace(
                rate=arrivals.rate * w.millicpus / cores,
                max_users=pools[w.worker_id],
                poisson=arrivals.poisson,
                max_backlog=backlogs[w.worker_id],
                generation=generation,
            ),
        )

    def _to_each(
        self,
        alive: list[WorkerInfo],
        message_for: Callable[[WorkerInfo, int], protocol.Message],
    ) -> list[Out]:
        """Send each live worker its message of a new dispatch generation."""
        self.generation += 1
        out: list[Out] = []
        for w in alive:
            w.state = "spawning"  # until it says otherwise, a worker told to move is not settled
            out.append(("worker", w.identity, message_for(w, self.generation)))
        return out

    def _settle(self) -> None:
        """Move the swarm's state on from what the workers report."""
        alive = self._alive()
        if self.state == "stopping" and all(w.state == "stopped" for w in alive):
            self.state = "stopped"
        elif self.state in ("spawning", "running"):
            users = sum(sum(w.users.values()) for w in alive)
            sized = self.arrivals is not None or users == self.target_users
            done = sized and all(w.state == "running" for w in alive)
            self.state = "running" if done else "spawning"

    @property
    def total(self) -> RequestStats:
        """Everything reported so far: what earlier updates carried, plus what is pending."""
        out = RequestStats()
        out.merge(self._folded)
        out.merge(self.pending)
        return out

    def user_count(self) -> int:
        """Return how many users the live workers said they run."""
        return sum(sum(w.users.values()) for w in self._alive())

    # --- controllers -----------------------------------------------------------------

    def on_control(self, identity: bytes, message: protocol.Message, now: float) -> list[Out]:
        """Handle one message from a controller socket: run the command, reply, send."""
        self.controllers[identity] = now
        self.last_controller = now
        if not isinstance(message, protocol.CONTROL_COMMANDS):
            self.dropped += 1
            return []
        command: protocol.ControlCommand = message
        if isinstance(command, protocol.Replay):  # the missed updates follow the reply
            missed = [u for u in self.sent if u.seq > command.after]
            return [self._reply(identity, command), *(("control", identity, u) for u in missed)]
        try:
            out = self._run(command, now)
        except ConfigError as exc:
            return [self._reply(identity, command, refusal=str(exc))]
        return [self._reply(identity, command), *out]

    def _run(self, command: protocol.ControlCommand, now: float) -> list[Out]:
        """Carry out one command; raise ConfigError to refuse it with a reason."""
        match command:
            case protocol.Hail() | protocol.GetStatus() | protocol.Replay():
                return []
            case protocol.LoadCode():
                return self._load(command)
            case protocol.StartSwarm():
                return self._start(command.targets)
            case protocol.SetTargets():
                return self._set(command.targets)
            case protocol.StopSwarm():
                return self._stop(command.timeout)
            case protocol.ResetStats():
                self._folded = RequestStats()
                self.names = NameLimit(self.config.max_names)
                self.pending = RequestStats(names=self.names)
                return []
            case protocol.QuitMaster():
                self.exit_requested = True
                return self.quit_all()
            case _:
                assert_never(command)

    def status(self, with_stats: bool = False) -> protocol.Status:
        """Describe the swarm as every reply does (with cumulative stats when asked)."""
        return protocol.Status(
            state=self.state,
            users=self.user_count(),
            target_users=self.target_users,
            spawn_rate=self.spawn_rate,
            rate=self.arrivals.rate if self.arrivals else None,
            classes=[s.name for s in self.code.specs] if self.code else [],
            workers=[w.row() for w in self.workers.values()],
            dropped=self.dropped,
            started=self.started,
            config=dataclasses.asdict(self.config),
            stats=self.total.to_wire() if with_stats else None,
        )

    def _reply(
        self, identity: bytes, command: protocol.ControlCommand, refusal: str | None = None
    ) -> Out:
        status = self.status(with_stats=isinstance(command, protocol.GetStatus))
        reply = protocol.ControlReply(request_id=command.request_id, refusal=refusal, status=status)
        return ("control", identity, reply)

    def _load(self, command: protocol.LoadCode) -> list[Out]:
        specs = [UserClassSpec(c.name, c.weight, c.fixed_count) for c in command.classes]
        if not specs:
            raise ConfigError("no user classes in the code: define at least one User subclass")
        if self.state in ("spawning", "running", "stopping"):
            raise ConfigError("the swarm is running: stop it before loading new user code")
        message = protocol.Code(
            payload=command.payload,
            fmt=command.fmt,
            classes=[s.name for s in specs],
            host=command.host,
            options=dict(command.options),
        )
        self.code = Code(message, specs)
        return [("worker", w.identity, message) for w in self.workers.values() if w.state != "lost"]

    def _start(self, targets: protocol.Targets) -> list[Out]:
        if self.code is None:
            raise ConfigError("no user code loaded: load user classes before starting")
        closed = targets.users is not None or targets.spawn_rate is not None
        if targets.rate is not None or (self.arrivals is not None and not closed):
            return self._start_arrivals(targets)
        self.arrivals = None
        users = self.target_users if targets.users is None else targets.users
        self.class_targets = split_users(users, self.code.specs)
        self.target_users = users
        if targets.spawn_rate is not None:
            self.spawn_rate = targets.spawn_rate
        self.state = "spawning"
        out = self._redispatch()
        self._settle()
        return out

    def _set(self, targets: protocol.Targets) -> list[Out]:
        """Change users, spawn rate or arrival rate; a swarm that is not running stays so."""
        if self.state in ("spawning", "running"):
            return self._start(targets)
        if targets == protocol.Targets():
            raise ConfigError("set needs users=, spawn_rate= or rate=")
        before, generation = self.state, self.generation
        self._start(targets)  # records the values; nothing is sent
        self.state, self.generation, self.assignment = before, generation, {}
        return []

    def _start_arrivals(self, targets: protocol.Targets) -> list[Out]:
        old = self.arrivals or Arrivals(rate=0.0, max_users=0)
        rate = old.rate if targets.rate is None else targets.rate
        if rate > _MAX_RATE:
            raise ConfigError(f"rate {rate:g} is beyond any swarm: pass at most {_MAX_RATE:g}")
        max_users = old.max_users if targets.max_users is None else targets.max_users
        if max_users < 1:
            raise ConfigError("the open model needs max_users= (at least 1)")
        kind = targets.arrivals or ("poisson" if old.poisson else "constant")
        backlog = old.max_backlog if targets.max_backlog is None else targets.max_backlog
        self.arrivals = Arrivals(rate, max_users, kind == "poisson", backlog)
        self.target_users = 0
        self.state = "spawning"
        out = self._redispatch()
        self._settle()
        return out

    def _stop(self, timeout: float | None) -> list[Out]:
        if self.state in ("ready", "stopped"):
            return []
        stop = protocol.Stop(timeout=timeout, stop_id=(self.last_stop.stop_id or 0) + 1)
        self.last_stop = stop
        self.state = "stopping"
        self.assignment = {}
        out: list[Out] = [o for w in self._alive() for o in _to_both(w, stop)]
        self._settle()
        return out

    def quit_all(self) -> list[Out]:
        """Tell every worker to stop and exit."""
        return [o for w in self.workers.values() for o in _to_both(w, protocol.Quit())]

    # --- time ------------------------------------------------------------------------

    def tick(self, now: float) -> list[Out]:
        """Decide what the passing of time calls for: lost workers, exit, the update."""
        out: list[Out] = []
        for worker in self.workers.values():
            silent = now - worker.last_seen
            if worker.state != "lost" and silent > self.config.heartbeat_timeout:
                worker.state = "lost"
                since = worker.joined if worker.last_report_end is None else worker.last_report_end
                self.pending_lost.append(
                    protocol.LostInterval(
                        worker=worker.worker_id,
                        since=since,
                        until=now,
                        users=sum(worker.users.values()),
                    )
                )
                worker.users = {}
                out += self._redispatch()
                self._settle()
        quiet = now - self.last_controller
        if quiet > self.config.controller_timeout:
            if not self.config.standalone:
                self.exit_requested = True
                out += self.quit_all()
            elif self.state in ("spawning", "running") and not self.abandoned:
                # A service keeps serving, but no swarm runs unattended past its patience.
                self.abandoned = True
                out += self._stop(None)
        else:
            self.abandoned = False
        if now >= self.next_update or self.exit_requested:
            out += self.update(now)
        return out

    def _next_update_after(self, now: float) -> float:
        """The next wall-clock multiple of update_interval, plus update_delay."""
        interval, delay = self.config.update_interval, self.config.update_delay
        return (math.floor((now - delay) / interval) + 1) * interval + delay

    def update(self, now: float) -> list[Out]:
        """Build the update frame for every live controller and start a new interval."""
        pending_seconds = self.pending_seconds.values()
        message = protocol.Update(
            seq=self.update_seq,
            time=now,
            state=self.state,
            users=self.user_count(),
            target_users=self.target_users,
            spawn_rate=self.spawn_rate,
            rate=self.arrivals.rate if self.arrivals else None,
            max_users=self.arrivals.max_users if self.arrivals else None,
            start=self.last_update,
            end=now,
            stats=self.pending.to_wire(),
            workers=[w.row() for w in self.workers.values()],
            lost=self.pending_lost,
            failures=self.pending_failures,
            reports=self.pending_reports,
            span=sum(pending_seconds) / len(pending_seconds) if pending_seconds else 0.0,
            overloaded=[w.worker_id for w in self.workers.values() if w.overloaded()],
            dropped=self.dropped,
            custom=self.pending_custom,
            warnings=self.pending_warnings,
        )
        self._folded.merge(self.pending)
        self.pending = RequestStats(names=self.names)
        self.pending_lost = []
        self.pending_failures = []
        self.pending_reports = []
        self.pending_custom = []
        self.pending_warnings = []
        self.pending_seconds = {}
        self.last_update = now
        self.next_update = self._next_update_after(now)
        self.update_seq += 1
        self.sent.append(message)
        live = [
            ident
            for ident, seen in self.controllers.items()
            if now - seen <= self.config.controller_timeout
        ]
        return [("control", ident, message) for ident in live]


def _to_both(worker: WorkerInfo, message: protocol.Message) -> list[Out]:
    """Send ``message`` to the worker and a copy to its heartbeat thread's socket.

    A worker whose users never yield (a CPU loop) never reads its main socket; its native
    heartbeat thread still does, and acts on a Stop or Quit (see engine/stuck.py).
    """
    heartbeat = f"{worker.worker_id}/hb".encode()
    return [("worker", worker.identity, message), ("worker", heartbeat, message)]
