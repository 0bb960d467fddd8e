"""Talk to a master from a notebook or a script: commands, replies and live updates.

:class:`ControlClient` owns one DEALER socket and one background thread. The thread is
the only user of the socket: it sends queued commands, matches replies to requests,
hands every update frame to the registered callbacks, and pings the master so the
master knows its controller is alive. Callers block only in :meth:`ControlClient.request`,
and only for the reply. No gevent anywhere.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future

import zmq
from zmq.utils.monitor import recv_monitor_message

from notebookswarm.cluster import protocol
from notebookswarm.cluster.keys import HANDSHAKE_FAILURES, explain_handshake
from notebookswarm.errors import ConfigError, NotebookSwarmError

UpdateCallback = Callable[[protocol.Update], None]


class MasterUnreachable(NotebookSwarmError):
    """The master did not answer in time: it may have exited or be unreachable."""


class ControlClient:
    """A controller's connection to a master, served by a background thread."""

    def __init__(
        self, endpoint: str, ping_interval: float = 1.0, curve: dict[int, bytes] | None = None
    ) -> None:
        self.endpoint = endpoint
        self.ping_interval = ping_interval
        self._curve = curve or {}
        self._context = zmq.Context()
        self._outbox: queue.SimpleQueue[protocol.ControlCommand | None] = queue.SimpleQueue()
        self._pending: dict[int, Future[protocol.ControlReply]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._callbacks: list[UpdateCallback] = []
        self.last_heard: float | None = None
        self.refused: str | None = None
        self._key_refused = False
        self.dropped = 0
        self._order = UpdateOrder()
        self._thread = threading.Thread(
            target=self._serve, name="notebookswarm-control", daemon=True
        )
        self._thread.start()

    def on_update(self, callback: UpdateCallback) -> None:
        """Call ``callback(update)`` on the background thread for every update frame."""
        with self._lock:
            self._callbacks.append(callback)

    def request(self, command: protocol.ControlCommand, timeout: float = 10.0) -> protocol.Status:
        """Send a command and return the swarm's status after it.

        A refusal by the master (bad state, bad code) is raised as ``ConfigError`` with the
        master's words; no answer within ``timeout`` as ``MasterUnreachable``.
        """
        if not self._thread.is_alive():
            raise MasterUnreachable("this connection to the master is closed")
        request_id = next(self._ids)
        future: Future[protocol.ControlReply] = Future()
        with self._lock:
            if self._key_refused:
                raise MasterUnreachable(f"{self.endpoint}: {self.refused}")
            self._pending[request_id] = future
        self._outbox.put(dataclasses.replace(command, request_id=request_id))
        try:
            reply = future.result(timeout)
        except TimeoutError:
            raise MasterUnreachable(
                f"the master at {self.endpoint} did not answer {command.KIND!r} "
                f"within {timeout:g} s" + (f": {self.refused}" if self.refused else "")
            ) from None
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        if reply.refusal is not None:
            raise ConfigError(reply.refusal)
        return reply.status

    def close(self) -> None:
        """Stop the background thread and close the socket."""
        if self._thread.is_alive():
            self._outbox.put(None)
            self._thread.join(timeout=5)
        self._context.term()

    def _serve(self) -> None:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 500)
        for option, value in self._curve.items():
            sock.setsockopt(option, value)
        monitor = sock.get_monitor_socket(HANDSHAKE_FAILURES) if self._curve else None
        sock.connect(self.endpoint)
        unsent: collections.deque[protocol.ControlCommand] = collections.deque()
        next_ping = 0.0
        try:
            while True:
                now = time.monotonic()
                if now >= next_ping:
                    ping = protocol.Hail()
                    _send_now(sock, ping)  # a ping that finds no session is simply skipped
                    next_ping = now + self.ping_interval
                while True:
                    try:
                        item = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        return
                    unsent.append(item)
                # Never block on a send: a master that refused our key leaves no session, and
                # a blocked send would hang this thread and, at close, the kernel.
                while unsent and _send_now(sock, unsent[0]):
                    unsent.popleft()
                if sock.poll(20):
                    while sock.poll(0):
                        self._receive(sock.recv())
                self._deliver(self._order.give_up(time.monotonic()))
                if monitor is not None and monitor.poll(0):
                    self._refuse(explain_handshake(recv_monitor_message(monitor), "controller"))
        finally:
            if monitor is not None:
                sock.disable_monitor()
                monitor.close()
            sock.close(linger=0 if unsent else 500)

    def _deliver(self, updates: list[protocol.Update]) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for update in updates:
            for callback in callbacks:
                try:
                    callback(update)
                except Exception:  # a broken callback must not stop the stream
                    traceback.print_exc()

    def _refuse(self, reason: str) -> None:
        """The master refused our key: fail every waiting request now, with the reason."""
        with self._lock:
            self.refused = reason
            self._key_refused = True
            waiting = list(self._pending.values())
        for future in waiting:
            if not future.done():
                future.set_exception(MasterUnreachable(f"{self.endpoint}: {reason}"))

    def _receive(self, data: bytes) -> None:
        try:
            message = protocol.decode(data)
        except protocol.VersionMismatch as exc:
            self.refused = exc.explain(peer="master", local="this controller")
            return
        except protocol.ProtocolError:
            self.dropped += 1
            return
        self.last_heard = time.monotonic()
        if isinstance(message, protocol.ControlReply):
            with self._lock:
                future = self._pending.get(message.request_id)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, protocol.Update):
            ready, missing = self._order.take(message, time.monotonic())
            if missing is not None:  # our link dropped: ask the master for what we missed
                self._outbox.put(protocol.Replay(after=missing))
            self._deliver(ready)
        elif isinstance(message, protocol.Refused):
            self.refused = message.reason


def _send_now(sock: zmq.Socket[bytes], message: protocol.ControlCommand) -> bool:
    """Send without blocking; return False when the socket has no session to send to."""
    try:
        sock.send(protocol.encode(message), zmq.NOBLOCK)
    except zmq.Again:
        return False
    return True


class UpdateOrder:
    """Deliver updates once each and in order, asking once per gap for the missed ones.

    Pure: fed updates and ``now``, it says which to deliver and after which ``seq`` to ask
    for a replay. A gap the master cannot fill within ``patience`` s is given up: what is
    held goes out, and the gap stays (the run's history shows it).
    """

    def __init__(self, patience: float = 3.0) -> None:
        self.patience = patience
        self.expected: int | None = None  # the next seq to deliver
        self.held: dict[int, protocol.Update] = {}
        self.asked_at: float | None = None

    def take(self, update: protocol.Update, now: float) -> tuple[list[protocol.Update], int | None]:
        """Return the updates to deliver now, and the seq to replay after (None: no gap)."""
        if self.expected is None or (update.seq == 0 and self.expected > 1):
            self.expected = update.seq  # the first update, or a master that started over
        if update.seq < self.expected or update.seq in self.held:
            return [], None  # had it already: never twice
        self.held[update.seq] = update
        ready = self._flush()
        if self.held and self.asked_at is None:
            self.asked_at = now
            return ready, self.expected - 1
        return ready, None

    def give_up(self, now: float) -> list[protocol.Update]:
        """Past ``patience`` without the missed updates, deliver what is held."""
        if self.asked_at is None or now - self.asked_at < self.patience or not self.held:
            return []
        self.expected = min(self.held)
        return self._flush()

    def _flush(self) -> list[protocol.Update]:
        assert self.expected is not None
        ready = []
        while self.expected in self.held:
            ready.append(self.held.pop(self.expected))
            self.expected += 1
        if not self.held:
            self.asked_at = None
        return ready
