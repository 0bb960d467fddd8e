"""The master's decisions as a pure state machine: messages and time in, messages out.

No sockets and no sleeps: time is the ``now`` each call is given. Every message the state
machine returns is encoded with the real protocol, so a decision that could not be sent
fails here rather than in the master process.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from notebookswarm.cluster import protocol
from notebookswarm.cluster.dispatch import split_rate
from notebookswarm.cluster.master_state import MasterConfig, MasterState, Out
from notebookswarm.stats.requests import RequestStats

T0 = 1000.0
CTL = b"controller"
ONE_CLASS = [{"name": "Reader", "weight": 1, "fixed_count": 0}]
TWO_CLASSES = [
    {"name": "Reader", "weight": 2, "fixed_count": 0},
    {"name": "Writer", "weight": 1, "fixed_count": 0},
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
    hello = protocol.Hello(worker_id=worker_id, host="gen", pid=42, cores=cores, version="0")
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
    state: MasterState, name: str, now: float, peer: bytes = CTL, **args: Any
) -> tuple[protocol.ControlReply, list[Out]]:
    """Run a control command; return its reply and the rest of what the master sends."""
    message = protocol.Control(command=name, args=args, request_id=7)
    out = sendable(state.on_control(peer, wire(message), now))
    (channel, identity, reply), *rest = out
    assert (channel, identity) == ("control", peer)
    assert isinstance(reply, protocol.ControlReply)
    assert reply.request_id == 7
    return reply, rest


def load(state: MasterState, now: float, classes: list[dict[str, Any]] = ONE_CLASS) -> list[Out]:
    reply, out = command(
        state,
        "load",
        now,
        payload=b"class Reader: ...",
        fmt="source",
        classes=classes,
        host="http://target",
        options={"stop_timeout": 2.0},
    )
    assert reply.ok, reply.error
    return out


def start(state: MasterState, now: float, users: int, spawn_rate: float = 10.0) -> list[Out]:
    reply, out = command(state, "start", now, users=users, spawn_rate=spawn_rate)
    assert reply.ok, reply.error
    return out


def refusal(reply: protocol.ControlReply) -> str:
    """The error of a reply that must say ok=False and why."""
    assert not reply.ok
    assert reply.error
    assert reply.result == {}
    return reply.error


def tick(state: MasterState, now: float) -> list[Out]:
    return sendable(state.tick(now))


def spawns(out: list[Out]) -> dict[bytes, protocol.Spawn]:
    """The Spawn messages of ``out`` by identity (at most one each)."""
    found = [(identity, m) for _, identity, m in out if isinstance(m, protocol.Spawn)]
    assert len({identity for identity, _ in found}) == len(found)
    return dict(found)


def sent(out: list[Out], kind: type) -> list[tuple[bytes, Any]]:
    return [(identity, m) for _, identity, m in out if isinstance(m, kind)]


def updates(out: list[Out]) -> list[tuple[bytes, protocol.Update]]:
    return sent(out, protocol.Update)


def worker_row(state: MasterState, worker_id: str) -> dict[str, Any]:
    reply, _ = command(state, "status", state.last_controller)
    (row,) = [w for w in reply.result["workers"] if w["id"] == worker_id]
    assert isinstance(row, dict)
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
    assert worker_row(state, "w1") | {"last_seen": None} == {
        "id": "w1",
        "host": "gen",
        "pid": 42,
        "cores": 4,
        "state": "ready",
        "users": 0,
        "cpu_percent": 0.0,
        "loop_lag": 0.0,
        "rps": 0.0,
        "last_seen": None,
        "error": None,
        "overloaded": False,
    }


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
    reply, _ = command(state, "start", T0, users=60, spawn_rate=6.0)
    assert reply.result["targets"] == {"Reader": 40, "Writer": 20}
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
    reply, out = command(state, "start", T0, users=90, spawn_rate=7.0)
    assert reply.ok and reply.result == {
        "targets": {"Reader": 60, "Writer": 30},
        "workers": 3,
        "state": "spawning",
    }
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
        protocol.Hello(worker_id="w1", host="gen", pid=43, cores=1, version="0"),
        T0 + 2,
    )
    reply, _ = command(state, "status", T0 + 2)
    assert [w["id"] for w in reply.result["workers"]] == ["w1", "w2"]
    assert ident("w1-new") in spawns(out)
    assert ident("w1") not in spawns(out)
    assert sum(sum(s.targets.values()) for s in spawns(out).values()) == 10


def test_goodbye_moves_the_users_at_once_without_a_lost_interval() -> None:
    """A worker that says goodbye is forgotten and its users go to the others immediately."""
    state = running_swarm({"w1": 1, "w2": 1}, users=10)
    out = from_worker(state, "w2", protocol.Goodbye(worker_id="w2"), T0 + 2)
    assert {i: s.targets for i, s in spawns(out).items()} == {ident("w1"): {"Reader": 10}}
    command(state, "ping", T0 + 2)
    (_, update), *_ = updates(tick(state, T0 + 2))
    assert update.payload["lost"] == []
    assert [w["id"] for w in update.payload["workers"]] == ["w1"]


# --- control commands ------------------------------------------------------------------


def test_load_ships_the_code_to_every_worker() -> None:
    """load replies with the class names and sends the Code to every worker already joined."""
    state = new_state()
    join(state, "w1", T0)
    join(state, "w2", T0)
    reply, out = command(
        state,
        "load",
        T0,
        payload=b"\x80pickle",
        fmt="pickle",
        classes=TWO_CLASSES,
        host=None,
        options={},
    )
    assert reply.ok and reply.error is None
    assert reply.result == {"classes": ["Reader", "Writer"]}
    code = protocol.Code(
        payload=b"\x80pickle", fmt="pickle", classes=["Reader", "Writer"], host=None, options={}
    )
    assert out == [("worker", ident("w1"), code), ("worker", ident("w2"), code)]


def test_load_is_refused_while_the_swarm_runs() -> None:
    """load during a run replies ok=False saying to stop first, and ships nothing."""
    state = running_swarm({"w1": 1}, users=5)
    reply, out = command(
        state,
        "load",
        T0 + 2,
        payload=b"new",
        fmt="source",
        classes=ONE_CLASS,
        host=None,
        options={},
    )
    assert "stop" in refusal(reply)
    assert out == []
    assert state.code is not None and state.code.message.payload == b"class Reader: ..."


def test_load_is_accepted_again_once_the_swarm_stopped() -> None:
    """After a stop, new code can be loaded and reaches the workers."""
    state = running_swarm({"w1": 1}, users=5)
    command(state, "stop", T0 + 2)
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 3)
    assert state.state == "stopped"
    out = load(state, T0 + 4)
    assert [(i, type(m)) for _, i, m in out] == [(ident("w1"), protocol.Code)]


def test_load_without_classes_is_refused() -> None:
    """load with an empty class list replies ok=False asking for a User subclass."""
    state = new_state()
    reply, out = command(
        state, "load", T0, payload=b"", fmt="source", classes=[], host=None, options={}
    )
    assert "User subclass" in refusal(reply)
    assert out == [] and state.code is None


@pytest.mark.parametrize("name", ["start", "set"])
@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"users": -1, "spawn_rate": 1.0}, "-1"),
        ({"users": "10", "spawn_rate": 1.0}, "'10'"),
        ({"users": 2.5, "spawn_rate": 1.0}, "2.5"),
        ({"users": True, "spawn_rate": 1.0}, "True"),
        ({"users": 10, "spawn_rate": 0}, "spawn_rate"),
        ({"users": 10, "spawn_rate": 0.0}, "0.0"),
        ({"users": 10, "spawn_rate": -3.0}, "-3.0"),
        ({"users": 10, "spawn_rate": "fast"}, "'fast'"),
        ({"users": 10, "spawn_rate": math.inf}, "inf"),
        ({"users": 10, "spawn_rate": None}, "None"),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else "",
)
def test_start_and_set_refuse_bad_values_naming_them(
    name: str, args: dict[str, Any], named: str
) -> None:
    """start/set with a bad users or spawn_rate reply ok=False naming the value; nothing changes."""
    state = new_state()
    join(state, "w1", T0)
    load(state, T0)
    reply, out = command(state, name, T0, **args)
    assert named in refusal(reply)
    assert out == []
    assert state.state == "ready"
    assert state.target_users == 0


@pytest.mark.parametrize("name", ["start", "set"])
def test_start_without_code_is_refused(name: str) -> None:
    """start/set before any load reply ok=False saying to load user classes first."""
    state = new_state()
    join(state, "w1", T0)
    reply, out = command(state, name, T0, users=10, spawn_rate=1.0)
    assert "no user code loaded" in refusal(reply)
    assert out == [] and state.state == "ready"


def test_start_with_more_users_than_fixed_classes_allow_is_refused() -> None:
    """start asking for more users than fixed counts give, with no weighted class, is refused."""
    state = new_state()
    load(state, T0, classes=[{"name": "Admin", "weight": 0, "fixed_count": 2}])
    reply, out = command(state, "start", T0, users=5, spawn_rate=1.0)
    assert "5 users" in refusal(reply)
    assert out == [] and state.state == "ready"


def test_set_changes_the_targets_of_a_running_swarm() -> None:
    """set on a running swarm re-dispatches the new count and goes back to spawning."""
    state = running_swarm({"w1": 1, "w2": 1}, users=10, spawn_rate=4.0)
    reply, out = command(state, "set", T0 + 2, users=30)
    assert reply.ok
    assert {i: s.targets for i, s in spawns(out).items()} == {
        ident("w1"): {"Reader": 15},
        ident("w2"): {"Reader": 15},
    }
    assert sum(s.spawn_rate for s in spawns(out).values()) == 4.0
    assert state.state == "spawning"


def test_unknown_command_lists_the_known_ones() -> None:
    """An unknown command replies ok=False naming it and every command the master knows."""
    state = new_state()
    reply, out = command(state, "launch", T0)
    error = refusal(reply)
    assert "'launch'" in error
    for known in ("load", "ping", "quit", "reset", "set", "start", "status", "stop"):
        assert f"'{known}'" in error
    assert out == []


LOAD: dict[str, Any] = {
    "payload": b"x",
    "fmt": "source",
    "classes": ONE_CLASS,
    "host": None,
    "options": {},
}


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("load", {}),
        ("load", {**LOAD, "classes": 5}),
        ("load", {**LOAD, "classes": ["Reader"]}),
        ("load", {**LOAD, "classes": [{"name": "Reader"}]}),
        ("load", {**LOAD, "classes": [{"name": "Reader", "weight": "heavy", "fixed_count": 0}]}),
        ("load", {**LOAD, "classes": [{"name": "Reader", "weight": None, "fixed_count": 0}]}),
        ("load", {**LOAD, "classes": [{"name": "Reader", "weight": math.inf, "fixed_count": 0}]}),
        ("load", {key: value for key, value in LOAD.items() if key != "fmt"}),
        ("load", {**LOAD, "fmt": "exe"}),
        ("load", {**LOAD, "payload": "text"}),
        ("load", {**LOAD, "payload": 3}),
        ("load", {**LOAD, "host": 8080}),
        ("load", {**LOAD, "options": "ab"}),
        ("load", {**LOAD, "options": [[1, 2]]}),
        ("stop", {"timeout": "soon"}),
        ("stop", {"timeout": -1.0}),
        ("stop", {"timeout": math.nan}),
    ],
    ids=[
        "load-nothing",
        "classes-not-a-list",
        "class-not-a-map",
        "class-without-weight",
        "weight-text",
        "weight-nil",
        "weight-infinite",
        "without-fmt",
        "unknown-fmt",
        "payload-text",
        "payload-int",
        "host-int",
        "options-text",
        "options-int-keys",
        "stop-timeout-text",
        "stop-timeout-negative",
        "stop-timeout-nan",
    ],
)
def test_malformed_arguments_are_refused_without_raising(name: str, args: dict[str, Any]) -> None:
    """Missing keys or wrong types in a command's args give ok=False and nothing unsendable."""
    state = running_swarm({"w1": 1}, users=5) if name == "stop" else new_state()
    before = (state.state, state.code)
    reply, out = command(state, name, T0 + 2, **args)
    assert refusal(reply)
    assert out == []
    assert (state.state, state.code) == before


def test_stop_with_a_timeout_passes_it_to_the_workers() -> None:
    """stop timeout=5 sends Stop(timeout=5.0) to every live worker."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    reply, out = command(state, "stop", T0 + 2, timeout=5)
    assert reply.ok
    assert sent(out, protocol.Stop) == [
        (ident("w1"), protocol.Stop(timeout=5.0)),
        (ident("w2"), protocol.Stop(timeout=5.0)),
    ]


def test_a_frame_that_is_not_a_command_on_the_control_socket_is_dropped() -> None:
    """A non-Control message from a controller is counted as dropped and answered by nothing."""
    state = new_state()
    out = state.on_control(CTL, protocol.Ping(now=1.0), T0)
    assert out == []
    assert state.dropped == 1


def test_ping_and_status_describe_the_swarm() -> None:
    """ping gives the state and users; status adds targets, totals, workers and drops."""
    state = running_swarm({"w1": 1, "w2": 1}, users=6, spawn_rate=3.0)
    report(state, "w1", stats_of(4), T0 + 1, T0 + 2)
    reply, out = command(state, "ping", T0 + 2)
    assert reply.ok and out == []
    assert reply.result == {"state": "running", "users": 6}
    reply, out = command(state, "status", T0 + 2)
    result = reply.result
    assert (result["state"], result["users"], result["target_users"]) == ("running", 6, 6)
    assert result["spawn_rate"] == 3.0
    assert RequestStats.from_wire(result["stats"]).total().requests == 4
    assert [w["id"] for w in result["workers"]] == ["w1", "w2"]
    assert (result["dropped"], result["started"]) == (0, T0)


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
    assert (row["state"], row["users"], row["cpu_percent"]) == ("spawning", 2, 55.5)
    assert (row["loop_lag"], row["last_seen"]) == (0.001, T0 + 1)
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
    """A worker sending a kind only the master sends (Welcome, Control) is counted as dropped."""
    state = new_state()
    welcome = protocol.Welcome(
        worker_id="w1", heartbeat_interval=1.0, master_timeout=1.0, report_interval=1.0
    )
    assert state.on_worker(ident("w1"), welcome, T0) == []
    control = protocol.Control(command="quit", args={}, request_id=0)
    assert state.on_worker(ident("w1"), control, T0) == []
    assert state.dropped == 2
    assert not state.exit_requested


# --- liveness --------------------------------------------------------------------------


def test_worker_silent_exactly_heartbeat_timeout_is_not_lost() -> None:
    """Silence equal to heartbeat_timeout is tolerated; a hair more marks the worker lost."""
    state = new_state(heartbeat_timeout=5.0, standalone=True)
    join(state, "w1", T0)
    beat(state, "w1", T0 + 1, run="ready")
    tick(state, T0 + 6.0)
    assert worker_row(state, "w1")["state"] == "ready"
    tick(state, T0 + 6.0 + 1e-6)
    assert worker_row(state, "w1")["state"] == "lost"


def test_any_message_from_a_worker_keeps_it_alive() -> None:
    """Reports count as signs of life, not only heartbeats."""
    state = new_state(heartbeat_timeout=5.0, standalone=True)
    join(state, "w1", T0)
    report(state, "w1", stats_of(1), T0, T0 + 4)
    tick(state, T0 + 9.0)
    assert worker_row(state, "w1")["state"] == "ready"


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
        command(state, "ping", now)
    tick(state, T0 + 6)
    out = tick(state, T0 + 7)
    (_, update), *_ = updates(out)
    assert update.payload["lost"] == [
        {"worker": "w2", "since": T0 + 1.5, "until": T0 + 7, "users": 5}
    ]
    (_, update), *_ = updates(tick(state, T0 + 8))
    assert update.payload["lost"] == []


def test_lost_interval_of_a_worker_that_never_reported_starts_when_it_joined() -> None:
    """Without any report from it, a lost worker's unreported interval begins at its hello."""
    state = new_state(standalone=True)
    join(state, "w1", T0 + 0.5)
    command(state, "ping", T0 + 6)
    (_, update), *_ = updates(tick(state, T0 + 6))
    assert update.payload["lost"] == [
        {"worker": "w1", "since": T0 + 0.5, "until": T0 + 6, "users": 0}
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
    assert worker_row(state, "w2")["state"] == "running"
    assert worker_row(state, "w2")["users"] == 5


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
    assert worker_row(state, "w2")["state"] == "lost"
    # SIGCONT: the stalled worker flushes the intervals it could not send.
    out = send("w2", 9, T0 + 1)
    assert worker_row(state, "w2")["state"] != "lost"
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
    command(state, "ping", T0 + 1)
    (_, update), *_ = updates(tick(state, T0 + 1))
    assert update.payload["failures"] == [{"worker": "w1", "reason": "SyntaxError"}]
    assert worker_row(state, "w1")["error"] == "SyntaxError"


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
    reply, out = command(state, "set", T0 + 3, users=20)
    assert reply.ok
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
    _, out = command(state, "set", T0 + 3, users=20)
    assert [s.targets for s in spawns(out).values()] == [{"Reader": 10}] * 2


def test_cpu_at_exactly_the_threshold_is_not_saturation() -> None:
    """Saturation is CPU strictly above 90 %."""
    state = running_swarm({"a": 1, "b": 1}, users=10)
    for i in range(5):
        beat(state, "a", T0 + 2 + i * 0.1, users={"Reader": 5}, cpu=90.0)
    _, out = command(state, "set", T0 + 3, users=20)
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
    _, out = command(state, "set", T0 + 3, users=20)
    assert [s.targets for s in spawns(out).values()] == [{"Reader": 10}] * 2


def test_a_saturated_worker_that_cools_down_gets_its_share_again() -> None:
    """One beat at or under the threshold ends saturation and re-dispatches by cores."""
    state = running_swarm({"a": 1, "b": 1}, users=10)
    hot(state, "a", T0 + 2, {"Reader": 5})
    command(state, "set", T0 + 3, users=20)
    out = spawns(beat(state, "a", T0 + 4, users={"Reader": 5}, cpu=40.0))
    assert {i: s.targets for i, s in out.items()} == {
        ident("a"): {"Reader": 10},
        ident("b"): {"Reader": 10},
    }


def test_saturation_threshold_and_beats_come_from_the_config() -> None:
    """saturated_cpu and saturated_beats in MasterConfig decide when a worker is saturated."""
    state = running_swarm({"a": 1, "b": 1}, users=10, saturated_cpu=50.0, saturated_beats=5)
    hot(state, "a", T0 + 2, {"Reader": 5}, beats=4)
    _, out = command(state, "set", T0 + 3, users=20)
    assert [s.targets for s in spawns(out).values()] == [{"Reader": 10}] * 2
    beat(state, "a", T0 + 4, users={"Reader": 10}, cpu=60.0)  # the fifth hot beat
    _, out = command(state, "set", T0 + 5, users=30)
    assert {i: s.targets for i, s in spawns(out).items()} == {
        ident("a"): {"Reader": 10},
        ident("b"): {"Reader": 20},
    }


# --- reports and updates ---------------------------------------------------------------


def test_report_is_merged_into_total_and_the_next_update() -> None:
    """A report's delta reaches the total and the next update; the update after is empty."""
    state = running_swarm({"w1": 1}, users=2)
    delta = stats_of(12)
    command(state, "ping", T0 + 1.5)
    report(state, "w1", delta, T0 + 1, T0 + 1.5)
    assert state.total == delta
    (_, update), *_ = updates(tick(state, T0 + 2))
    assert RequestStats.from_wire(update.payload["stats"]) == delta
    (_, update), *_ = updates(tick(state, T0 + 3))
    assert RequestStats.from_wire(update.payload["stats"]).is_empty()
    assert state.total == delta


def test_report_sets_the_worker_rps() -> None:
    """A worker's rps is its last report's requests over the report's span."""
    state = running_swarm({"w1": 1}, users=2)
    report(state, "w1", stats_of(10), T0 + 1, T0 + 3)
    assert worker_row(state, "w1")["rps"] == 5.0


def test_update_deltas_add_up_to_the_total_exactly() -> None:
    """Over many reports from several workers, the sum of all update deltas equals total."""
    state = running_swarm({"w1": 1, "w2": 2, "w3": 1}, users=8)
    reports = []
    deltas = RequestStats()
    for second in range(1, 12):
        now = T0 + second
        command(state, "ping", now)
        for n, worker_id in enumerate(("w1", "w2", "w3")):
            if (second + n) % 3:
                stats = stats_of(second + n, name=f"/page/{second % 4}", latency_ns=n * 10**6)
                stats.record_exception(ValueError(f"bad {n}"))
                reports.append(stats)
                report(state, worker_id, stats, now - 1 + n * 0.1, now - 0.5 + n * 0.1)
        for _, update in updates(tick(state, now + 0.25)):
            deltas.merge(RequestStats.from_wire(update.payload["stats"]))
    (_, last), *_ = updates(state.update(T0 + 20))
    deltas.merge(RequestStats.from_wire(last.payload["stats"]))
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
    command(state, "ping", T0, peer=b"old")
    command(state, "ping", T0, peer=b"new")
    assert updates(tick(state, T0 + 0.5)) == []
    first = updates(tick(state, T0 + 1.0))
    assert [peer for peer, _ in first] == [b"old", b"new"]
    assert first[0][1] is first[1][1]
    assert updates(tick(state, T0 + 1.9)) == []
    second = updates(tick(state, T0 + 2.0))
    assert second[0][1].seq > first[0][1].seq
    assert second[0][1].payload["start"] == first[0][1].payload["end"] == T0 + 1.0
    assert second[0][1].time == second[0][1].payload["end"] == T0 + 2.0
    command(state, "ping", T0 + 15.5, peer=b"new")
    late = updates(tick(state, T0 + 15.5))
    assert [peer for peer, _ in late] == [b"new"]
    assert late[0][1].seq > second[0][1].seq


def test_updates_wait_update_delay_after_the_second() -> None:
    """With update_delay, the periodic update leaves that long after each whole second, when
    the workers' reports for the second (sent on the second) are in."""
    state = new_state(update_interval=1.0, update_delay=0.3, standalone=True)
    command(state, "ping", T0 + 0.1)
    assert updates(tick(state, T0 + 0.29)) == []
    assert len(updates(tick(state, T0 + 0.3))) == 1
    assert updates(tick(state, T0 + 1.2)) == []
    assert len(updates(tick(state, T0 + 1.31))) == 1


def test_update_payload_describes_the_swarm() -> None:
    """An update says the state, users, targets, per-worker rows and the drop count."""
    state = running_swarm({"w1": 1, "w2": 1}, users=6, spawn_rate=2.0)
    beat(state, "ghost", T0 + 1)
    command(state, "ping", T0 + 2)
    (_, update), *_ = updates(tick(state, T0 + 2))
    payload = update.payload
    assert (payload["state"], payload["users"], payload["target_users"]) == ("running", 6, 6)
    assert payload["spawn_rate"] == 2.0
    assert [w["id"] for w in payload["workers"]] == ["w1", "w2"]
    assert payload["dropped"] == 1
    assert payload["lost"] == payload["failures"] == []


# --- stop, quit, controller timeout ----------------------------------------------------


def test_stop_tells_every_live_worker_and_waits_for_all_to_stop() -> None:
    """stop sends Stop to each live worker; the swarm is stopped once every one said Stopped."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    reply, out = command(state, "stop", T0 + 2)
    assert reply.ok and reply.result == {"state": "stopping"}
    assert sent(out, protocol.Stop) == [
        (ident("w1"), protocol.Stop(timeout=None)),
        (ident("w2"), protocol.Stop(timeout=None)),
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
    command(state, "stop", T0 + 2)
    report(state, "w1", stats_of(6), T0 + 1, T0 + 2.1)
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 2.1)
    assert state.state == "stopped"
    assert state.total.total().requests == 6


def test_a_lost_worker_does_not_block_the_stop() -> None:
    """A worker lost while stopping is not waited for; the others' Stopped suffice."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    command(state, "stop", T0 + 2)
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 3)
    assert state.state == "stopping"
    tick(state, T0 + 6.5)
    assert state.state == "stopped"


def test_a_worker_lost_before_the_stop_gets_no_stop() -> None:
    """Stop goes to live workers only, and the swarm stops when those have stopped."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    beat(state, "w1", T0 + 5, users={"Reader": 2})
    tick(state, T0 + 6.5)
    _, out = command(state, "stop", T0 + 7)
    assert [identity for identity, _ in sent(out, protocol.Stop)] == [ident("w1")]
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 7.5)
    assert state.state == "stopped"


def test_stop_when_nothing_runs_changes_nothing() -> None:
    """stop before any start replies with the current state and sends nothing."""
    state = new_state()
    join(state, "w1", T0)
    reply, out = command(state, "stop", T0)
    assert reply.ok and reply.result == {"state": "ready"}
    assert out == [] and state.state == "ready"


def test_quit_tells_every_worker_to_quit_and_asks_the_master_to_exit() -> None:
    """quit sends Quit to every worker and sets exit_requested."""
    state = running_swarm({"w1": 1, "w2": 1}, users=4)
    reply, out = command(state, "quit", T0 + 2)
    assert reply.ok
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
    command(state, "ping", T0 + 10, peer=b"notebook")
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
    command(state, "stop", T0 + 3)
    assert state.state == "stopping"
    beat(state, "w1", T0 + 3.5, users={"Reader": 5}, run="running")
    assert state.state == "stopping"
    for worker_id in ("w1", "w2"):
        from_worker(state, worker_id, protocol.Stopped(worker_id=worker_id), T0 + 4)
    assert state.state == "stopped"


def test_a_stopped_swarm_can_start_again() -> None:
    """start after a stop spawns the same users afresh."""
    state = running_swarm({"w1": 1}, users=3)
    command(state, "stop", T0 + 2)
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
    command(state, "start", T0, users=4, spawn_rate=2.0)
    command(state, "stop", T0 + 1)
    beat(state, "w1", T0 + 1.5, users={}, run="stopped")
    from_worker(state, "w1", protocol.Stopped(worker_id="w1"), T0 + 1.6)
    assert state.state == "stopped"
    reply, out = command(state, "set", T0 + 2, users=10)
    assert reply.ok and reply.result["state"] == "stopped"
    assert spawns(out) == {}
    assert state.state == "stopped" and state.target_users == 10


def test_a_worker_sent_new_targets_is_not_settled_until_it_reports() -> None:
    """After a dispatch the master counts a worker as spawning, so a stop right after a start
    waits for that worker's Stopped instead of trusting its earlier 'stopped'."""
    state = new_state(standalone=True)
    join(state, "w1", T0)
    load(state, T0)
    command(state, "start", T0, users=2, spawn_rate=2.0)
    command(state, "stop", T0 + 0.1)
    assert state.state == "stopping"


def test_arrival_rate_is_split_over_workers_by_cores() -> None:
    """start(rate=...) sends each worker a Pace with its share of the rate, the pool and the
    backlog in proportion to its cores; set(rate=...) sends new shares at once."""
    state = new_state(standalone=True)
    join(state, "one", T0, cores=1)
    join(state, "two", T0, cores=2)
    load(state, T0)
    reply, out = command(state, "start", T0, rate=300.0, max_users=30, arrivals="poisson")
    assert reply.ok
    paces = {identity: m for _, identity, m in out if isinstance(m, protocol.Pace)}
    assert {k: (p.rate, p.max_users, p.max_backlog, p.poisson) for k, p in paces.items()} == {
        ident("one"): (100.0, 10, 200, True),
        ident("two"): (200.0, 20, 400, True),
    }
    reply, out = command(state, "set", T0 + 1, rate=30.0)
    paces = {identity: m for _, identity, m in out if isinstance(m, protocol.Pace)}
    assert [p.rate for p in paces.values()] == [10.0, 20.0]
    assert len({p.generation for p in paces.values()}) == 1


def test_bad_arrival_settings_are_refused_naming_the_value() -> None:
    """A negative rate, a pool under 1 or an unknown arrival kind is refused with its value."""
    state = new_state(standalone=True)
    join(state, "w1", T0)
    load(state, T0)
    for args, needle in (
        ({"rate": -1.0, "max_users": 5}, "rate must be >= 0 task runs per second, got -1.0"),
        ({"rate": 10.0, "max_users": 0}, "max_users must be an integer >= 1, got 0"),
        ({"rate": 10.0, "max_users": 5, "arrivals": "bursty"}, "'bursty'"),
    ):
        reply, out = command(state, "start", T0, **args)
        assert not reply.ok and needle in (reply.error or "")
        assert out == []
