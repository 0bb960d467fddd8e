"""Machines on one host: network namespaces joined by a bridge, for the cross-host tests.

Each machine is a namespace ``nbsn-<name>`` with one veth (``nbsn-<name>0`` inside, its
peer ``nbsn-<name>1`` a port of the bridge ``nbsn-br`` in the root namespace). The bridge
holds ``10.213.0.1/24``, so the root namespace (the test, the target it serves) is one
more machine of the same private subnet; nothing leaves this host. Needs root and ``ip``.

:meth:`Machines.cut` partitions a machine from the others, two ways: ``"link"`` sets its
veth's bridge end down (``ip link set ... down``: the machine's own interface loses its
carrier, so its kernel drops what it sends at once), ``"port"`` disables its bridge port
(the switch stops forwarding: packets vanish in the network while both ends stay up, as
between real hosts; TCP learns nothing and backs off its retransmissions).
:meth:`Machines.restore` ends the partition.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

PREFIX = "nbsn"
SUBNET = "10.213.0"
BRIDGE = f"{PREFIX}-br"
HOST_ADDRESS = f"{SUBNET}.1"


def unavailable() -> str | None:
    """Say why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (`.ci/run` runs the tests as root)"
    if shutil.which("ip") is None or shutil.which("bridge") is None:
        return "`ip` or `bridge` is missing: install iproute2 (`make netns-deps`)"
    return None


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raise with its stderr when it fails and ``check``."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


class Machines:
    """Namespaces named ``names`` on one bridge; each gets ``10.213.0.<2+i>``."""

    def __init__(self, names: Sequence[str], logs: Path) -> None:
        self.names = list(names)
        self.logs = logs
        self.address = {name: f"{SUBNET}.{2 + i}" for i, name in enumerate(self.names)}
        self.processes: list[subprocess.Popen[bytes]] = []
        self._files: list[IO[bytes]] = []

    def namespace(self, name: str) -> str:
        """Return the namespace of machine ``name``."""
        return f"{PREFIX}-{name}"

    def up(self) -> None:
        """Remove leftovers of an earlier run, then make the bridge and the machines."""
        self.down()
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{HOST_ADDRESS}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for name in self.names:
            ns, inside, port = self.namespace(name), f"{PREFIX}-{name}0", f"{PREFIX}-{name}1"
            ip("netns", "add", ns)
            ip("link", "add", inside, "type", "veth", "peer", "name", port)
            ip("link", "set", inside, "netns", ns)
            ip("link", "set", port, "master", BRIDGE)
            ip("link", "set", port, "up")
            ip("-n", ns, "addr", "add", f"{self.address[name]}/24", "dev", inside)
            ip("-n", ns, "link", "set", inside, "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        """Stop every process in the machines and remove them and the bridge (idempotent).

        Processes of an earlier run that died with its test are found by namespace.
        """
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
        self.processes = []
        for file in self._files:
            file.close()
        self._files = []
        for name in self.names:
            ns = self.namespace(name)
            pids = ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            ip("netns", "del", ns, check=False)  # takes the veth inside, and so its peer
            ip("link", "del", f"{PREFIX}-{name}1", check=False)
        ip("link", "del", BRIDGE, check=False)

    def start(self, name: str, argv: Sequence[str], label: str) -> subprocess.Popen[bytes]:
        """Start ``argv`` on machine ``name``; its stdout is a pipe, stderr goes to a log."""
        log = open(self.logs / f"{label}.log", "wb")  # noqa: SIM115 - closed by down()
        self._files.append(log)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace(name), *argv],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        self.processes.append(proc)
        return proc

    def log(self, label: str) -> str:
        """Return what the process started as ``label`` wrote to stderr so far."""
        return (self.logs / f"{label}.log").read_text(errors="replace")

    def cut(self, name: str, how: str) -> None:
        """Partition machine ``name`` from the others (see the module docstring for ``how``)."""
        port = f"{PREFIX}-{name}1"
        if how == "link":
            ip("link", "set", port, "down")
        else:
            _bridge("link", "set", "dev", port, "state", "0")  # disabled: forwards nothing

    def restore(self, name: str, how: str) -> None:
        """End the partition of machine ``name`` made by ``cut(name, how)``."""
        port = f"{PREFIX}-{name}1"
        if how == "link":
            ip("link", "set", port, "up")
        else:
            _bridge("link", "set", "dev", port, "state", "3")  # forwarding


def _bridge(*args: str) -> None:
    done = subprocess.run(["bridge", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"bridge {' '.join(args)}: {done.stderr.strip()}")


def first_line(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> bytes:
    """Return the first line ``proc`` prints (a master's JSON announcement), or fail."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    buffer = b""
    while b"\n" not in buffer:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no announcement within {timeout} s (exit {proc.poll()})")
        chunk = proc.stdout.read()
        if chunk:
            buffer += chunk
        else:
            time.sleep(0.02)
    return buffer.split(b"\n", 1)[0]
