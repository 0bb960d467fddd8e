"""The master process: ``python -m notebookswarm.master`` or :func:`start_master`.

It binds a ROUTER for workers and a ROUTER for controllers, feeds every frame to the
sans-I/O :class:`~notebookswarm.cluster.master_state.MasterState`, and sends what that returns.
A frame that cannot be decoded is counted and logged, never fatal. It needs no gevent.

On start it prints one JSON line to stdout, ``{"worker": "tcp://...", "control":
"tcp://...", "pid": ...}``, which :func:`notebookswarm.cluster.launch.start_master` reads to
learn the ports.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.keys import HANDSHAKE_FAILURES
from notebookswarm.cluster.master_state import Channel, MasterState, Out
from notebookswarm.errors import ConfigError

_DRAIN_AT_MOST = 500

#: Log the first this-many dropped frames one by one, then one line per 1,000.
_LOG_FIRST_DROPS = 20


def check_bind(bind: str, keys: Path | None) -> None:
    """Refuse to listen beyond loopback without CurveZMQ keys, saying how to fix it."""
    try:
        loopback = ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = bind == "localhost"
    if not loopback and keys is None:
        raise ConfigError(
            f"binding {bind} would let anyone on the network join as a worker: pass "
            "--keys DIR (create it with `python -m notebookswarm keygen DIR`) or bind 127.0.0.1"
        )


class _AuthLog:
    """Receives pyzmq's authenticator log; says out loud which keys were refused."""

    def debug(self, text: str, *args: Any) -> None:
        message = text % args if args else text
        if message.startswith("DENIED"):
            print(f"notebookswarm master: refused a peer: {message}", file=sys.stderr, flush=True)

    info = warning = debug

    def error(self, text: str, *args: Any) -> None:
        print(f"notebookswarm master: {text % args if args else text}", file=sys.stderr)


class MasterServer:
    """Own the master's sockets and clock; delegate every decision to MasterState."""

    def __init__(
        self,
        config: MasterConfig,
        bind: str = "127.0.0.1",
        worker_port: int = 0,
        control_port: int = 0,
        keys: Path | None = None,
    ) -> None:
        check_bind(bind, keys)
        self.config = config
        self.context = zmq.Context()
        self.auth: Any = None
        curve: dict[int, Any] = {}
        if keys is not None:
            from zmq.auth.thread import ThreadAuthenticator

            from notebookswarm.cluster.keys import master_curve_options, trusted_dir

            curve = master_curve_options(keys)
            self.auth = ThreadAuthenticator(self.context, log=_AuthLog())
            self.auth.start()
            self.auth.configure_curve(domain="*", location=str(trusted_dir(keys)))
        self.sockets: dict[Channel, zmq.Socket[bytes]] = {}
        self.endpoints: dict[Channel, str] = {}
        ports: dict[Channel, int] = {"worker": worker_port, "control": control_port}
        for channel, port in ports.items():
            sock = self.context.socket(zmq.ROUTER)
            sock.setsockopt(zmq.LINGER, 1000)
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting peer takes its identity
            for option, value in curve.items():
                sock.setsockopt(option, value)
            sock.bind(f"tcp://{bind}:{port}")
            self.sockets[channel] = sock
            self.endpoints[channel] = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.monitors: dict[zmq.Socket[bytes], Channel] = {}
        if keys is not None:  # say out loud when a peer fails the CurveZMQ handshake
            for channel, sock in self.sockets.items():
                self.monitors[sock.get_monitor_socket(HANDSHAKE_FAILURES)] = channel
        self.state = MasterState(config, time.time())

    def serve(self) -> int:
        """Serve until told to quit or the controller goes silent; return the exit status."""
        poller = zmq.Poller()
        for sock in [*self.sockets.values(), *self.monitors]:
            poller.register(sock, zmq.POLLIN)
        by_socket = {sock: channel for channel, sock in self.sockets.items()}
        signal.signal(signal.SIGTERM, self._on_sigterm)
        while not self.state.exit_requested:
            ready = dict(poller.poll(100))
            for sock, channel in by_socket.items():
                if sock in ready:
                    self._drain(channel, sock)
            for monitor, channel in self.monitors.items():
                if monitor in ready:
                    event = recv_monitor_message(monitor)
                    print(
                        f"notebookswarm master: refused a connection on the {channel} socket: "
                        "a peer without a trusted CurveZMQ key tried to join (handshake "
                        f"failed, event {event['event']:#x} value {event['value']:#x})",
                        file=sys.stderr,
                        flush=True,
                    )
            self._send(self.state.tick(time.time()))
        self.close()
        return 0

    def _on_sigterm(self, signum: int, frame: object) -> None:
        """Terminated: tell the workers to quit rather than leave them to time out."""
        self._send(self.state.quit_all())
        self.state.exit_requested = True

    def _drain(self, channel: Channel, sock: zmq.Socket[bytes]) -> None:
        state = self.state
        # At most this many frames before the loop ticks again: a flood of reports must
        # not hold back liveness checks and the once-a-second update.
        for _ in range(_DRAIN_AT_MOST):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            before = state.state
            now = time.time()
            if len(frames) != 2:
                self._drop(channel, f"{len(frames)} frames instead of 2")
                continue
            identity, data = frames
            try:
                message = protocol.decode(data)
            except protocol.VersionMismatch as exc:
                peer = "worker" if channel == "worker" else "controller"
                reason = exc.explain(peer=peer, local="master")
                self._drop(channel, reason)
                self._send([(channel, identity, protocol.Refused(reason=reason))])
                continue
            except protocol.ProtocolError as exc:
                self._drop(channel, str(exc))
                continue
            handle = state.on_worker if channel == "worker" else state.on_control
            try:
                out = handle(identity, message, now)
            except Exception:  # a bug must not take the swarm down: log it, go on
                self._drop(
                    channel,
                    f"{type(message).__name__} crashed its handler:\n" + traceback.format_exc(),
                )
                continue
            if state.state != before:  # tell controllers at once, with the stats so far
                out += state.update(now)
            self._send(out)

    def _drop(self, channel: Channel, reason: str) -> None:
        self.state.dropped += 1
        n = self.state.dropped
        if n <= _LOG_FIRST_DROPS or n % 1000 == 0:
            print(
                f"notebookswarm master: dropped frame #{n} on the {channel} socket: {reason}",
                file=sys.stderr,
                flush=True,
            )

    def _send(self, out: list[Out]) -> None:
        for channel, identity, message in out:
            try:
                frame = protocol.encode(message)
            except protocol.ProtocolError as exc:  # a bug or an absurd value: say so, go on
                print(
                    f"notebookswarm master: cannot send {type(message).__name__}: {exc}",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            # A peer gone or its queue full is for liveness to notice, not for this loop.
            with contextlib.suppress(zmq.ZMQError):
                self.sockets[channel].send_multipart([identity, frame], zmq.NOBLOCK)

    def close(self) -> None:
        """Close the sockets (letting queued quits go out) and the context."""
        for monitor in self.monitors:
            monitor.close(linger=0)
        for sock in self.sockets.values():
            sock.close(linger=1000)
        if self.auth is not None:
            self.auth.stop()
        self.context.term()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the master's command line (flags override fields of ``--config``)."""
    p = argparse.ArgumentParser(prog="python -m notebookswarm.master")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument("--worker-port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--keys", type=Path, help="CurveZMQ key folder; required beyond 127.0.0.1")
    p.add_argument(
        "--config", help="every MasterConfig field as JSON (how a Swarm starts its master)"
    )
    p.add_argument(
        "--standalone",
        action="store_true",
        default=None,
        help="a service: keep running when no controller is connected",
    )
    for name in _TIMING_FLAGS:
        p.add_argument("--" + name.replace("_", "-"), type=float, default=None)
    return p.parse_args(argv)


#: MasterConfig fields that are also flags of their own, for people starting a master by hand.
_TIMING_FLAGS = (
    "heartbeat_interval",
    "heartbeat_timeout",
    "master_timeout",
    "controller_timeout",
    "report_interval",
)


def config_from(args: argparse.Namespace) -> MasterConfig:
    """Build the config: ``--config`` whole, then any flag given on top of it."""
    config = MasterConfig.from_json(args.config) if args.config else MasterConfig()
    flags = {name: getattr(args, name) for name in (*_TIMING_FLAGS, "standalone")}
    return dataclasses.replace(config, **{k: v for k, v in flags.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    """Run the master until it is told to quit or its controller goes silent."""
    args = parse_args(argv)
    try:
        config = config_from(args)
        server = MasterServer(config, args.bind, args.worker_port, args.control_port, args.keys)
    except ConfigError as exc:
        print(f"notebookswarm master: {exc}", file=sys.stderr)
        return 2
    announce = {"worker": server.endpoints["worker"], "control": server.endpoints["control"]}
    print(json.dumps({**announce, "pid": os.getpid()}), flush=True)
    return server.serve()


if __name__ == "__main__":
    raise SystemExit(main())
