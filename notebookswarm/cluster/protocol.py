"""Encode and decode the messages that master, workers and controllers send each other.

The vocabulary of the wire, in one place: every message between the three kinds of process
is declared here (about 35 small frozen dataclasses), so this module is longer than most by
design; the validator they share lives in :mod:`notebookswarm.cluster.codec`.

Every frame is a msgpack map ``{"v": PROTOCOL_VERSION, "k": KIND, **fields}``. ``encode``
turns a message into such a frame; ``decode`` turns bytes from the network back into a
message or raises ``ProtocolError`` -- never any other exception -- so a receiver can count
the drop and carry on. Each message's schema is read from its dataclass annotations: the
class *is* the specification, and one table-driven validator checks every field of every
kind, nested containers included. Frames carry plain data only: msgpack extension types are
refused, and code travels as opaque ``bytes`` inside ``Code``, never as a pickled frame.

To add a message:
  1. Declare a frozen, slotted, keyword-only dataclass below with a new
     ``KIND: ClassVar[str] = "..."`` tag and fields typed only with what ``compile_spec``
     understands (str, int, float, bool, bytes, None, Any, Literal, list, dict, unions,
     the bounded aliases such as ``NonNegativeInt``, and nested records: frozen dataclasses
     without a ``KIND``, sent as maps of their fields). No field may be called ``v`` or ``k``.
  2. Add the class to the ``Message`` union; ``MESSAGE_TYPES`` and the decoder follow.
  3. Add a sample to ``SAMPLES`` in tests/cluster/test_protocol.py and a handler on the receiving
     side. If you change the fields of a message that already shipped, bump
     ``PROTOCOL_VERSION``.

Exceptions::

    NotebookSwarmError
    └── ProtocolError        bytes that are not a valid message of this protocol
        └── VersionMismatch  a valid frame from a peer speaking another protocol version
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    TypeAlias,
    get_args,
)

import msgpack

from notebookswarm.cluster.codec import AtLeast, Invalid, Schema, build_schemas, describe, show
from notebookswarm.errors import NotebookSwarmError

__all__ = [
    "CONTROL_COMMANDS",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "ArrivalKind",
    "ClassSpec",
    "Code",
    "CodeFormat",
    "ControlCommand",
    "ControlReply",
    "CustomReport",
    "Failed",
    "GetStatus",
    "Goodbye",
    "Hail",
    "Heartbeat",
    "Hello",
    "LoadCode",
    "LostInterval",
    "Message",
    "NameReport",
    "NonNegativeFloat",
    "NonNegativeInt",
    "Pace",
    "Ping",
    "PositiveFloat",
    "PositiveInt",
    "ProtocolError",
    "Quit",
    "QuitMaster",
    "Refused",
    "Replay",
    "Report",
    "ReportId",
    "ResetStats",
    "SetTargets",
    "Spawn",
    "StartSwarm",
    "Status",
    "Stop",
    "StopSwarm",
    "Stopped",
    "Stuck",
    "StuckTask",
    "SwarmState",
    "Targets",
    "Update",
    "VersionMismatch",
    "Welcome",
    "WorkerFailure",
    "WorkerRow",
    "WorkerState",
    "decode",
    "encode",
]

PROTOCOL_VERSION = 1


class ProtocolError(NotebookSwarmError):
    """A frame is not a valid message: drop it, count it, and keep serving."""


class VersionMismatch(ProtocolError):
    """The peer speaks another protocol version: install the same notebookswarm on both sides.

    ``decode`` does not know who sent the frame, so its message names the roles generically;
    the side that catches it calls ``explain(peer=..., local=...)`` to say it in its own
    terms, for its log and for the ``Refused`` reason it sends back.
    """

    def __init__(
        self,
        theirs: int,
        ours: int = PROTOCOL_VERSION,
        *,
        peer: str = "the peer",
        local: str = "this process",
    ) -> None:
        self.theirs = theirs
        self.ours = ours
        super().__init__(self.explain(peer=peer, local=local))

    def explain(self, *, peer: str, local: str) -> str:
        """Say what happened and what to install, naming both sides (e.g. "worker w3")."""
        return (
            f"{peer} speaks protocol {self.theirs}, {local} speaks {self.ours}: "
            "install the same notebookswarm version on both sides"
        )


NonNegativeInt: TypeAlias = Annotated[int, AtLeast(0)]
PositiveInt: TypeAlias = Annotated[int, AtLeast(1)]
NonNegativeFloat: TypeAlias = Annotated[float, AtLeast(0.0)]
PositiveFloat: TypeAlias = Annotated[float, AtLeast(0.0, strict=True)]
WorkerState: TypeAlias = Literal["ready", "spawning", "running", "stopped"]
CodeFormat: TypeAlias = Literal["pickle", "source"]

# -- worker -> master ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """A worker introduces itself and the machine it runs on."""

    KIND: ClassVar[str] = "hello"
    worker_id: str
    host: str
    pid: NonNegativeInt
    cores: PositiveInt
    version: str  # the notebookswarm package version, for humans; the frame carries "v"
    #: The CPU this worker may use, in thousandths (cgroup quota, affinity): its weight in
    #: dispatch.
    millicpus: PositiveInt


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """A worker says it is alive, what it runs, and how loaded its machine is."""

    KIND: ClassVar[str] = "heartbeat"
    worker_id: str
    state: WorkerState
    users: dict[str, NonNegativeInt]
    cpu_percent: NonNegativeFloat
    loop_lag: NonNegativeFloat  # seconds the event loop ran late


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """A worker sends the statistics delta of one report period ``[start, end)``."""

    KIND: ClassVar[str] = "report"
    worker_id: str
    seq: NonNegativeInt
    start: float
    end: float
    stats: dict[str, Any]  # produced and checked by the stats module
    # Locust's report_to_master data from the user's listeners (None without any); the
    # master forwards it to controllers once, for their worker_report listeners.
    custom: dict[str, Any] | None = None
    # The worker's request names once it keeps many (None below stats.names'
    # DEFAULT_WARN_NAMES, and while it folds none).
    names: NameReport | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Stopped:
    """A worker has stopped all its users and flushed its last report."""

    KIND: ClassVar[str] = "stopped"
    worker_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """A worker could not do what it was told (load the code, reach its targets); why."""

    KIND: ClassVar[str] = "failed"
    worker_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Goodbye:
    """A worker is leaving; the master redistributes its users without waiting."""

    KIND: ClassVar[str] = "goodbye"
    worker_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NameReport:
    """How many request names a worker keeps, and how many requests it folded."""

    distinct: NonNegativeInt  # distinct (method, name) this worker has kept so far
    folded: NonNegativeInt  # requests of this report counted under "<other names>"
    pattern: str | None  # the pattern most kept names share, e.g. "/item/{n}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StuckTask:
    """A user that would not stop: its class and the task (or on_start/on_stop) it ran."""

    user_class: str
    task: str  # qualified name, e.g. "Spinner.spin"
    users: PositiveInt


@dataclass(frozen=True, slots=True, kw_only=True)
class Stuck:
    """A worker's users did not stop within ``stop_timeout`` plus a grace: it exits now.

    Sent (from the heartbeat thread, after a last Report) instead of ``Stopped``; the
    process then exits with ``exit_code``. Its unreported requests are in that Report.
    """

    KIND: ClassVar[str] = "stuck"
    worker_id: str
    tasks: list[StuckTask]
    waited: NonNegativeFloat  # seconds since the stop was asked
    exit_code: int


# -- master -> worker ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome:
    """The master accepts a worker and tells it the timing it expects."""

    KIND: ClassVar[str] = "welcome"
    worker_id: str
    heartbeat_interval: PositiveFloat
    master_timeout: PositiveFloat
    report_interval: PositiveFloat


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """The master refuses a worker; ``reason`` says what to do about it."""

    KIND: ClassVar[str] = "refused"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Code:
    """The master ships the user classes: cloudpickle bytes or Python source."""

    KIND: ClassVar[str] = "code"
    payload: bytes
    fmt: CodeFormat
    classes: list[str]
    host: str | None
    options: dict[str, Any]  # runtime settings: stop_timeout, tags, exclude_tags, filename


@dataclass(frozen=True, slots=True, kw_only=True)
class Spawn:
    """The master sets a worker's absolute user targets per class and its spawn rate."""

    KIND: ClassVar[str] = "spawn"
    targets: dict[str, NonNegativeInt]
    spawn_rate: NonNegativeFloat  # users per second this worker starts
    generation: NonNegativeInt  # increases with every dispatch, so stale ones can be ignored


@dataclass(frozen=True, slots=True, kw_only=True)
class Pace:
    """The master sets a worker's arrival rate (open model): its share of the swarm's rate."""

    KIND: ClassVar[str] = "pace"
    rate: NonNegativeFloat  # task runs per second this worker starts
    max_users: NonNegativeInt  # its pool of users grows up to this
    poisson: bool  # exponential gaps between arrivals instead of even ones
    max_backlog: NonNegativeInt  # arrivals that may wait for a free user before drops
    generation: NonNegativeInt  # shared with Spawn: the newest dispatch wins


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    """The master stops a worker's users, waiting at most ``timeout`` s for tasks to end.

    ``stop_id`` numbers the master's stops: the copy that reaches a worker's heartbeat
    thread after the worker has finished that stop must not arm its stuck watch again
    (engine/stuck.py). None for a stop that is not the master's numbered one.
    """

    KIND: ClassVar[str] = "stop"
    timeout: NonNegativeFloat | None
    stop_id: PositiveInt | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Quit:
    """The master tells a worker to stop and exit."""

    KIND: ClassVar[str] = "quit"


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """The master says it is alive; ``now`` is its clock."""

    KIND: ClassVar[str] = "ping"
    now: float


# -- controller <-> master ----------------------------------------------------------------
# One message per command, each carrying the ``request_id`` its reply echoes (the control
# client fills it in); the master answers every command with a ``ControlReply``.

SwarmState: TypeAlias = Literal["ready", "spawning", "running", "stopping", "stopped"]
ArrivalKind: TypeAlias = Literal["constant", "poisson"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassSpec:
    """A user class as the master needs it for dispatch: plain data, never code."""

    name: str
    weight: NonNegativeInt
    fixed_count: NonNegativeInt


@dataclass(frozen=True, slots=True, kw_only=True)
class Targets:
    """What a swarm should run; a field left None keeps the master's current value.

    ``users``/``spawn_rate`` steer the closed model; ``rate`` (with ``max_users``,
    ``arrivals``, ``max_backlog``) switches to the open model.
    """

    users: NonNegativeInt | None = None
    spawn_rate: PositiveFloat | None = None
    rate: NonNegativeFloat | None = None
    max_users: PositiveInt | None = None
    arrivals: ArrivalKind | None = None
    max_backlog: NonNegativeInt | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Hail:
    """A controller says it is there (and asks for the swarm's state)."""

    KIND: ClassVar[str] = "hail"
    request_id: NonNegativeInt = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadCode:
    """A controller loads user code for every worker, present and future."""

    KIND: ClassVar[str] = "load_code"
    payload: bytes
    fmt: CodeFormat
    classes: list[ClassSpec]
    host: str | None
    options: dict[str, Any]  # runtime settings: stop_timeout, tags, exclude_tags, filename
    request_id: NonNegativeInt = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StartSwarm:
    """A controller starts (or re-targets) the swarm."""

    KIND: ClassVar[str] = "start_swarm"
    targets: Targets
    request_id: NonNegativeInt = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SetTargets:
    """A controller changes targets; a swarm that is not running only records them."""

    KIND: ClassVar[str] = "set_targets"
    targets: Targets
    request_id: NonNegativeInt = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StopSwarm:
    """A controller stops every user, waiting at most ``timeout`` s for tasks to end."""

    KIND: ClassVar[str] = "stop_swarm"
    timeout: NonNegativeFloat | None = None
    request_id: NonNegativeInt = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetStats:
    """A controller starts the cumulative statistics over."""

    KIND: ClassVar[str] = "reset_stats"
    request_id: NonNegativeInt = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class QuitMaster:
    """A controller tells the master to stop its workers and exit."""

    KIND: ClassVar[str] = "quit_master"
    request_id: NonNegativeInt = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Replay:
    """A controller that missed updates (its link dropped) asks for those after ``after``."""

    KIND: ClassVar[str] = "replay"
    after: NonNegativeInt
    request_id: NonNegativeInt = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class GetStatus:
    """A controller asks for the swarm's state with its cumulative statistics."""

    KIND: ClassVar[str] = "get_status"
    request_id: NonNegativeInt = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRow:
    """One worker as an update or a status shows it."""

    id: str
    host: str
    pid: NonNegativeInt
    cores: PositiveInt
    state: str  # a WorkerState, or "lost"
    users: NonNegativeInt
    cpu_percent: NonNegativeFloat
    loop_lag: NonNegativeFloat
    rps: NonNegativeFloat
    last_seen: float
    error: str | None
    overloaded: bool
    cpus: NonNegativeFloat = 0.0  # the CPU it may use (its weight in dispatch)


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """The swarm's state as the master sees it, sent with every reply."""

    state: SwarmState
    users: NonNegativeInt
    target_users: NonNegativeInt
    spawn_rate: NonNegativeFloat
    rate: NonNegativeFloat | None
    classes: list[str]
    workers: list[WorkerRow]
    dropped: NonNegativeInt
    started: float
    config: dict[str, Any]  # the master's MasterConfig, every field, as it runs
    stats: dict[str, Any] | None = None  # cumulative statistics, for GetStatus only


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlReply:
    """The master answers a command: ``refusal`` says why it did not do it, in its words."""

    KIND: ClassVar[str] = "control_reply"
    request_id: NonNegativeInt
    refusal: str | None
    status: Status


@dataclass(frozen=True, slots=True, kw_only=True)
class LostInterval:
    """A worker went silent: what it did between ``since`` and ``until`` never arrived."""

    worker: str
    since: float
    until: float
    users: NonNegativeInt


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerFailure:
    """A worker could not do what it was told, and why."""

    worker: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportId:
    """Which worker report an update's delta holds."""

    worker: str
    seq: NonNegativeInt


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomReport:
    """Data a worker's ``report_to_master`` listeners added to one of its reports."""

    worker: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """The master sends a controller its once-a-second view of the swarm.

    ``stats`` is the statistics delta of ``[start, end)`` (the stats module's wire form);
    ``span`` the seconds of a worker's time it covers, on average (0 when no report came).
    """

    KIND: ClassVar[str] = "update"
    seq: NonNegativeInt
    time: float
    state: SwarmState
    users: NonNegativeInt
    target_users: NonNegativeInt
    spawn_rate: NonNegativeFloat
    rate: NonNegativeFloat | None
    max_users: NonNegativeInt | None
    start: float
    end: float
    stats: dict[str, Any]
    workers: list[WorkerRow]
    lost: list[LostInterval]
    failures: list[WorkerFailure]
    reports: list[ReportId]
    span: NonNegativeFloat
    overloaded: list[str]
    dropped: NonNegativeInt
    custom: list[CustomReport] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)  # said once, for people


ControlCommand: TypeAlias = (
    Hail
    | LoadCode
    | StartSwarm
    | SetTargets
    | StopSwarm
    | ResetStats
    | QuitMaster
    | GetStatus
    | Replay
)
CONTROL_COMMANDS: tuple[type[ControlCommand], ...] = get_args(ControlCommand)


Message: TypeAlias = (
    Hello
    | Heartbeat
    | Report
    | Stopped
    | Failed
    | Goodbye
    | Stuck
    | Welcome
    | Refused
    | Code
    | Spawn
    | Pace
    | Stop
    | Quit
    | Ping
    | Hail
    | LoadCode
    | StartSwarm
    | SetTargets
    | StopSwarm
    | ResetStats
    | QuitMaster
    | GetStatus
    | Replay
    | ControlReply
    | Update
)
MESSAGE_TYPES: tuple[type[Message], ...] = get_args(Message)
SCHEMAS = build_schemas(MESSAGE_TYPES)


# -- frames -------------------------------------------------------------------------------


def encode(message: Message) -> bytes:
    """Turn a message into one msgpack frame; raise ProtocolError if a field is ill-typed."""
    kind = getattr(message, "KIND", None)
    schema = SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None or type(message) is not schema.build:
        raise ProtocolError(f"cannot encode {describe(message)}: it is not a protocol message")
    frame: dict[str, object] = {"v": PROTOCOL_VERSION, "k": message.KIND}
    for name, check in schema.fields.items():
        try:
            frame[name] = check(getattr(message, name))
        except Invalid as invalid:
            where = f"{message.KIND}.{name}"
            raise ProtocolError(f"cannot encode {invalid.explain(where)}") from None
    try:
        packed: bytes = msgpack.packb(frame, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:  # e.g. a set inside Report.stats
        raise ProtocolError(f"cannot encode {message.KIND}: {error}") from error
    return packed


def decode(data: bytes) -> Message:
    """Turn one frame from the network into a message; raise ProtocolError if it is not one."""
    frame = _unpack(data)
    if type(frame) is not dict:
        raise ProtocolError(f"frame is {describe(frame)}, not a map")
    version = frame.get("v")
    if type(version) is not int:
        raise ProtocolError(f"frame has no protocol version: 'v' is {describe(version)}")
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(theirs=version)
    kind = frame.get("k")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise ProtocolError(f"unknown message kind {show(kind)}")
    schema = SCHEMAS[kind]
    _require_exact_fields(kind, frame, schema)
    values = {}
    for name, check in schema.fields.items():
        try:
            values[name] = check(frame[name])
        except Invalid as invalid:
            raise ProtocolError(invalid.explain(f"{kind}.{name}")) from None
    message: Message = schema.build(**values)
    return message


def _unpack(data: bytes) -> object:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_refuse_ext)
    # msgpack signals bad input with ValueError subclasses (truncated, extra data, bad
    # UTF-8, too deep), TypeError (unhashable map keys) and its own UnpackException.
    except Exception as error:
        raise ProtocolError(f"frame is not msgpack: {type(error).__name__}: {error}") from error


def _refuse_ext(code: int, data: bytes) -> object:
    raise ValueError(f"msgpack extension type {code} is not part of the protocol")


def _require_exact_fields(kind: str, frame: dict[Any, Any], schema: Schema) -> None:
    expected = schema.fields.keys()
    missing = expected - frame.keys()
    extra = frame.keys() - expected - {"v", "k"}
    if missing:
        raise ProtocolError(f"{kind} frame lacks {', '.join(sorted(missing))}")
    if extra:
        shown = ", ".join(sorted(show(key) for key in extra)[:5])
        raise ProtocolError(f"{kind} frame has unknown fields {shown}")
