"""Tests of the wire protocol: every kind round-trips, and no frame decodes to anything else."""

from __future__ import annotations

import dataclasses
import math
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from notebookswarm.cluster import protocol
from notebookswarm.cluster.protocol import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    ClassSpec,
    Code,
    ControlReply,
    Failed,
    GetStatus,
    Goodbye,
    Hail,
    Heartbeat,
    Hello,
    LoadCode,
    LostInterval,
    Message,
    NameReport,
    Pace,
    Ping,
    ProtocolError,
    Quit,
    QuitMaster,
    Refused,
    Replay,
    Report,
    ReportId,
    ResetStats,
    SetTargets,
    Spawn,
    StartSwarm,
    Status,
    Stop,
    Stopped,
    StopSwarm,
    Stuck,
    StuckTask,
    Targets,
    Update,
    VersionMismatch,
    Welcome,
    WorkerFailure,
    WorkerRow,
    decode,
    encode,
)
from notebookswarm.errors import NotebookSwarmError

ROW = WorkerRow(
    id="w1",
    host="gen-1",
    pid=4242,
    cores=4,
    state="running",
    users=3,
    cpu_percent=12.5,
    loop_lag=0.001,
    rps=30.0,
    last_seen=1233.5,
    error=None,
    overloaded=False,
)
STATUS = Status(
    state="ready",
    users=0,
    target_users=0,
    spawn_rate=1.0,
    rate=None,
    classes=["U"],
    workers=[ROW],
    dropped=0,
    started=1000.0,
    config={"heartbeat_interval": 1.0},
)

SAMPLES: list[Message] = [
    Hello(worker_id="w1", host="gen-1", pid=4242, cores=4, version="0.1.0", millicpus=4000),
    Heartbeat(
        worker_id="w1",
        state="running",
        users={"Reader": 3, "Writer": 0},
        cpu_percent=37.5,
        loop_lag=0.002,
    ),
    Report(
        worker_id="w1",
        seq=7,
        start=100.0,
        end=101.0,
        stats={"entries": [["GET", "/", 12, {"10": 3}]], "errors": {}},
    ),
    Stopped(worker_id="w1"),
    Failed(worker_id="w1", reason="SyntaxError: invalid syntax (users.py, line 3)"),
    Goodbye(worker_id="w1"),
    Stuck(
        worker_id="w1",
        tasks=[StuckTask(user_class="Spinner", task="Spinner.spin", users=1)],
        waited=4.5,
        exit_code=5,
    ),
    Report(
        worker_id="w1",
        seq=8,
        start=101.0,
        end=102.0,
        stats={},
        names=NameReport(distinct=2400, folded=12, pattern="/item/{n}"),
    ),
    Welcome(worker_id="w1", heartbeat_interval=1.0, master_timeout=10.0, report_interval=1.0),
    Refused(reason="worker speaks protocol 2, master speaks 1: install the same version"),
    Code(
        payload=b"\x80\x05\x00", fmt="pickle", classes=["Reader", "Writer"], host=None, options={}
    ),
    Code(
        payload=b"class U: ...",
        fmt="source",
        classes=["U"],
        host="http://127.0.0.1:8080",
        options={"stop_timeout": 2.0, "tags": ["a"], "filename": "users.py"},
    ),
    Spawn(targets={"Reader": 10, "Writer": 2}, spawn_rate=2.5, generation=3),
    Pace(rate=250.0, max_users=100, poisson=True, max_backlog=500, generation=4),
    Stop(timeout=None),
    Stop(timeout=5.0),
    Quit(),
    Ping(now=1234.5),
    Hail(request_id=1),
    LoadCode(
        payload=b"class U: ...",
        fmt="source",
        classes=[ClassSpec(name="U", weight=1, fixed_count=0)],
        host=None,
        options={"stop_timeout": 2.0},
        request_id=2,
    ),
    StartSwarm(targets=Targets(users=400, spawn_rate=20.0), request_id=3),
    SetTargets(targets=Targets(rate=50.0, max_users=10, arrivals="poisson"), request_id=4),
    StopSwarm(timeout=None, request_id=5),
    StopSwarm(timeout=2.0),
    ResetStats(request_id=6),
    QuitMaster(request_id=7),
    GetStatus(request_id=8),
    Replay(after=41, request_id=9),
    ControlReply(request_id=1, refusal="no user code loaded", status=STATUS),
    ControlReply(request_id=8, refusal=None, status=dataclasses.replace(STATUS, stats={"e": []})),
    Update(
        seq=9,
        time=1234.0,
        state="running",
        users=3,
        target_users=3,
        spawn_rate=1.0,
        rate=None,
        max_users=None,
        start=1233.0,
        end=1234.0,
        stats={"entries": []},
        workers=[ROW],
        lost=[LostInterval(worker="w2", since=1200.0, until=1230.0, users=4)],
        failures=[WorkerFailure(worker="w3", reason="ImportError: x")],
        reports=[ReportId(worker="w1", seq=4)],
        span=1.0,
        overloaded=["w1"],
        dropped=0,
    ),
]


def frame_of(message: Message) -> dict[str, Any]:
    """Unpack an encoded message into the raw map that travels."""
    raw: dict[str, Any] = msgpack.unpackb(encode(message), raw=False, strict_map_key=False)
    return raw


def pack(frame: object) -> bytes:
    """Pack any structure as a peer might, right or wrong."""
    data: bytes = msgpack.packb(frame, use_bin_type=True)
    return data


def test_samples_cover_every_kind() -> None:
    """Every message type has at least one sample, so adding a kind without a test fails."""
    assert {type(sample) for sample in SAMPLES} == set(MESSAGE_TYPES)


def test_kinds_are_unique_tags() -> None:
    """Each message type carries its own literal tag."""
    kinds = [cls.KIND for cls in MESSAGE_TYPES]
    assert len(set(kinds)) == len(kinds)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    """Decoding an encoded message gives back an equal message of the same type."""
    decoded = decode(encode(message))
    assert decoded == message
    assert type(decoded) is type(message)


def test_frame_layout() -> None:
    """A frame is a flat map of the version, the kind tag and the fields."""
    assert frame_of(Ping(now=1.5)) == {"v": PROTOCOL_VERSION, "k": "ping", "now": 1.5}


def test_bytes_stay_bytes() -> None:
    """Code payloads travel as msgpack bin and come back as bytes."""
    code = Code(payload=b"\x00\xff", fmt="pickle", classes=[], host=None, options={})
    assert frame_of(code)["payload"] == b"\x00\xff"
    assert decode(encode(code)) == code


def test_int_where_float_expected_becomes_float() -> None:
    """An integral number in a float field decodes as a float, as Python code writes Stop(5)."""
    decoded = decode(pack({"v": 1, "k": "stop", "timeout": 5, "stop_id": None}))
    assert decoded == Stop(timeout=5.0)
    assert isinstance(decoded, Stop)
    assert type(decoded.timeout) is float


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x81", b"\x92\x01", b"not msgpack at all \xff", pack(1) + pack(2)],
    ids=["empty", "reserved-byte", "truncated-map", "truncated-array", "garbage", "two-objects"],
)
def test_rejects_bytes_that_are_not_one_msgpack_object(data: bytes) -> None:
    """Bytes that are not exactly one msgpack object raise ProtocolError."""
    with pytest.raises(ProtocolError, match="not msgpack"):
        decode(data)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_rejects_every_truncation(message: Message) -> None:
    """Every proper prefix of a valid frame raises ProtocolError."""
    data = encode(message)
    for end in range(len(data)):
        with pytest.raises(ProtocolError):
            decode(data[:end])


@pytest.mark.parametrize("top", [[1, "ping"], "ping", 1, None, 1.5, b"ping", True])
def test_rejects_top_level_that_is_not_a_map(top: object) -> None:
    """A frame whose top level is not a map raises ProtocolError."""
    with pytest.raises(ProtocolError, match="not a map"):
        decode(pack(top))


@pytest.mark.parametrize("version", [None, "1", 1.0, True, [1]])
def test_rejects_missing_or_ill_typed_version(version: object) -> None:
    """A frame without an integer version raises ProtocolError (not VersionMismatch)."""
    frame = {"k": "quit"} if version is None else {"v": version, "k": "quit"}
    with pytest.raises(ProtocolError, match="no protocol version") as caught:
        decode(pack(frame))
    assert not isinstance(caught.value, VersionMismatch)


@pytest.mark.parametrize("kind", ["launch", "", "Hello", None, 3, b"hello"])
def test_rejects_unknown_kind(kind: object) -> None:
    """A frame whose kind is not a known tag raises ProtocolError naming the kind."""
    with pytest.raises(ProtocolError, match="unknown message kind"):
        decode(pack({"v": PROTOCOL_VERSION, "k": kind}))


def test_rejects_missing_field() -> None:
    """A frame lacking a field raises ProtocolError naming it."""
    frame = frame_of(Spawn(targets={}, spawn_rate=1.0, generation=1))
    del frame["generation"]
    with pytest.raises(ProtocolError, match="spawn frame lacks generation"):
        decode(pack(frame))


@pytest.mark.parametrize("extra", [{"surprise": 1}, {7: "x"}, {None: None}])
def test_rejects_extra_field(extra: dict[Any, Any]) -> None:
    """A frame with a field its kind does not declare raises ProtocolError."""
    frame = {**frame_of(Quit()), **extra}
    with pytest.raises(ProtocolError, match="quit frame has unknown fields"):
        decode(pack(frame))


WRONG_FIELDS = [
    (Hello, "pid", "4242", "hello.pid: expected int >= 0, got str '4242'"),
    (Hello, "pid", True, "hello.pid: expected int >= 0, got bool True"),
    (Hello, "cores", 0, "hello.cores: expected int >= 1, got int 0"),
    (Hello, "worker_id", b"w1", "hello.worker_id: expected str, got bytes"),
    (Heartbeat, "state", "dancing", "heartbeat.state: expected one of 'ready'"),
    (Heartbeat, "users", {"Reader": -1}, r"heartbeat.users\['Reader'\]: expected int >= 0"),
    (Heartbeat, "users", {"Reader": 1.0}, r"heartbeat.users\['Reader'\]: expected int"),
    (Heartbeat, "users", {1: 1}, "heartbeat.users key 1: expected str, got int 1"),
    (Heartbeat, "users", [["Reader", 1]], "heartbeat.users: expected map of str"),
    (Heartbeat, "cpu_percent", float("nan"), "heartbeat.cpu_percent: expected finite float"),
    (Heartbeat, "loop_lag", -0.5, "heartbeat.loop_lag: expected finite float >= 0"),
    (Report, "stats", {1: "x"}, "report.stats key 1: expected str"),
    (Report, "stats", [], "report.stats: expected map of str to anything"),
    (Report, "end", float("inf"), "report.end: expected finite float"),
    (Welcome, "report_interval", 0.0, "welcome.report_interval: expected finite float > 0"),
    (Code, "fmt", "marshal", "code.fmt: expected one of 'pickle', 'source'"),
    (Code, "payload", "text", "code.payload: expected bytes, got str"),
    (Code, "classes", ["A", None], r"code.classes\[1\]: expected str, got NoneType"),
    (Code, "classes", "A", "code.classes: expected list of str, got str 'A'"),
    (Code, "host", 8080, "code.host: expected str or nil, got int 8080"),
    (Spawn, "targets", {"A": "10"}, r"spawn.targets\['A'\]: expected int >= 0, got str"),
    (Stop, "timeout", "never", "stop.timeout: expected finite float >= 0 or nil"),
    (ControlReply, "refusal", 1, "control_reply.refusal: expected str or nil, got int 1"),
    (ControlReply, "status", None, "control_reply.status: expected Status map"),
    (Hail, "request_id", -1, "hail.request_id: expected int >= 0, got int -1"),
    (StartSwarm, "targets", {"users": 1}, "start_swarm.targets: expected Targets map"),
]

# Ill-formed arguments of control commands: the controller's frame is refused by decode, so
# the master counts it as dropped (tests/cluster/test_master_process.py) and never acts on it.
LOAD_CODE = next(s for s in SAMPLES if type(s) is LoadCode)
READER = {"name": "Reader", "weight": 1, "fixed_count": 0}
MALFORMED_COMMANDS = [
    (LoadCode, "classes", 5, "load_code.classes: expected list of ClassSpec, got int 5"),
    (LoadCode, "classes", ["Reader"], r"load_code.classes\[0\]: expected ClassSpec map, got str"),
    (LoadCode, "classes", [{"name": "Reader"}], r"load_code.classes\[0\]: expected ClassSpec map"),
    (
        LoadCode,
        "classes",
        [{**READER, "weight": "heavy"}],
        r"load_code.classes\[0\].weight: expected int >= 0, got str 'heavy'",
    ),
    (
        LoadCode,
        "classes",
        [{**READER, "weight": None}],
        r"load_code.classes\[0\].weight: expected int >= 0, got NoneType",
    ),
    (
        LoadCode,
        "classes",
        [{**READER, "fixed_count": math.inf}],
        r"load_code.classes\[0\].fixed_count: expected int >= 0, got float inf",
    ),
    (LoadCode, "fmt", "exe", "load_code.fmt: expected one of 'pickle', 'source', got str 'exe'"),
    (LoadCode, "payload", "text", "load_code.payload: expected bytes, got str 'text'"),
    (LoadCode, "payload", 3, "load_code.payload: expected bytes, got int 3"),
    (LoadCode, "host", 8080, "load_code.host: expected str or nil, got int 8080"),
    (LoadCode, "options", "ab", "load_code.options: expected map of str to anything, got str"),
    (LoadCode, "options", [[1, 2]], "load_code.options: expected map of str to anything, got li"),
    (LoadCode, "options", {1: 2}, "load_code.options key 1: expected str, got int 1"),
    (StopSwarm, "timeout", "soon", "stop_swarm.timeout: expected .* or nil, got str 'soon'"),
    (StopSwarm, "timeout", -1.0, "stop_swarm.timeout: expected .* or nil, got float -1.0"),
    (StopSwarm, "timeout", math.nan, "stop_swarm.timeout: expected .* or nil, got float nan"),
    (SetTargets, "targets", None, "set_targets.targets: expected Targets map, got NoneType"),
    (SetTargets, "targets", {"users": 3}, "set_targets.targets: expected Targets map, got dict"),
    (GetStatus, "request_id", "8", "get_status.request_id: expected int >= 0, got str '8'"),
]


@pytest.mark.parametrize(("cls", "field", "value", "message"), MALFORMED_COMMANDS)
def test_rejects_ill_formed_command_arguments(
    cls: type[Message], field: str, value: object, message: str
) -> None:
    """A control command whose argument has the wrong type, range or shape raises
    ProtocolError naming the argument and the value, so no master ever runs it."""
    sample = next(s for s in SAMPLES if type(s) is cls)
    with pytest.raises(ProtocolError, match=f"^{message}"):
        decode(pack({**frame_of(sample), field: value}))


@pytest.mark.parametrize("missing", [["fmt"], ["payload", "fmt", "classes", "host", "options"]])
def test_rejects_a_command_without_its_arguments(missing: list[str]) -> None:
    """A load_code frame lacking arguments raises ProtocolError naming them."""
    frame = {k: v for k, v in frame_of(LOAD_CODE).items() if k not in missing}
    with pytest.raises(ProtocolError, match=f"load_code frame lacks {', '.join(sorted(missing))}"):
        decode(pack(frame))


@pytest.mark.parametrize(("cls", "field", "value", "message"), WRONG_FIELDS)
def test_rejects_wrong_field_type(
    cls: type[Message], field: str, value: object, message: str
) -> None:
    """A field of the wrong type or range raises ProtocolError naming the field and value."""
    sample = next(s for s in SAMPLES if type(s) is cls)
    frame = {**frame_of(sample), field: value}
    with pytest.raises(ProtocolError, match=message):
        decode(pack(frame))


def test_rejects_extension_types() -> None:
    """Msgpack extension types are not part of the protocol, even inside opaque maps."""
    frame = frame_of(SAMPLES[2])
    data = pack({**frame, "stats": {"x": msgpack.ExtType(5, b"boom")}})
    with pytest.raises(ProtocolError, match="extension type 5"):
        decode(data)


def test_long_values_are_shortened_in_errors() -> None:
    """An error message quotes at most a few dozen characters of a bad value."""
    with pytest.raises(ProtocolError) as caught:
        decode(pack({"v": PROTOCOL_VERSION, "k": "x" * 10_000}))
    assert len(str(caught.value)) < 100


def test_version_mismatch_carries_both_versions() -> None:
    """A frame from another protocol version raises VersionMismatch with both versions."""
    frame = {
        **frame_of(Hello(worker_id="w3", host="h", pid=1, cores=2, version="9.0", millicpus=2000)),
        "v": 2,
    }
    with pytest.raises(VersionMismatch) as caught:
        decode(pack(frame))
    assert (caught.value.theirs, caught.value.ours) == (2, PROTOCOL_VERSION)
    assert isinstance(caught.value, ProtocolError)
    assert isinstance(caught.value, NotebookSwarmError)


def test_version_mismatch_says_what_to_install() -> None:
    """The side that detects a mismatch can say it in its own words, naming both roles."""
    error = VersionMismatch(theirs=2, ours=1)
    assert error.explain(peer="worker", local="master") == (
        "worker speaks protocol 2, master speaks 1: "
        "install the same notebookswarm version on both sides"
    )
    assert error.explain(peer="master", local="worker w3").startswith(
        "master speaks protocol 2, worker w3 speaks 1:"
    )
    assert "install the same notebookswarm version" in str(error)


def test_version_is_checked_before_kind() -> None:
    """A newer peer's unknown kind is reported as a version mismatch, not as garbage."""
    with pytest.raises(VersionMismatch):
        decode(pack({"v": PROTOCOL_VERSION + 1, "k": "teleport", "where": "mars"}))


def test_encode_rejects_ill_typed_message() -> None:
    """Encoding a message whose field does not fit its type raises ProtocolError."""
    bad = Heartbeat(worker_id="w1", state="running", users={"A": -1}, cpu_percent=0, loop_lag=0)
    with pytest.raises(ProtocolError, match=r"cannot encode heartbeat.users\['A'\]"):
        encode(bad)


def test_encode_rejects_unpackable_opaque_value() -> None:
    """Encoding an opaque map holding something msgpack cannot carry raises ProtocolError."""
    with pytest.raises(ProtocolError, match="cannot encode update"):
        encode(dataclasses.replace(SAMPLES[-1], stats={"s": {1, 2}}))  # type: ignore[type-var]


def test_encode_rejects_non_messages() -> None:
    """Encoding anything but a protocol message raises ProtocolError."""
    with pytest.raises(ProtocolError, match="not a protocol message"):
        encode({"k": "quit"})  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------------------


def plain_data(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    """Build any structure msgpack can carry without extension types."""
    int64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
    scalars = (
        st.none() | st.booleans() | int64 | floats | st.text(max_size=8) | st.binary(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=4) | int64, inner, max_size=4)
        ),
        max_leaves=12,
    )


plain = plain_data(st.floats())
comparable = plain_data(st.floats(allow_nan=False))  # NaN != NaN would fail equality checks


def strategy_for(spec: object) -> st.SearchStrategy[Any]:
    """Build values that fit one field annotation, read the same way the protocol reads it."""
    origin, args = get_origin(spec), get_args(spec)
    if origin is Annotated:
        base, (bound,) = args[0], args[1:]
        if base is int:
            return st.integers(min_value=int(bound.bound) + bound.strict, max_value=2**40)
        return st.floats(
            min_value=bound.bound, exclude_min=bound.strict, allow_nan=False, allow_infinity=False
        )
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (Union, types.UnionType):
        return st.one_of([strategy_for(arg) for arg in args])
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=4)
    simple: dict[object, st.SearchStrategy[Any]] = {
        Any: comparable,
        type(None): st.none(),
        str: st.text(max_size=12),
        int: st.integers(min_value=-(2**40), max_value=2**40),
        float: st.floats(allow_nan=False, allow_infinity=False),
        bool: st.booleans(),
        bytes: st.binary(max_size=16),
    }
    if isinstance(spec, type) and dataclasses.is_dataclass(spec):  # a nested record
        return message_strategy(spec)
    return simple[spec]


def field_names(cls: type[Any]) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


def message_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = get_type_hints(cls, include_extras=True)
    fields = {name: strategy_for(hints[name]) for name in field_names(cls)}
    return st.builds(cls, **fields)


messages = st.one_of([message_strategy(cls) for cls in MESSAGE_TYPES])


def decodes_or_refuses(data: bytes) -> None:
    """Assert that decoding gives a message or ProtocolError, and nothing else."""
    try:
        result = decode(data)
    except ProtocolError:
        return
    assert isinstance(result, MESSAGE_TYPES)


@given(messages)
def test_any_valid_message_round_trips(message: Message) -> None:
    """Every message that fits its declared types survives encode and decode unchanged."""
    assert decode(encode(message)) == message


@given(st.binary(max_size=64))
def test_random_bytes_only_decode_or_refuse(data: bytes) -> None:
    """Random bytes decode to a message or raise ProtocolError, never another exception."""
    decodes_or_refuses(data)


@given(plain)
def test_random_structures_only_decode_or_refuse(value: object) -> None:
    """Any msgpack structure decodes to a message or raises ProtocolError."""
    decodes_or_refuses(pack(value))


@given(st.sampled_from(MESSAGE_TYPES), st.data())
def test_wrong_shaped_frames_only_decode_or_refuse(cls: type[Message], data: st.DataObject) -> None:
    """A frame with a known kind but fields of random names and shapes only decodes or refuses."""
    names = st.sampled_from(field_names(cls) or ["v"]) | st.text(max_size=6)
    fields = data.draw(st.dictionaries(names, plain, max_size=6))
    version = data.draw(st.sampled_from([PROTOCOL_VERSION, PROTOCOL_VERSION + 1]))
    decodes_or_refuses(pack({**fields, "v": version, "k": cls.KIND}))


@given(messages, st.data())
def test_one_wrong_field_only_decodes_or_refuses(message: Message, data: st.DataObject) -> None:
    """A valid frame with one field replaced by anything only decodes or refuses."""
    frame = frame_of(message)
    if len(frame) > 2:
        field = data.draw(st.sampled_from(sorted(set(frame) - {"v", "k"})))
        frame[field] = data.draw(plain)
    decodes_or_refuses(pack(frame))


@given(messages, st.data())
def test_truncated_valid_frames_are_refused(message: Message, data: st.DataObject) -> None:
    """Any proper prefix of a valid frame raises ProtocolError."""
    encoded = encode(message)
    end = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(ProtocolError):
        decode(encoded[:end])


def test_float_fields_reject_non_finite_values() -> None:
    """NaN and infinities never reach the master's arithmetic."""
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ProtocolError, match="finite float"):
            decode(pack({"v": PROTOCOL_VERSION, "k": "ping", "now": bad}))


def test_module_exports_every_message_type() -> None:
    """Every message type and every name in __all__ is importable from the protocol module."""
    assert all(hasattr(protocol, name) for name in protocol.__all__)
    assert {cls.__name__ for cls in MESSAGE_TYPES} <= set(protocol.__all__)
