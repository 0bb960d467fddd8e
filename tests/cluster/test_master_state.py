"""The master's decisions as a pure state machine: messages and time in, messages out.

No sockets and no sleeps: time is the ``now`` each call is given. Every message the state
machine returns is encoded with the real protocol, so a decision that could not be sent
fails here rather than in the master process.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgpack
import pytest

from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.dispatch import split_rate
from notebookswarm.cluster.master_state import MasterState, Out
from notebookswarm.stats.requests import RequestStats

T0 = 1000.0
CTL = b"controller"
ONE_CLASS = [protocol.ClassSpec(name="Reader", weight=1, fixed_count=0)]
TWO_CLASSES = [
    protocol.ClassSpec(name="Reader", weight=2, fixed_count=0),
    protocol.ClassSpec(name="Writer", weight=1, fixed_count=0),
]


# --- helpers ---------------------------------------------------------------------------


def ident(worker_id: str) -> bytes:
    """The socket identity of a worker: deliberately not its worker id."""
    return b"zmq-" + worker_id.encode()


def sendable(out: list[Out]) -> list[Out]:
    """Check that every outgoing message is a valid frame of the protocol."""
    for channel, identity, message in out:
        assert channel in ("worker", "control")
        assert isinstance(identity, bytes)
        protocol.encode(message)
    return out


def wire(message: protocol.Message) -> protocol.Message:
    """Send a message through the codec, as the master process receives it."""
    return protocol.decode(protocol.encode(message))


def new_state(now: float = T0, **config: Any) -> MasterState:
    return MasterState(MasterConfig(**config), now)


def from_worker(
    state: MasterState, worker_id: str, message: protocol.Message, now: float
) -> list[Out]:
    return sendable(state.on_worker(ident(worker_id), wire(message), now))


def join(state: MasterState, worker_id: str, now: float, cores: int = 1) -> list[Out]:
    hello = protocol.Hello(
        worker_id=worker_id, host="gen", pid=42, cores=cores, version="0", millicpus=1000 * cores
    )
    return from_worker(state, worker_id, hello, now)


def beat(
    state: MasterState,
    worker_id: str,
    now: float,
    users: dict[str, int] | None = None,
    run: protocol.WorkerState = "running",
    cpu: float = 10.0,
) -> list[Out]:
    heartbeat = protocol.Heartbeat(
        worker_id=worker_id, state=run, users=users or {}, cpu_percent=cpu, loop_lag=0.001
    )
    return from_worker(state, worker_id, heartbeat, now)


def report(
    state: MasterState, worker_id: str, stats: RequestStats, start: float, end: float
) -> list[Out]:
    message = protocol.Report(
        worker_id=worker_id, seq=0, start=start, end=end, stats=stats.to_wire()
    )
    return from_worker(state, worker_id, message, now=end)


def command(
    state: MasterState, message: protocol.ControlCommand, now: float, peer: bytes = CTL
) -> tuple[protocol.ControlReply, list[Out]]:
    """Run a control command; return its reply and the rest of what the master sends."""
    message = dataclasses.replace(message, request_id=7)
    out = sendable(state.on_control(peer, wire(message), now))
    (channel, identity, reply), *rest = out
    assert (channel, identity) == ("control", peer)
    assert isinstance(reply, protocol.ControlReply)
    assert reply.request_id == 7
    return reply, rest


HAIL = protocol.Hail()
STOP = protocol.StopSwarm()


def start_swarm(**targets: Any) -> protocol.StartSwarm:
    return protocol.StartSwarm(targets=protocol.Targets(**targets))


def set_targets(**targets: Any) -> protocol.SetTargets:
    return protocol.SetTargets(targets=protocol.Targets(**targets))


def load_code(
    classes: list[protocol.ClassSpec] = ONE_CLASS,
    payload: bytes = b"class Reader: ...",
    fmt: protocol.CodeFormat = "source",
    host: str | None = "http://target",
    options: dict[str, Any] | None = None,
) -> protocol.LoadCode:
    return protocol.LoadCode(
        payload=payload,
        fmt=fmt,
        classes=classes,
        host=host,
        options={"stop_timeout": 2.0} if options is None else options,
    )


def accepted(reply: protocol.ControlReply) -> protocol.Status:
    """The status of a reply that must carry no refusal."""
    assert reply.refusal is None, reply.refusal
    return reply.status


def load(
    state: MasterState, now: float, classes: list[protocol.ClassSpec] = ONE_CLASS
) -> list[Out]:
    reply, out = command(state, load_code(classes), now)
    accepted(reply)
    return out


def start(state: MasterState, now: float, users: int, spawn_rate: float = 10.0) -> list[Out]:
    reply, out = command(state, start_swarm(users=users, spawn_rate=spawn_rate), now)
    accepted(reply)
    return out


def refusal(reply: protocol.ControlReply) -> str:
    """The reason of a reply that must be a refusal."""
    assert reply.refusal
    return reply.refusal


def tick(state: MasterState, now: float) -> list[Out]:
    return sendable(state.tick(now))


def spawns(out: list[Out]) -> dict[bytes, protocol.Spawn]:
    """The Spawn messages of ``out`` by identity (at most one each)."""
    found = [(identity, m) for _, identity, m in out if isinstance(m, protocol.Spawn)]
    assert len({identity for identity, _ in found}) == len(found)
    return dict(found)


def sent(out: list[Out], kind: type) -> list[tuple[bytes, Any]]:
    """What went to workers' main sockets (copies to heartbeat sockets are tested apart)."""
    return [
        (identity, m)
        for _, identity, m in out
        if isinstance(m, kind) and not identity.endswith(b"/hb")
    ]


def updates(out: list[Out]) -> list[tuple[bytes, protocol.Update]]:
    return sent(out, protocol.Update)


def worker_row(state: MasterState, worker_id: str) -> protocol.WorkerRow:
    reply, _ = command(state, protocol.GetStatus(), state.last_controller)
    (row,) = [w for w in accepted(reply).workers if w.id == worker_id]
    return row


def stats_of(requests: int, name: str = "/problems", latency_ns: int = 2_000_000) -> RequestStats:
    stats = RequestStats()
    for i in range(requests):
        error = "HTTP 503" if i % 5 == 4 else None
        stats.record_request("GET", name, latency_ns + i * 1000, 100, error)
    return stats


def merged(parts: list[RequestStats]) -> RequestStats:
    out = RequestStats()
    for part in parts:
        out.merge(part)
    return out


def running_swarm(
    cores: dict[str, int], users: int, spawn_rate: float = 10.0, **config: Any
) -> MasterState:
    """A swarm whose workers joined at T0 and all run their share of ``users`` at T0 + 1."""
    config.setdefault("standalone", True)
    state = new_state(**config)
    for worker_id, n in cores.items():
        join(state, worker_id, T0, cores=n)
    load(state, T0)
    out = start(state, T0, users, spawn_rate)
    for worker_id in cores:
        beat(state, worker_id, T0 + 1, users=spawns(out)[ident(worker_id)].targets)
    assert state.state == "running"
    return state


# --- hello, welcome, code, join --------------------------------------------------------


def test_hello_is_answered_with_a_welcome_carrying_the_configured_timings() -> None:
    """A hello is answered with a Welcome carrying the heartbeat, master and report timings."""
    state = new_state(heartbeat_interval=0.5, master_timeout=7.0, report_interval=2.0)
    out = join(state, "w1", T0, cores=4)
    assert out == [
        (
            "worker",
            ident("w1"),
            protocol.Welcome(
                worker_id="w1", heartbeat_interval=0.5, master_timeout=7.0, report_interval=2.0
            ),
        )
    ]
    assert worker_row(state, "w1") == protocol.WorkerRow(
        id="w1",
        host="gen",
        pid=42,
        cores=4,
        state="ready",
        users=0,
        cpu_percent=0.0,
        loop_lag=0.0,
        rps=0.0,
        last_seen=T0,
        error=None,
        overloaded=False,
        cpus=4.0,  # no millicpus in the hello: its cores, whole
    )


def test_hello_after_load_is_answered_with_welcome_then_the_code() -> None:
    """A worker joining after code was loaded gets the Welcome first and then the same Code."""
    state = new_state()
    load(state, T0)
    out = join(state, "w1", T0 + 1)
    assert [type(m) for _, _, m in out] == [protocol.Welcome, protocol.Code]
    assert {identity for _, identity, _ in out} == {ident("w1")}
    code = out[1][2]
    assert code == protocol.Code(
        payload=b"class Reader: ...",
        fmt="source",
        classes=["Reader"],
        host="http://target",
        options={"stop_timeout": 2.0},
    )


def test_hello_before_start_sends_no_spawn() -> None:
    """Workers that join a swarm nobody started yet are told nothing to run."""
    state = new_state()
    load(state, T0)
    assert spawns(join(state, "w1", T0)) == {}


def test_newcomer_gets_a_spawn_and_existing_workers_get_capacity_weighted_targets() -> None:
    """A 4-core worker joining a 2-core worker that runs 60 users takes 40 and leaves it 20."""
    state = running_swarm({"small": 2}, users=60)
    out = join(state, "big", T0 + 2, cores=4)
    assert [type(m) for _, _, m in out][:2] == [protocol.Welcome, protocol.Code]
    targets = {identity: s.targets for identity, s in spawns(out).items()}
    assert targets == {ident("big"): {"Reader": 40}, ident("small"): {"Reader": 20}}


def test_join_keeps_per_class_sums_equal_to_the_class_targets() -> None:
    """With two weighted classes, the Spawns after a join add up to each class's target."""
    state = new_state(standalone=True)
    join(state, "small", T0, cores=2)
    load(state, T0, classes=TWO_CLASSES)
    reply, _ = command(state, start_swarm(users=60, spawn_rate=6.0), T0)
    assert accepted(reply).target_users == 60
    assert state.class_targets == {"Reader": 40, "Writer": 20}
    out = join(state, "big", T0 + 1, cores=4)
    targets = [s.targets for s in spawns(out).values()]
    assert len(targets) == 2
    assert sum(t["Reader"] for t in targets) == 40
    assert sum(t["Writer"] for t in targets) == 20
    assert sum(spawns(out)[ident("big")].targets.values()) == 40
    assert sum(spawns(out)[ident("small")].targets.values()) == 20


def test_every_dispatch_has_a_new_generation() -> None:
    """Each re-dispatch carries a higher generation than the one before, the same for all."""
    state = running_swarm({"w1": 1}, users=10)
    first = spawns(join(state, "w2", T0 + 2))
    second = spawns(join(state, "w3", T0 + 3))
    assert len({s.generation for s in first.values()}) == 1
    assert len({s.generation for s in second.values()}) == 1
    assert min(s.generation for s in second.values()) > max(s.generation for s in first.values())


def test_newcomer_to_a_settled_swarm_gets_the_whole_spawn_rate() -> None:
    """When the others only give users up, the newcomer starts its users at the full rate."""
    state = running_swarm({"small": 2}, users=60, spawn_rate=10.0)
    out = spawns(join(state, "big", T0 + 2, cores=4))
    assert out[ident("big")].spawn_rate == 10.0
    assert out[ident("small")].spawn_rate == 0.0


def test_spawn_rates_follow_the_users_each_worker_must_start() -> None:
    """Mid-ramp, rates are split by users still to start (split_rate) and sum to the rate."""
    state = new_state(standalone=True)
    join(state, "small", T0, cores=2)
    load(state, T0)
    start(state, T0, users=60, spawn_rate=10.0)
    beat(state, "small", T0 + 1, users={"Reader": 10}, run="spawning")
    out = spawns(join(state, "big", T0 + 1.5, cores=4))
    # small must go from 10 to 20, big from 0 to 40: 10 and 40 of 50 users to start.
    assert out[ident("small")].spawn_rate == 2.0
    assert out[ident("big")].spawn_rate == 8.0
    assignment = {"small": {"Reader": 20}, "big": {"Reader": 40}}
    expected = split_rate(10.0, assignment, {"small": {"Reader": 10}})
    assert {k: out[ident(k)].spawn_rate for k in expected} == expected


def test_start_sends_each_worker_its_share_and_the_rates_sum_to_the_request() -> None:
    """start spreads users over the workers by cores and splits the spawn rate exactly."""
    state = new_state(standalone=True)
    for worker_id, cores in (("a", 1), ("b", 2), ("c", 3)):
        join(state, worker_id, T0, cores=cores)
    load(state, T0, classes=TWO_CLASSES)
    reply, out = command(state, start_swarm(users=90, spawn_rate=7.0), T0)
    status = accepted(reply)
    assert (status.state, status.target_users, status.spawn_rate) == ("spawning", 90, 7.0)
    assert [w.id for w in status.workers] == ["a", "b", "c"]
    assert state.class_targets == {"Reader": 60, "Writer": 30}
    by_worker = spawns(out)
    assert [sum(by_worker[ident(w)].targets.values()) for w in "abc"] == [15, 30, 45]
    assert sum(s.targets["Reader"] for s in by_worker.values()) == 60
    assert sum(s.targets["Writer"] for s in by_worker.values()) == 30
    assert math.isclose(sum(s.spawn_rate for s in by_worker.values()), 7.0)
    assert state.state == "spawning"


def test_a_restarted_worker_with_the_same_id_is_counted_once() -> None:
    """A worker that says hello again under its id replaces its old entry, at its new socket."""
    state = running_swarm({"w1": 1, "w2": 1}, users=10)
    out = from_worker(
        state,
        "w1-new",
        protocol.Hello(worker_id="w1", host="gen", pid=43, cores=1, version="0", millicpus=1000),
        T0 + 2,
    )
    reply, _ = command(state, protocol.GetStatus(), T0 + 2)
    assert [w.id for w in accepted(reply).workers] == ["w1", "w2"]
    assert ident("w1-new") in spawns(out)
    assert ident("w1") not in spawns(out)
    assert sum(sum(s.targets.values()) for s in spawns(out).values()) == 10


def test_goodbye_moves_the_users_at_once_without_a_lost_interval() -> None:
    """A worker that says goodbye is forgotten and its users go to the others immediately."""
    state = running_swarm({"w1": 1, "w2": 1}, users=10)
    out = from_worker(state, "w2", protocol.Goodbye(worker_id="w2"), T0 + 2)
    assert {i: s.targets for i, s in spawns(out).items()} == {ident("w1"): {"Reader": 10}}
    command(state, HAIL, T0 + 2)
    (_, update), *_ = updates(tick(state, T0 + 2))
    assert update.lost == []
    assert [w.id for w in update.workers] == ["w1"]


# --- control commands ------------------------------------------------------------------


def test_load_ships_the_code_to_every_worker() -> None:
    """load replies with the class names and sends the Code to every worker already joined."""
    state = new_state()
    join(state, "w1", T0)
    join(state, "w2", T0)
    message = load_code(TWO_CLASSES, payload=b"\x80pickle", fmt="pickle", host=None, options={})
    reply, out = command(state, message, T0)
    assert accepted(reply).classes == ["Reader", "Writer"]
    code = protocol.Code(
        payload=b"\x80pickle", fmt="pickle", classes=["Reader", "Writer"], host=None, options={}
    )
    assert out == [("worker", ident("w1"), code), ("worker", ident("w2"), code)]


def test_load_is_refused_while_the_swarm_runs() -> None:
    """load during a run is refused saying to stop first, and ships nothing."""
    state = running_swarm({"w1": 1}, users=5)
    reply, out = command(state, load_code(payload=b"new", host=None, options={}), T0 + 2)
    assert "stop" in refusal(reply)
    assert reply.status.classes == ["Reader"] and reply.status.state == "running"
    assert out == []
    assert state.code is not None and state.code.message.payload == b"class Reader: ..."


def test_load_is_accepted_again_once_the_swarm_stopped() -> None:
    """After a stop, new code can be loaded and reaches the workers."""
    state = running_swarm({"w1": 1}, users=5)
    command(state, STOP, T0 + 2)
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 3)
    assert state.state == "stopped"
    out = load(state, T0 + 4)
    assert [(i, type(m)) for _, i, m in out] == [(ident("w1"), protocol.Code)]


def test_load_without_classes_is_refused() -> None:
    """load with an empty class list is refused asking for a User subclass."""
    state = new_state()
    message = load_code([], payload=b"", host=None, options={})
    reply, out = command(state, message, T0)
    assert "User subclass" in refusal(reply)
    assert out == [] and state.code is None


@pytest.mark.parametrize("kind", [protocol.StartSwarm, protocol.SetTargets])
@pytest.mark.parametrize(
    ("targets", "named"),
    [
        ({"users": -1, "spawn_rate": 1.0}, "users: expected int >= 0 or nil, got int -1"),
        ({"users": "10", "spawn_rate": 1.0}, "users: expected .*, got str '10'"),
        ({"users": 2.5, "spawn_rate": 1.0}, "users: expected .*, got float 2.5"),
        ({"users": True, "spawn_rate": 1.0}, "users: expected .*, got bool True"),
        ({"users": 10, "spawn_rate": 0}, "spawn_rate: expected finite float > 0 or nil"),
        ({"users": 10, "spawn_rate": 0.0}, "spawn_rate: expected .*, got float 0.0"),
        ({"users": 10, "spawn_rate": -3.0}, "spawn_rate: expected .*, got float -3.0"),
        ({"users": 10, "spawn_rate": "fast"}, "spawn_rate: expected .*, got str 'fast'"),
        ({"users": 10, "spawn_rate": math.inf}, "spawn_rate: expected .*, got float inf"),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else "",
)
def test_start_and_set_with_bad_values_cannot_cross_the_wire(
    kind: type[protocol.StartSwarm | protocol.SetTargets], targets: dict[str, Any], named: str
) -> None:
    """A bad users or spawn_rate is refused naming the value by encode on the controller's
    side and by decode on the master's, so the master never sees it."""
    message = kind(targets=protocol.Targets(**targets))
    with pytest.raises(protocol.ProtocolError, match=f"cannot encode {kind.KIND}.targets.{named}"):
        protocol.encode(message)
    good = protocol.encode(kind(targets=protocol.Targets(users=10, spawn_rate=1.0)))
    frame = msgpack.unpackb(good)
    frame["targets"].update(targets)
    with pytest.raises(protocol.ProtocolError, match=f"^{kind.KIND}.targets.{named}"):
        protocol.decode(msgpack.packb(frame))


def test_start_without_spawn_rate_keeps_the_last_one() -> None:
    """A start or set that leaves spawn_rate out (None) keeps the swarm's current rate."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4, spawn_rate=3.0)
    reply, out = command(state, set_targets(users=10), T0 + 2)
    assert accepted(reply).spawn_rate == 3.0
    assert sum(s.spawn_rate for s in spawns(out).values()) == 3.0
    reply, out = command(state, start_swarm(users=6, spawn_rate=None), T0 + 3)
    assert accepted(reply).spawn_rate == 3.0
    assert sum(s.spawn_rate for s in spawns(out).values()) == 3.0


@pytest.mark.parametrize("kind", [protocol.StartSwarm, protocol.SetTargets])
def test_start_without_code_is_refused(
    kind: type[protocol.StartSwarm | protocol.SetTargets],
) -> None:
    """start/set before any load are refused saying to load user classes first."""
    state = new_state()
    join(state, "w1", T0)
    reply, out = command(state, kind(targets=protocol.Targets(users=10, spawn_rate=1.0)), T0)
    assert "no user code loaded" in refusal(reply)
    assert out == [] and state.state == "ready"


def test_start_with_more_users_than_fixed_classes_allow_is_refused() -> None:
    """start asking for more users than fixed counts give, with no weighted class, is refused."""
    state = new_state()
    load(state, T0, classes=[protocol.ClassSpec(name="Admin", weight=0, fixed_count=2)])
    reply, out = command(state, start_swarm(users=5, spawn_rate=1.0), T0)
    assert "5 users" in refusal(reply)
    assert out == [] and state.state == "ready"


def test_set_changes_the_targets_of_a_running_swarm() -> None:
    """set on a running swarm re-dispatches the new count and goes back to spawning."""
    state = running_swarm({"w1": 1, "w2": 1}, users=10, spawn_rate=4.0)
    reply, out = command(state, set_targets(users=30), T0 + 2)
    assert accepted(reply).target_users == 30
    assert {i: s.targets for i, s in spawns(out).items()} == {
        ident("w1"): {"Reader": 15},
        ident("w2"): {"Reader": 15},
    }
    assert sum(s.spawn_rate for s in spawns(out).values()) == 4.0
    assert state.state == "spawning"


def test_every_command_the_master_knows_is_a_message_kind() -> None:
    """The control commands are exactly these nine kinds; an unknown one ('launch') never
    decodes, and the error names it."""
    assert sorted(cls.KIND for cls in protocol.CONTROL_COMMANDS) == [
        "get_status",
        "hail",
        "load_code",
        "quit_master",
        "replay",
        "reset_stats",
        "set_targets",
        "start_swarm",
        "stop_swarm",
    ]
    frame = msgpack.packb({"v": protocol.PROTOCOL_VERSION, "k": "launch", "request_id": 7})
    with pytest.raises(protocol.ProtocolError, match="unknown message kind 'launch'"):
        protocol.decode(frame)


def test_stop_with_a_timeout_passes_it_to_the_workers() -> None:
    """stop timeout=5 sends Stop(timeout=5.0) to every live worker."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    reply, out = command(state, protocol.StopSwarm(timeout=5), T0 + 2)
    assert accepted(reply).state == "stopping"
    assert sent(out, protocol.Stop) == [
        (ident("w1"), protocol.Stop(timeout=5.0, stop_id=1)),
        (ident("w2"), protocol.Stop(timeout=5.0, stop_id=1)),
    ]


@pytest.mark.parametrize(
    "message",
    [
        protocol.Ping(now=1.0),
        protocol.Spawn(targets={"Reader": 1}, spawn_rate=1.0, generation=1),
        protocol.Report(worker_id="w1", seq=0, start=T0, end=T0 + 1, stats={}),
        protocol.Hello(worker_id="w1", host="gen", pid=42, cores=1, version="0", millicpus=1000),
    ],
    ids=lambda message: type(message).__name__,
)
def test_a_frame_that_is_not_a_command_on_the_control_socket_is_dropped(
    message: protocol.Message,
) -> None:
    """A message of a known kind that is not a control command, arriving from a controller,
    is counted as dropped and answered by nothing."""
    state = new_state()
    out = state.on_control(CTL, wire(message), T0)
    assert out == []
    assert state.dropped == 1
    assert state.workers == {} and state.total.is_empty()


def test_ping_and_status_describe_the_swarm() -> None:
    """A hail gives the state and users; status adds targets, totals, workers and drops."""
    state = running_swarm({"w1": 1, "w2": 1}, users=6, spawn_rate=3.0)
    report(state, "w1", stats_of(4), T0 + 1, T0 + 2)
    reply, out = command(state, HAIL, T0 + 2)
    assert out == []
    status = accepted(reply)
    assert (status.state, status.users) == ("running", 6)
    assert status.stats is None
    reply, out = command(state, protocol.GetStatus(), T0 + 2)
    status = accepted(reply)
    assert (status.state, status.users, status.target_users) == ("running", 6, 6)
    assert status.spawn_rate == 3.0
    assert status.stats is not None
    assert RequestStats.from_wire(status.stats).total().requests == 4
    assert [w.id for w in status.workers] == ["w1", "w2"]
    assert (status.dropped, status.started) == (0, T0)
    assert status.config == dataclasses.asdict(state.config)


def test_reset_starts_the_totals_over() -> None:
    """reset_stats empties the cumulative statistics; later reports count from zero."""
    state = running_swarm({"w1": 1}, users=2)
    report(state, "w1", stats_of(4), T0 + 1, T0 + 2)
    reply, out = command(state, protocol.ResetStats(), T0 + 2)
    assert out == [] and accepted(reply).state == "running"
    assert state.total.is_empty()
    report(state, "w1", stats_of(3), T0 + 2, T0 + 3)
    reply, _ = command(state, protocol.GetStatus(), T0 + 3)
    stats = accepted(reply).stats
    assert stats is not None and RequestStats.from_wire(stats).total().requests == 3


# --- heartbeats ------------------------------------------------------------------------


def test_heartbeat_is_answered_with_a_ping_to_the_same_identity() -> None:
    """A known worker's heartbeat gets a Ping carrying the master's clock, at its socket."""
    state = new_state()
    join(state, "w1", T0)
    out = beat(state, "w1", T0 + 1.25, users={}, run="ready")
    assert out == [("worker", ident("w1"), protocol.Ping(now=T0 + 1.25))]


def test_heartbeat_updates_what_the_master_knows_of_the_worker() -> None:
    """A heartbeat sets the worker's state, users, CPU, loop lag and last-seen time."""
    state = new_state()
    join(state, "w1", T0)
    load(state, T0)
    start(state, T0, users=3)
    beat(state, "w1", T0 + 1, users={"Reader": 2}, run="spawning", cpu=55.5)
    row = worker_row(state, "w1")
    assert (row.state, row.users, row.cpu_percent) == ("spawning", 2, 55.5)
    assert (row.loop_lag, row.last_seen) == (0.001, T0 + 1)
    assert state.user_count() == 2


def test_heartbeat_from_an_unknown_worker_is_dropped() -> None:
    """A heartbeat from a worker that never said hello is counted as dropped and unanswered."""
    state = new_state()
    assert beat(state, "ghost", T0) == []
    assert state.dropped == 1
    assert state.workers == {}


def test_report_from_an_unknown_worker_is_dropped() -> None:
    """A report from a worker that never said hello is counted as dropped and not merged."""
    state = new_state()
    assert report(state, "ghost", stats_of(3), T0, T0 + 1) == []
    assert state.dropped == 1
    assert state.total.is_empty()


def test_master_to_worker_kinds_from_a_worker_are_dropped() -> None:
    """A worker sending a kind only the master or a controller sends (Welcome, QuitMaster) is
    counted as dropped."""
    state = new_state()
    welcome = protocol.Welcome(
        worker_id="w1", heartbeat_interval=1.0, master_timeout=1.0, report_interval=1.0
    )
    assert state.on_worker(ident("w1"), welcome, T0) == []
    assert state.on_worker(ident("w1"), protocol.QuitMaster(), T0) == []
    assert state.dropped == 2
    assert not state.exit_requested


# --- liveness --------------------------------------------------------------------------


def test_worker_silent_exactly_heartbeat_timeout_is_not_lost() -> None:
    """Silence equal to heartbeat_timeout is tolerated; a hair more marks the worker lost."""
    state = new_state(heartbeat_timeout=5.0, standalone=True)
    join(state, "w1", T0)
    beat(state, "w1", T0 + 1, run="ready")
    tick(state, T0 + 6.0)
    assert worker_row(state, "w1").state == "ready"
    tick(state, T0 + 6.0 + 1e-6)
    assert worker_row(state, "w1").state == "lost"


def test_any_message_from_a_worker_keeps_it_alive() -> None:
    """Reports count as signs of life, not only heartbeats."""
    state = new_state(heartbeat_timeout=5.0, standalone=True)
    join(state, "w1", T0)
    report(state, "w1", stats_of(1), T0, T0 + 4)
    tick(state, T0 + 9.0)
    assert worker_row(state, "w1").state == "ready"


def test_lost_worker_users_move_to_the_survivors() -> None:
    """At the first tick after the timeout the lost worker's users are spawned on the others."""
    state = running_swarm({"w1": 1, "w2": 1, "w3": 2}, users=20, spawn_rate=6.0)
    beat(state, "w1", T0 + 4, users={"Reader": 5})
    beat(state, "w3", T0 + 4, users={"Reader": 10})
    assert spawns(tick(state, T0 + 6.0)) == {}
    out = spawns(tick(state, T0 + 6.5))
    assert set(out) == {ident("w1"), ident("w3")}
    assert sum(s.targets["Reader"] for s in out.values()) == 20
    assert [sum(out[ident(w)].targets.values()) for w in ("w1", "w3")] in ([7, 13], [6, 14])
    assert sum(s.spawn_rate for s in out.values()) == pytest.approx(6.0)
    assert state.user_count() == 15
    assert state.state == "spawning"


def test_lost_interval_appears_in_the_next_update() -> None:
    """The update after a loss lists {worker, since, until, users}; the one after does not."""
    state = running_swarm({"w1": 1, "w2": 1}, users=10)
    report(state, "w2", stats_of(3), T0 + 1, T0 + 1.5)
    for now in (T0 + 2, T0 + 4, T0 + 6):
        beat(state, "w1", now, users={"Reader": 5})
        command(state, HAIL, now)
    tick(state, T0 + 6)
    out = tick(state, T0 + 7)
    (_, update), *_ = updates(out)
    assert update.lost == [
        protocol.LostInterval(worker="w2", since=T0 + 1.5, until=T0 + 7, users=5)
    ]
    (_, update), *_ = updates(tick(state, T0 + 8))
    assert update.lost == []


def test_lost_interval_of_a_worker_that_never_reported_starts_when_it_joined() -> None:
    """Without any report from it, a lost worker's unreported interval begins at its hello."""
    state = new_state(standalone=True)
    join(state, "w1", T0 + 0.5)
    command(state, HAIL, T0 + 6)
    (_, update), *_ = updates(tick(state, T0 + 6))
    assert update.lost == [
        protocol.LostInterval(worker="w1", since=T0 + 0.5, until=T0 + 6, users=0)
    ]


def test_lost_worker_that_comes_back_rejoins_the_dispatch() -> None:
    """A heartbeat from a lost worker makes it live again and re-dispatches with it included."""
    state = running_swarm({"w1": 1, "w2": 1}, users=10, spawn_rate=5.0)
    beat(state, "w1", T0 + 5, users={"Reader": 5})
    out = spawns(tick(state, T0 + 6.5))
    assert {i: s.targets for i, s in out.items()} == {ident("w1"): {"Reader": 10}}
    beat(state, "w1", T0 + 7, users={"Reader": 8}, run="spawning")
    out = spawns(beat(state, "w2", T0 + 8, users={"Reader": 5}, run="running"))
    assert set(out) == {ident("w1"), ident("w2")}
    assert sum(s.targets["Reader"] for s in out.values()) == 10
    assert sum(s.spawn_rate for s in out.values()) == pytest.approx(5.0)
    assert worker_row(state, "w2").state == "running"
    assert worker_row(state, "w2").users == 5


def test_lost_worker_that_reports_comes_back_and_its_reports_are_merged() -> None:
    """Reports from a worker marked lost are never dropped: total equals the sum of reports."""
    state = running_swarm({"w1": 1, "w2": 1}, users=10)
    sent_reports = []

    def send(worker_id: str, requests: int, start: float) -> list[Out]:
        stats = stats_of(requests, name=f"/{worker_id}")
        sent_reports.append(stats)
        return report(state, worker_id, stats, start, start + 1)

    send("w1", 10, T0)
    send("w2", 7, T0)
    for now in (T0 + 2, T0 + 4, T0 + 6):
        send("w1", 10, now - 1)
    tick(state, T0 + 6.5)
    assert worker_row(state, "w2").state == "lost"
    # SIGCONT: the stalled worker flushes the intervals it could not send.
    out = send("w2", 9, T0 + 1)
    assert worker_row(state, "w2").state != "lost"
    assert ident("w2") in spawns(out)
    send("w2", 4, T0 + 2)
    assert state.dropped == 0
    assert state.total == merged(sent_reports)
    assert state.total.total().requests == 10 + 7 + 30 + 9 + 4


def test_lost_worker_is_not_counted_in_users() -> None:
    """Users of a lost worker leave the user count until it says what it runs again."""
    state = running_swarm({"w1": 1, "w2": 1}, users=10)
    beat(state, "w1", T0 + 5, users={"Reader": 5})
    tick(state, T0 + 6.5)
    assert state.user_count() == 5


def test_failed_worker_reason_is_reported_in_the_next_update() -> None:
    """A worker's Failed message reaches the controller in the next update's failures."""
    state = new_state(standalone=True)
    join(state, "w1", T0)
    from_worker(state, "w1", protocol.Failed(worker_id="w1", reason="SyntaxError"), T0)
    command(state, HAIL, T0 + 1)
    (_, update), *_ = updates(tick(state, T0 + 1))
    assert update.failures == [protocol.WorkerFailure(worker="w1", reason="SyntaxError")]
    assert worker_row(state, "w1").error == "SyntaxError"


# --- saturation ------------------------------------------------------------------------


def hot(
    state: MasterState, worker_id: str, now: float, users: dict[str, int], beats: int = 3
) -> list[Out]:
    out: list[Out] = []
    for i in range(beats):
        out += beat(state, worker_id, now + i * 0.1, users=users, cpu=95.0)
    return out


def test_saturated_worker_gets_no_new_users_while_another_has_headroom() -> None:
    """After three beats over 90 % CPU, a larger target goes entirely to the other worker."""
    state = running_swarm({"a": 1, "b": 1}, users=10)
    hot(state, "a", T0 + 2, {"Reader": 5})
    reply, out = command(state, set_targets(users=20), T0 + 3)
    accepted(reply)
    assert {i: s.targets for i, s in spawns(out).items()} == {
        ident("a"): {"Reader": 5},
        ident("b"): {"Reader": 15},
    }
    assert spawns(out)[ident("a")].spawn_rate == 0.0


def test_two_hot_beats_do_not_make_a_worker_saturated() -> None:
    """Saturation needs three consecutive beats over 90 %; two are not enough."""
    state = running_swarm({"a": 1, "b": 1}, users=10)
    hot(state, "a", T0 + 2, {"Reader": 5}, beats=2)
    beat(state, "a", T0 + 2.5, users={"Reader": 5}, cpu=50.0)
    hot(state, "a", T0 + 2.6, {"Reader": 5}, beats=2)
    _, out = command(state, set_targets(users=20), T0 + 3)
    assert [s.targets for s in spawns(out).values()] == [{"Reader": 10}] * 2


def test_cpu_at_exactly_the_threshold_is_not_saturation() -> None:
    """Saturation is CPU strictly above 90 %."""
    state = running_swarm({"a": 1, "b": 1}, users=10)
    for i in range(5):
        beat(state, "a", T0 + 2 + i * 0.1, users={"Reader": 5}, cpu=90.0)
    _, out = command(state, set_targets(users=20), T0 + 3)
    assert [s.targets for s in spawns(out).values()] == [{"Reader": 10}] * 2


def test_becoming_saturated_mid_ramp_stops_new_users_on_that_worker() -> None:
    """A worker that saturates while ramping keeps what it runs; the rest of its share moves."""
    state = new_state(standalone=True)
    join(state, "a", T0)
    join(state, "b", T0)
    load(state, T0)
    start(state, T0, users=10, spawn_rate=2.0)
    out = spawns(hot(state, "a", T0 + 1, {"Reader": 2}))
    assert {i: s.targets for i, s in out.items()} == {
        ident("a"): {"Reader": 2},
        ident("b"): {"Reader": 8},
    }


def test_saturation_is_ignored_when_every_worker_is_saturated() -> None:
    """With no headroom anywhere, users are split by cores as if nobody were saturated."""
    state = running_swarm({"a": 1, "b": 1}, users=10)
    hot(state, "a", T0 + 2, {"Reader": 5})
    hot(state, "b", T0 + 2, {"Reader": 5})
    _, out = command(state, set_targets(users=20), T0 + 3)
    assert [s.targets for s in spawns(out).values()] == [{"Reader": 10}] * 2


def test_a_saturated_worker_that_cools_down_gets_its_share_again() -> None:
    """One beat at or under the threshold ends saturation and re-dispatches by cores."""
    state = running_swarm({"a": 1, "b": 1}, users=10)
    hot(state, "a", T0 + 2, {"Reader": 5})
    command(state, set_targets(users=20), T0 + 3)
    out = spawns(beat(state, "a", T0 + 4, users={"Reader": 5}, cpu=40.0))
    assert {i: s.targets for i, s in out.items()} == {
        ident("a"): {"Reader": 10},
        ident("b"): {"Reader": 10},
    }


def test_saturation_threshold_and_beats_come_from_the_config() -> None:
    """saturated_cpu and saturated_beats in MasterConfig decide when a worker is saturated."""
    state = running_swarm({"a": 1, "b": 1}, users=10, saturated_cpu=50.0, saturated_beats=5)
    hot(state, "a", T0 + 2, {"Reader": 5}, beats=4)
    _, out = command(state, set_targets(users=20), T0 + 3)
    assert [s.targets for s in spawns(out).values()] == [{"Reader": 10}] * 2
    beat(state, "a", T0 + 4, users={"Reader": 10}, cpu=60.0)  # the fifth hot beat
    _, out = command(state, set_targets(users=30), T0 + 5)
    assert {i: s.targets for i, s in spawns(out).items()} == {
        ident("a"): {"Reader": 10},
        ident("b"): {"Reader": 20},
    }


# --- reports and updates ---------------------------------------------------------------


def test_report_is_merged_into_total_and_the_next_update() -> None:
    """A report's delta reaches the total and the next update; the update after is empty."""
    state = running_swarm({"w1": 1}, users=2)
    delta = stats_of(12)
    command(state, HAIL, T0 + 1.5)
    report(state, "w1", delta, T0 + 1, T0 + 1.5)
    assert state.total == delta
    (_, update), *_ = updates(tick(state, T0 + 2))
    assert RequestStats.from_wire(update.stats) == delta
    (_, update), *_ = updates(tick(state, T0 + 3))
    assert RequestStats.from_wire(update.stats).is_empty()
    assert state.total == delta


def test_report_sets_the_worker_rps() -> None:
    """A worker's rps is its last report's requests over the report's span."""
    state = running_swarm({"w1": 1}, users=2)
    report(state, "w1", stats_of(10), T0 + 1, T0 + 3)
    assert worker_row(state, "w1").rps == 5.0


def test_update_deltas_add_up_to_the_total_exactly() -> None:
    """Over many reports from several workers, the sum of all update deltas equals total."""
    state = running_swarm({"w1": 1, "w2": 2, "w3": 1}, users=8)
    reports = []
    deltas = RequestStats()
    for second in range(1, 12):
        now = T0 + second
        command(state, HAIL, now)
        for n, worker_id in enumerate(("w1", "w2", "w3")):
            if (second + n) % 3:
                stats = stats_of(second + n, name=f"/page/{second % 4}", latency_ns=n * 10**6)
                stats.record_exception(ValueError(f"bad {n}"))
                reports.append(stats)
                report(state, worker_id, stats, now - 1 + n * 0.1, now - 0.5 + n * 0.1)
        for _, update in updates(tick(state, now + 0.25)):
            deltas.merge(RequestStats.from_wire(update.stats))
    (_, last), *_ = updates(state.update(T0 + 20))
    deltas.merge(RequestStats.from_wire(last.stats))
    assert deltas == state.total == merged(reports)
    assert state.total.errors
    assert state.total.exceptions


STATS = RequestStats()
STATS.record_request("GET", "/", 1_000_000, 10, None)
GOOD_ENDPOINT = STATS.to_wire()["e"][0][2]


@pytest.mark.parametrize(
    "stats",
    [
        {},
        {"e": 5, "err": [], "exc": []},
        {"e": [["GET", "/"]], "err": [], "exc": []},
        {"e": [["GET", "/", {"r": 1}]], "err": [], "exc": []},
        {"e": [["GET", "/", {**GOOD_ENDPOINT, "r": "many"}]], "err": [], "exc": []},
        {"e": [["GET", "/", {**GOOD_ENDPOINT, "r": math.inf}]], "err": [], "exc": []},
        {"e": [["GET", "/", {**GOOD_ENDPOINT, "h": []}]], "err": [], "exc": []},
        {"e": [["GET", "/", {**GOOD_ENDPOINT, "h": {**GOOD_ENDPOINT["h"], "b": 7}}]]},
        {"e": [["GET", "/", GOOD_ENDPOINT], ["GET", "/x", {"r": 1}]], "err": [], "exc": []},
        {"e": [["GET", "/", GOOD_ENDPOINT]], "err": [["GET", "/", "503", None]], "exc": []},
        {"e": [["GET", "/", GOOD_ENDPOINT]], "err": [], "exc": 7},
    ],
    ids=[
        "empty",
        "endpoints-not-a-list",
        "endpoint-short",
        "endpoint-without-counts",
        "requests-text",
        "requests-infinite",
        "histogram-a-list",
        "buckets-not-a-map",
        "second-endpoint-bad",
        "error-count-nil",
        "exceptions-not-a-list",
    ],
)
def test_malformed_stats_in_a_report_are_dropped_without_raising(stats: dict[str, Any]) -> None:
    """A report whose stats do not parse is counted as dropped and nothing of it is merged."""
    state = running_swarm({"w1": 1}, users=2)
    message = protocol.Report(worker_id="w1", seq=1, start=T0 + 1, end=T0 + 2, stats=stats)
    assert state.on_worker(ident("w1"), wire(message), T0 + 2) == []
    assert state.dropped == 1
    assert state.total.is_empty()
    assert state.pending.is_empty()


def test_updates_go_once_per_interval_to_recent_controllers_with_increasing_seq() -> None:
    """Updates leave at each whole update_interval of the clock (plus update_delay), only to
    controllers heard within the timeout."""
    state = new_state(
        update_interval=1.0, update_delay=0.0, controller_timeout=15.0, standalone=True
    )
    command(state, HAIL, T0, peer=b"old")
    command(state, HAIL, T0, peer=b"new")
    assert updates(tick(state, T0 + 0.5)) == []
    first = updates(tick(state, T0 + 1.0))
    assert [peer for peer, _ in first] == [b"old", b"new"]
    assert first[0][1] is first[1][1]
    assert updates(tick(state, T0 + 1.9)) == []
    second = updates(tick(state, T0 + 2.0))
    assert second[0][1].seq > first[0][1].seq
    assert second[0][1].start == first[0][1].end == T0 + 1.0
    assert second[0][1].time == second[0][1].end == T0 + 2.0
    command(state, HAIL, T0 + 15.5, peer=b"new")
    late = updates(tick(state, T0 + 15.5))
    assert [peer for peer, _ in late] == [b"new"]
    assert late[0][1].seq > second[0][1].seq


def test_updates_wait_update_delay_after_the_second() -> None:
    """With update_delay, the periodic update leaves that long after each whole second, when
    the workers' reports for the second (sent on the second) are in."""
    state = new_state(update_interval=1.0, update_delay=0.3, standalone=True)
    command(state, HAIL, T0 + 0.1)
    assert updates(tick(state, T0 + 0.29)) == []
    assert len(updates(tick(state, T0 + 0.3))) == 1
    assert updates(tick(state, T0 + 1.2)) == []
    assert len(updates(tick(state, T0 + 1.31))) == 1


def test_update_payload_describes_the_swarm() -> None:
    """An update says the state, users, targets, per-worker rows and the drop count."""
    state = running_swarm({"w1": 1, "w2": 1}, users=6, spawn_rate=2.0)
    beat(state, "ghost", T0 + 1)
    command(state, HAIL, T0 + 2)
    (_, update), *_ = updates(tick(state, T0 + 2))
    assert (update.state, update.users, update.target_users) == ("running", 6, 6)
    assert update.spawn_rate == 2.0
    assert (update.rate, update.max_users) == (None, None)
    assert [w.id for w in update.workers] == ["w1", "w2"]
    assert update.dropped == 1
    assert update.lost == update.failures == []


# --- stop, quit, controller timeout ----------------------------------------------------


def test_stop_tells_every_live_worker_and_waits_for_all_to_stop() -> None:
    """stop sends Stop to each live worker; the swarm is stopped once every one said Stopped."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    reply, out = command(state, STOP, T0 + 2)
    assert accepted(reply).state == "stopping"
    assert sent(out, protocol.Stop) == [
        (ident("w1"), protocol.Stop(timeout=None, stop_id=1)),
        (ident("w2"), protocol.Stop(timeout=None, stop_id=1)),
    ]
    assert state.state == "stopping"
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 3)
    assert state.state == "stopping"
    from_worker(state, "w2", protocol.Stopped(worker_id="w2"), T0 + 3)
    assert state.state == "stopped"
    assert state.user_count() == 0


def test_reports_flushed_before_stopped_are_in_the_total() -> None:
    """A graceful stop loses nothing: the last deltas before Stopped are merged."""
    state = running_swarm({"w1": 1}, users=4)
    command(state, STOP, T0 + 2)
    report(state, "w1", stats_of(6), T0 + 1, T0 + 2.1)
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 2.1)
    assert state.state == "stopped"
    assert state.total.total().requests == 6


def test_a_lost_worker_does_not_block_the_stop() -> None:
    """A worker lost while stopping is not waited for; the others' Stopped suffice."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    command(state, STOP, T0 + 2)
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 3)
    assert state.state == "stopping"
    tick(state, T0 + 6.5)
    assert state.state == "stopped"


def test_a_worker_lost_before_the_stop_gets_no_stop() -> None:
    """Stop goes to live workers only, and the swarm stops when those have stopped."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    beat(state, "w1", T0 + 5, users={"Reader": 2})
    tick(state, T0 + 6.5)
    _, out = command(state, STOP, T0 + 7)
    assert [identity for identity, _ in sent(out, protocol.Stop)] == [ident("w1")]
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 7.5)
    assert state.state == "stopped"


def test_a_heartbeat_saying_stopped_does_not_end_the_stop_before_the_last_report() -> None:
    """A heartbeat (its own connection) that says "stopped" ahead of the worker's last
    report leaves the swarm stopping; the report, then Stopped, end it with nothing lost."""
    state = running_swarm({"w1": 1}, users=4)
    command(state, STOP, T0 + 2)
    beat(state, "w1", T0 + 8, users={}, run="stopped")  # overtook 15 queued reports
    assert state.state == "stopping"
    report(state, "w1", stats_of(71), T0 + 1, T0 + 8.2)
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 8.2)
    assert state.state == "stopped"
    assert state.total.total().requests == 71


def test_a_heartbeat_sent_before_the_stop_does_not_undo_a_stopped_worker() -> None:
    """A heartbeat saying "running" that arrives after the worker's Stopped leaves it
    stopped, so the swarm stops when the other worker does."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    command(state, STOP, T0 + 2)
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 3)
    beat(state, "w1", T0 + 3.1, users={"Reader": 2}, run="running")
    from_worker(state, "w2", protocol.Stopped(worker_id="w2"), T0 + 3.2)
    assert state.state == "stopped"
    assert worker_row(state, "w1").state == "stopped"


def test_a_worker_back_from_a_partition_during_the_stop_is_stopped_and_waited_for() -> None:
    """A worker lost before the stop that comes back while the swarm stops is sent Stop
    (it missed it, and its users still run), and the stop waits for its last report."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    beat(state, "w1", T0 + 5, users={"Reader": 2})
    tick(state, T0 + 6.5)  # w2 lost
    command(state, STOP, T0 + 7)
    out = beat(state, "w2", T0 + 7.5, users={"Reader": 2}, run="running")
    assert [identity for identity, _ in sent(out, protocol.Stop)] == [ident("w2")]
    assert spawns(out) == {}
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 8)
    assert state.state == "stopping"
    report(state, "w2", stats_of(9), T0 + 1, T0 + 8.5)
    from_worker(state, "w2", protocol.Stopped(worker_id="w2"), T0 + 8.5)
    assert state.state == "stopped"
    assert state.total.total().requests == 9


def test_a_worker_back_from_a_partition_after_the_stop_is_stopped() -> None:
    """A worker that comes back after the swarm stopped without it is sent Stop."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    beat(state, "w1", T0 + 5, users={"Reader": 2})
    tick(state, T0 + 6.5)
    command(state, STOP, T0 + 7)
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 7.5)
    assert state.state == "stopped"
    out = beat(state, "w2", T0 + 9, users={"Reader": 2}, run="running")
    assert [identity for identity, _ in sent(out, protocol.Stop)] == [ident("w2")]


def test_stops_are_numbered_and_a_missed_stop_is_sent_again_with_its_number() -> None:
    """Each stop has a new stop_id; the copy a late worker gets carries the same id, so a
    worker can tell a stop it has finished from a new one (engine/stuck.py)."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    beat(state, "w1", T0 + 5, users={"Reader": 2})
    tick(state, T0 + 6.5)  # w2 lost
    first = sent(command(state, STOP, T0 + 7)[1], protocol.Stop)
    assert [m.stop_id for _, m in first] == [1]
    out = beat(state, "w2", T0 + 7.5, users={"Reader": 2}, run="running")
    assert [m.stop_id for _, m in sent(out, protocol.Stop)] == [1]
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 8)
    from_worker(state, "w2", protocol.Stopped(worker_id="w2"), T0 + 8)
    command(state, protocol.StartSwarm(targets=protocol.Targets(users=2, spawn_rate=10)), T0 + 9)
    second = sent(command(state, STOP, T0 + 10)[1], protocol.Stop)
    assert [m.stop_id for _, m in second] == [2, 2]


def test_stop_when_nothing_runs_changes_nothing() -> None:
    """stop before any start replies with the current state and sends nothing."""
    state = new_state()
    join(state, "w1", T0)
    reply, out = command(state, STOP, T0)
    assert accepted(reply).state == "ready"
    assert out == [] and state.state == "ready"


def test_quit_tells_every_worker_to_quit_and_asks_the_master_to_exit() -> None:
    """quit sends Quit to every worker and sets exit_requested."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    reply, out = command(state, protocol.QuitMaster(), T0 + 2)
    accepted(reply)
    assert sent(out, protocol.Quit) == [
        (ident("w1"), protocol.Quit()),
        (ident("w2"), protocol.Quit()),
    ]
    assert state.exit_requested


def test_silent_controller_makes_the_master_quit_everything() -> None:
    """Without standalone, silence longer than controller_timeout sends Quit to every worker."""
    state = new_state(controller_timeout=15.0, heartbeat_timeout=100.0)
    join(state, "w1", T0)
    join(state, "w2", T0)
    assert sent(tick(state, T0 + 15.0), protocol.Quit) == []
    assert not state.exit_requested
    out = tick(state, T0 + 15.5)
    assert sent(out, protocol.Quit) == [
        (ident("w1"), protocol.Quit()),
        (ident("w2"), protocol.Quit()),
    ]
    assert state.exit_requested


def test_any_controller_message_resets_the_controller_clock() -> None:
    """A command from the controller postpones the timeout by a whole controller_timeout."""
    state = new_state(controller_timeout=15.0, heartbeat_timeout=100.0)
    join(state, "w1", T0)
    command(state, HAIL, T0 + 10, peer=b"notebook")
    assert sent(tick(state, T0 + 20), protocol.Quit) == []
    state.on_control(b"notebook", protocol.Ping(now=0.0), T0 + 24)
    assert sent(tick(state, T0 + 39), protocol.Quit) == []
    assert not state.exit_requested
    assert sent(tick(state, T0 + 39.5), protocol.Quit) == [(ident("w1"), protocol.Quit())]
    assert state.exit_requested


def test_standalone_master_never_quits_for_a_silent_controller() -> None:
    """With standalone=True the controller timeout never fires."""
    state = new_state(controller_timeout=15.0, heartbeat_timeout=100.0, standalone=True)
    join(state, "w1", T0)
    for now in (T0 + 16, T0 + 60, T0 + 3600):
        assert sent(tick(state, now), protocol.Quit) == []
    assert not state.exit_requested


# --- swarm states ----------------------------------------------------------------------


def test_swarm_goes_ready_spawning_running_stopping_stopped() -> None:
    """The swarm runs only when users equal the target and every live worker says running."""
    state = new_state(standalone=True)
    join(state, "w1", T0)
    join(state, "w2", T0)
    load(state, T0)
    assert state.state == "ready"
    start(state, T0, users=10)
    assert state.state == "spawning"
    beat(state, "w1", T0 + 1, users={"Reader": 5}, run="running")
    beat(state, "w2", T0 + 1, users={"Reader": 4}, run="spawning")
    assert state.state == "spawning"
    beat(state, "w2", T0 + 2, users={"Reader": 5}, run="spawning")
    assert state.state == "spawning"
    beat(state, "w2", T0 + 2.5, users={"Reader": 5}, run="running")
    assert state.state == "running"
    command(state, STOP, T0 + 3)
    assert state.state == "stopping"
    beat(state, "w1", T0 + 3.5, users={"Reader": 5}, run="running")
    assert state.state == "stopping"
    for worker_id in ("w1", "w2"):
        from_worker(state, worker_id, protocol.Stopped(worker_id=worker_id), T0 + 4)
    assert state.state == "stopped"


def test_a_stopped_swarm_can_start_again() -> None:
    """start after a stop spawns the same users afresh."""
    state = running_swarm({"w1": 1}, users=3)
    command(state, STOP, T0 + 2)
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 3)
    out = start(state, T0 + 4, users=3)
    assert {i: s.targets for i, s in spawns(out).items()} == {ident("w1"): {"Reader": 3}}
    assert state.state == "spawning"


def test_starting_zero_users_runs_at_once_when_workers_say_running() -> None:
    """A target of zero users is reached as soon as every live worker reports running."""
    state = new_state(standalone=True)
    join(state, "w1", T0)
    load(state, T0)
    out = start(state, T0, users=0)
    assert [s.targets for s in spawns(out).values()] == [{"Reader": 0}]
    beat(state, "w1", T0 + 1, users={"Reader": 0}, run="running")
    assert state.state == "running"


def test_set_on_a_stopped_swarm_records_without_starting() -> None:
    """set while stopped changes the targets but sends nothing and stays stopped."""
    state = new_state(standalone=True)
    join(state, "w1", T0)
    load(state, T0)
    command(state, start_swarm(users=4, spawn_rate=2.0), T0)
    command(state, STOP, T0 + 1)
    beat(state, "w1", T0 + 1.5, users={}, run="stopped")
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 1.6)
    assert state.state == "stopped"
    reply, out = command(state, set_targets(users=10), T0 + 2)
    assert accepted(reply).state == "stopped"
    assert spawns(out) == {}
    assert state.state == "stopped" and state.target_users == 10


def test_a_worker_sent_new_targets_is_not_settled_until_it_reports() -> None:
    """After a dispatch the master counts a worker as spawning, so a stop right after a start
    waits for that worker's Stopped instead of trusting its earlier 'stopped'."""
    state = new_state(standalone=True)
    join(state, "w1", T0)
    load(state, T0)
    command(state, start_swarm(users=2, spawn_rate=2.0), T0)
    command(state, STOP, T0 + 0.1)
    assert state.state == "stopping"


def test_arrival_rate_is_split_over_workers_by_cores() -> None:
    """start(rate=...) sends each worker a Pace with its share of the rate, the pool and the
    backlog in proportion to its cores; set(rate=...) sends new shares at once."""
    state = new_state(standalone=True)
    join(state, "one", T0, cores=1)
    join(state, "two", T0, cores=2)
    load(state, T0)
    reply, out = command(state, start_swarm(rate=300.0, max_users=30, arrivals="poisson"), T0)
    assert accepted(reply).rate == 300.0
    paces = {identity: m for _, identity, m in out if isinstance(m, protocol.Pace)}
    assert {k: (p.rate, p.max_users, p.max_backlog, p.poisson) for k, p in paces.items()} == {
        ident("one"): (100.0, 10, 200, True),
        ident("two"): (200.0, 20, 400, True),
    }
    reply, out = command(state, set_targets(rate=30.0), T0 + 1)
    paces = {identity: m for _, identity, m in out if isinstance(m, protocol.Pace)}
    assert [p.rate for p in paces.values()] == [10.0, 20.0]
    assert len({p.generation for p in paces.values()}) == 1


def test_bad_arrival_settings_cannot_cross_the_wire() -> None:
    """A negative rate, a pool under 1 or an unknown arrival kind is refused by encode with
    its value, before any frame leaves."""
    for targets, needle in (
        ({"rate": -1.0, "max_users": 5}, "rate: expected .*, got float -1.0"),
        ({"rate": 10.0, "max_users": 0}, "max_users: expected int >= 1 or nil, got int 0"),
        ({"rate": 10.0, "max_users": 5, "arrivals": "bursty"}, "arrivals: .*got str 'bursty'"),
    ):
        with pytest.raises(protocol.ProtocolError, match=f"start_swarm.targets.{needle}"):
            protocol.encode(start_swarm(**targets))


def test_the_open_model_without_a_pool_or_with_an_absurd_rate_is_refused() -> None:
    """The master refuses an arrival rate with no max_users yet, or beyond 1e7 a second."""
    state = new_state(standalone=True)
    join(state, "w1", T0)
    load(state, T0)
    for targets, needle in (
        ({"rate": 10.0}, "needs max_users="),
        ({"rate": 2e7, "max_users": 5}, "rate 2e+07 is beyond any swarm"),
    ):
        reply, out = command(state, start_swarm(**targets), T0)
        assert needle in refusal(reply)
        assert out == [] and state.state == "ready" and state.arrivals is None


# --- a controller whose link dropped; a service its controllers left -------------------


def test_replay_resends_the_updates_after_a_seq_and_nothing_else() -> None:
    """Replay(after=n) is answered, then followed by every kept update with seq > n, in order."""
    state = new_state()
    command(state, HAIL, T0)
    sent_updates = [u for t in range(1, 6) for _, u in updates(tick(state, T0 + t + 0.5))]
    assert [u.seq for u in sent_updates] == [0, 1, 2, 3, 4]
    reply, rest = command(state, protocol.Replay(after=2), T0 + 6)
    assert reply.refusal is None
    assert [m for _, _, m in rest] == sent_updates[3:]


def test_replay_keeps_only_the_configured_number_of_updates() -> None:
    """The master keeps replay_updates updates: older ones are gone for good."""
    state = new_state(replay_updates=2)
    command(state, HAIL, T0)
    for t in range(1, 6):
        tick(state, T0 + t + 0.5)
    _, rest = command(state, protocol.Replay(after=0), T0 + 6)
    assert [m.seq for _, _, m in rest] == [3, 4]


def test_a_standalone_master_stops_the_swarm_once_its_controllers_left() -> None:
    """Standalone, past controller_timeout without a controller, the swarm is stopped (once)
    and the master keeps serving; a controller coming back can start it again."""
    state = new_state(standalone=True, controller_timeout=5.0, heartbeat_timeout=60.0)
    join(state, "w1", T0)
    load(state, T0)
    start(state, T0, users=2)
    out = tick(state, T0 + 4.0)
    assert not sent(out, protocol.Stop)
    out = tick(state, T0 + 6.0)
    assert [ident_ for ident_, _ in sent(out, protocol.Stop)] == [ident("w1")]
    assert state.state == "stopping" and not state.exit_requested
    assert not sent(tick(state, T0 + 7.0), protocol.Stop)  # once


def test_stop_and_quit_reach_the_heartbeat_thread_too() -> None:
    """Stop and Quit also go to each worker's heartbeat socket ("<id>/hb"), which a worker
    whose users never yield still reads; nothing else does."""
    state = new_state()
    join(state, "w1", T0)
    load(state, T0)
    out = start(state, T0, users=1)
    assert not [m for _, identity, m in out if identity.endswith(b"/hb")]
    _, out = command(state, STOP, T0 + 1)
    assert [(i, type(m)) for _, i, m in out] == [
        (ident("w1"), protocol.Stop),
        (b"w1/hb", protocol.Stop),
    ]
    out = state.quit_all()
    assert [(i, type(m)) for _, i, m in out] == [
        (ident("w1"), protocol.Quit),
        (b"w1/hb", protocol.Quit),
    ]


# --- request names -------------------------------------------------------------------


def test_many_names_are_warned_about_once_naming_their_pattern() -> None:
    """Past warn_names distinct names the next update warns once, naming the pattern most of
    them share; more reports with more names add no second warning."""
    state = running_swarm({"w1": 1}, users=1, warn_names=20)
    stats = RequestStats()
    for i in range(25):
        stats.record_request("GET", f"/item/{i}", 1_000_000, 10, None)
    report(state, "w1", stats, T0 + 1, T0 + 2)
    more = RequestStats()
    for i in range(25, 40):
        more.record_request("GET", f"/item/{i}", 1_000_000, 10, None)
    report(state, "w1", more, T0 + 2, T0 + 3)
    [(_, update)] = updates(tick(state, T0 + 5))
    [warning] = update.warnings
    assert warning.startswith("25 distinct request names so far; most share the pattern ")
    assert "name='/item/{n}'" in warning
    report(state, "w1", stats_of(3), T0 + 3, T0 + 4)
    assert [u.warnings for _, u in updates(tick(state, T0 + 7))] == [[]]
