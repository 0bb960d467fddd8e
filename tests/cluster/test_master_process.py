"""The master process's edges: garbage frames, foreign protocol versions, and CurveZMQ keys."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq

from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.control import ControlClient, MasterUnreachable
from notebookswarm.cluster.keys import keygen
from notebookswarm.cluster.launch import MasterProcess, reap, start_master, start_worker
from notebookswarm.errors import ConfigError
from notebookswarm.notebook.swarm import Swarm
from notebookswarm.testing import wait_until


@pytest.fixture
def master() -> Iterator[MasterProcess]:
    """A master with no workers."""
    proc = start_master(MasterConfig(standalone=True))
    try:
        yield proc
    finally:
        proc.stop()


class Sockets:
    """Make raw ZeroMQ sockets for a test and close every one of them afterwards."""

    def __init__(self) -> None:
        self.context: Sockets = zmq.Context()
        self.made: list[zmq.Socket[bytes]] = []

    def socket(self, kind: int) -> zmq.Socket[bytes]:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        self.made.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.made:
            sock.close()
        self.context.term()


@pytest.fixture
def context() -> Iterator[Sockets]:
    """Raw sockets, closed after the test."""
    sockets = Sockets()
    yield sockets
    sockets.close()


def _garbage(rng: random.Random) -> list[bytes]:
    """Frames that are never a valid message: random, truncated, or the wrong shape."""
    valid = protocol.encode(
        protocol.Hello(worker_id="w", host="h", pid=1, cores=2, version="0", millicpus=2000)
    )
    kind = rng.randrange(7)
    if kind == 0:
        return [rng.randbytes(rng.randrange(0, 64))]
    if kind == 1:
        return [valid[: rng.randrange(0, len(valid))]]
    if kind == 2:  # valid msgpack, wrong fields
        return [msgpack.packb({"v": 1, "k": "hello", "worker_id": rng.random()})]
    if kind == 3:
        return [msgpack.packb({"v": 1, "k": rng.choice(["spawn", "nope", "report"]), "x": [1]})]
    if kind == 4:
        return [msgpack.packb([1, 2, rng.randrange(100)])]
    if kind == 5:  # a control command with an argument out of its range or type
        targets = {"users": rng.choice([-1, "10", 2.5]), "spawn_rate": rng.choice([0.0, -3.0])}
        targets |= {"rate": None, "max_users": None, "arrivals": None, "max_backlog": None}
        return [msgpack.packb({"v": 1, "k": "start_swarm", "targets": targets, "request_id": 1})]
    return [valid, b"an extra frame"]


#: Valid messages that are not control commands: the control socket drops and counts them.
NOT_COMMANDS = [
    protocol.Ping(now=1.0),
    protocol.Spawn(targets={"U": 1}, spawn_rate=1.0, generation=1),
    protocol.Hello(worker_id="w", host="h", pid=1, cores=2, version="0", millicpus=2000),
]


def test_garbage_frames_are_dropped_counted_and_survived(
    master: MasterProcess, context: Sockets
) -> None:
    """10,000 random, truncated and wrong-shape frames (commands with bad arguments among them)
    on both sockets, and valid messages that are not commands on the control socket, are all
    dropped and counted; the master stays up and a real worker joins afterwards."""
    rng = random.Random(1234)
    sent = 0
    for endpoint in (master.worker_endpoint, master.control_endpoint):
        sock = context.socket(zmq.DEALER)
        sock.connect(endpoint)
        for _ in range(5000):
            sock.send_multipart(_garbage(rng))
            sent += 1
    sock = context.socket(zmq.DEALER)
    sock.connect(master.control_endpoint)
    for message in NOT_COMMANDS * 10:
        sock.send(protocol.encode(message))
        sent += 1
    client = ControlClient(master.control_endpoint)
    worker = start_worker(master.worker_endpoint)
    try:

        def all_dropped_and_joined() -> bool:
            status = client.request(protocol.GetStatus())
            return status.dropped == sent and bool(status.workers)

        wait_until(all_dropped_and_joined, timeout=30, message=f"{sent} dropped, a worker")
        status = client.request(protocol.GetStatus())
        assert [w.state for w in status.workers] == ["ready"]
        assert master.process.poll() is None
    finally:
        client.request(protocol.QuitMaster())
        client.close()
        worker.wait(10)


def test_worker_with_another_protocol_version_is_refused(
    master: MasterProcess, context: Sockets
) -> None:
    """A hello in protocol 2 is answered with a Refused that says what to install."""
    sock = context.socket(zmq.DEALER)
    sock.connect(master.worker_endpoint)
    sock.send(
        msgpack.packb(
            {
                "v": 2,
                "k": "hello",
                "worker_id": "w",
                "host": "h",
                "pid": 1,
                "cores": 1,
                "version": "9",
            }
        )
    )
    assert sock.poll(10_000), "no answer from the master"
    reply = protocol.decode(sock.recv())
    assert reply == protocol.Refused(
        reason="worker speaks protocol 2, master speaks 1: "
        "install the same notebookswarm version on both sides"
    )


def test_worker_refuses_a_master_with_another_protocol_version(
    context: Sockets,
) -> None:
    """A worker whose master answers in protocol 2 says what to install and exits."""
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    worker = subprocess.Popen(
        [sys.executable, "-m", "notebookswarm.worker", "--master", f"tcp://127.0.0.1:{port}"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert router.poll(20_000), "the worker never said hello"
        identity, hello = router.recv_multipart()
        assert isinstance(protocol.decode(hello), protocol.Hello)
        router.send_multipart([identity, msgpack.packb({"v": 2, "k": "quit"})])
        _, err = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 2
    assert "master speaks protocol 2, worker speaks 1: install the same notebookswarm" in err


def test_binding_beyond_loopback_needs_keys() -> None:
    """A master asked to listen on 0.0.0.0 without keys refuses, saying what to pass."""
    with pytest.raises(ConfigError, match=r"binding 0\.0\.0\.0 .* pass --keys DIR"):
        start_master(bind="0.0.0.0")
    done = subprocess.run(
        [sys.executable, "-m", "notebookswarm.master", "--bind", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "python -m notebookswarm keygen DIR" in done.stderr


def keyed_master(tmp_path: Path) -> tuple[Path, Path, MasterProcess]:
    """A master on 0.0.0.0 with keys; ``other`` holds a valid keypair it does not trust."""
    keys = keygen(tmp_path / "keys")
    other = keygen(tmp_path / "other")
    (other / "master.key").write_bytes((keys / "master.key").read_bytes())
    master = start_master(MasterConfig(standalone=True), bind="0.0.0.0", keys=keys)
    master.process.stderr = None
    return keys, other, master


def test_keys_let_trusted_workers_in_and_keep_others_out(tmp_path: Path) -> None:
    """With keys on 0.0.0.0, a worker holding the trusted key joins; one without keys and one
    with an untrusted key are refused, and both sides say why."""
    keys, other, master = keyed_master(tmp_path)
    from notebookswarm.cluster.keys import worker_curve_options

    client = ControlClient(
        master.control_endpoint.replace("0.0.0.0", "127.0.0.1"), curve=worker_curve_options(keys)
    )
    endpoint = master.worker_endpoint.replace("0.0.0.0", "127.0.0.1")
    trusted = start_worker(endpoint, keys=keys)
    keyless = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notebookswarm.worker",
            "--master",
            endpoint,
            "--connect-timeout",
            "20",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    untrusted = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notebookswarm.worker",
            "--master",
            endpoint,
            "--connect-timeout",
            "20",
            "--keys",
            str(other),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, keyless_err = keyless.communicate(timeout=30)
        _, untrusted_err = untrusted.communicate(timeout=30)
        status = client.request(protocol.GetStatus())
        assert [w.pid for w in status.workers] == [trusted.pid]
        assert keyless.returncode == 1
        assert "requires CurveZMQ keys" in keyless_err
        assert untrusted.returncode == 1
        assert "refused this worker's CurveZMQ key" in untrusted_err
    finally:
        client.request(protocol.QuitMaster())
        client.close()
        trusted.wait(10)
        for proc in (keyless, untrusted):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        reap(master.process)


_LATE_HELLO = """
import sys, time
from gevent import monkey
monkey.patch_all()
from notebookswarm.cluster.keys import worker_curve_options
from notebookswarm.engine.node import WorkerNode
node = WorkerNode(sys.argv[1], 20.0, worker_curve_options(sys.argv[2]))
time.sleep(1.0)  # widen the race: the master refuses the key before the worker says hello
try:
    sys.exit(node.run())
finally:
    node.close()
"""


def test_a_refused_worker_leaves_even_when_the_refusal_beats_its_hello(tmp_path: Path) -> None:
    """A master that refuses a key ends the ZeroMQ session; the worker's hello must not then
    block forever (a CI hang): it reports the refusal and exits within its connect timeout."""
    _, other, master = keyed_master(tmp_path)
    endpoint = master.worker_endpoint.replace("0.0.0.0", "127.0.0.1")
    late = subprocess.Popen(
        [sys.executable, "-c", _LATE_HELLO, endpoint, str(other)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = late.communicate(timeout=30)
        assert late.returncode == 1
        assert "refused this worker's CurveZMQ key" in err
    finally:
        if late.poll() is None:
            late.kill()
            late.communicate()
        reap(master.process)


def test_a_controller_with_an_untrusted_key_is_told_at_once_and_closes(tmp_path: Path) -> None:
    """Swarm.connect with keys the master does not trust fails fast with the reason, and the
    controller's thread and socket close (a blocked send would hang the kernel at exit)."""
    keys, other, master = keyed_master(tmp_path)
    endpoint = master.control_endpoint.replace("0.0.0.0", "127.0.0.1")
    try:

        def controllers() -> int:
            return sum(t.name == "notebookswarm-control" for t in threading.enumerate())

        before = controllers()
        # Failed by the refusal itself, not by the request timing out ("did not answer").
        with pytest.raises(MasterUnreachable, match=r"^tcp://\S+: the master refused this contr"):
            Swarm.connect(endpoint, keys=other)
        wait_until(
            lambda: controllers() == before, message="the refused controller's thread to end"
        )
        with Swarm.connect(endpoint, keys=keys) as trusted:  # the right keys still get in
            assert trusted.workers.empty
    finally:
        reap(master.process)


def test_keygen_command_writes_a_usable_key_folder(tmp_path: Path) -> None:
    """`python -m notebookswarm keygen DIR` writes both keypairs and trusts the worker key;
    running it again on the same folder refuses to overwrite them."""
    folder = tmp_path / "keys"
    cmd = [sys.executable, "-m", "notebookswarm", "keygen", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == [
        "master.key",
        "master.key_secret",
        "trusted/worker.key",
        "worker.key",
        "worker.key_secret",
    ]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 2
    assert "exists: pick an empty directory" in again.stderr
