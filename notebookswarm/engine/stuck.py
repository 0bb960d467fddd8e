"""Notice from a native thread that a stop cannot finish, and leave with what was counted.

gevent stops a user by raising ``GreenletExit`` at its next switch. A task in
``while True: pass`` never switches: the kill never lands, and the hub (the event loop)
never runs again, so neither the stop nor any report or heartbeat of the green side
happens. A worker's native thread (the heartbeat thread, or the standalone watchdog)
watches for that: a stop asked more than ``stop_timeout`` + :data:`STUCK_GRACE` seconds
ago has not finished, and the hub has not run for :data:`STUCK_GRACE` seconds. Then
:func:`last_words` counts what it can from that thread (the recorder is locked for it):
every request still waiting for an answer as a failure (``CUT_AT_STOP``), and the stuck
user as a failure of user code, with the stack where it spins. The worker sends that last
report and a ``Stuck`` message naming the user class and the task, and exits with
:data:`EXIT_STUCK`.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from notebookswarm._http.common import CUT_AT_STOP
from notebookswarm.stats.requests import RequestStats, StatsRecorder
from notebookswarm.users.core import User, task_name

#: The exit status of a worker that left because its users would not stop.
EXIT_STUCK = 5
#: Seconds past ``stop_timeout`` (and of a silent hub) before a worker gives up on a stop.
STUCK_GRACE = 2.0

_USER_FRAMES = frozenset((User.run.__code__, User.run_one_task.__code__))
_PACKAGE = str(Path(__file__).resolve().parent.parent) + os.sep


class StopWatch:
    """When a stop was asked and with what timeout; set by the hub or the native thread.

    The master numbers its stops and sends each one to both sockets of a worker. When the
    hub finishes a stop before the heartbeat thread has read its copy, that copy must not
    arm the watch again: a stop armed with nothing left to finish would, the next time
    the hub is held past the grace (an ``on_start`` that computes for a few seconds),
    make a healthy worker give up.
    """

    def __init__(self) -> None:
        # Plain attributes: each write is one store, safe to read from the other thread.
        self.asked_at: float | None = None
        self.timeout = 0.0
        self.done = 0  # the highest numbered stop finished
        self.checked_at: float | None = None  # the watching thread's last look
        self.awake_since = 0.0  # when the watching thread last came back from a freeze

    def asked(self, timeout: float, now: float, stop_id: int | None = None) -> None:
        """A stop with ``timeout`` was asked at ``now`` (a repeat keeps the first time).

        A numbered stop already finished is ignored. No lock: the check is made again
        after the write, so a ``finished`` that lands between the two wins.
        """
        if stop_id is not None and stop_id <= self.done:
            return
        if self.asked_at is None:
            self.timeout, self.asked_at = timeout, now
        if stop_id is not None and stop_id <= self.done:
            self.asked_at = None

    def finished(self, stop_id: int | None = None) -> None:
        """The stop is done: nothing is stuck."""
        if stop_id is not None:
            self.done = max(self.done, stop_id)
        self.asked_at = None

    def overdue(self, now: float, hub_ran_at: float) -> float | None:
        """Return the seconds since the stop was asked if it is stuck by now, else None.

        Called every fraction of a second by one watching thread. A gap longer than
        ``STUCK_GRACE / 2`` between two looks means the whole process was frozen (SIGSTOP,
        a paused VM, a host swapping): the hub could not run either, so its silence counts
        only from the thread's own return.
        """
        if self.checked_at is not None and now - self.checked_at > STUCK_GRACE / 2:
            self.awake_since = now
        self.checked_at = now
        return stop_is_stuck(self.asked_at, self.timeout, now, max(hub_ran_at, self.awake_since))


def stop_is_stuck(
    asked_at: float | None, timeout: float, now: float, hub_ran_at: float
) -> float | None:
    """Return how long a stop has waited if it counts as stuck at ``now``, else None.

    Stuck: asked more than ``timeout`` + STUCK_GRACE ago, and the hub silent for
    STUCK_GRACE (a hub that runs finishes its stop on its own, see the runtime).
    """
    if asked_at is None:
        return None
    waited = now - asked_at
    if waited > timeout + STUCK_GRACE and now - hub_ran_at > STUCK_GRACE:
        return waited
    return None


@dataclass(frozen=True)
class StuckUser:
    """The user that holds the hub: its class, its task, and the stack where it spins."""

    user_class: str
    task: str
    stack: str


def find_stuck_user(frame: FrameType | None) -> StuckUser | None:
    """Walk the hub thread's stack out to the user whose code runs there, if any."""
    inner: list[FrameType] = []
    while frame is not None:
        if frame.f_code in _USER_FRAMES:
            user = frame.f_locals.get("self")
            if isinstance(user, User):
                frames = inner[::-1]
                own = [f.f_code.co_filename.startswith(_PACKAGE) for f in frames]
                if not all(own):  # from the user's own code in: our frames above it are noise
                    frames = frames[own.index(False) :]
                summary = traceback.StackSummary.extract(
                    ((f, f.f_lineno) for f in frames), capture_locals=False
                )
                stack = "".join(summary.format())
                return StuckUser(type(user).__name__, task_name(user._current_task), stack)
        inner.append(frame)
        frame = frame.f_back
    return None


def stuck_users(users: list[User], hub_thread: int) -> list[StuckUser]:
    """Return the users that will not stop: the one running on the hub thread now, else
    (the hub is blocked outside user code) every user inside a task."""
    found = find_stuck_user(sys._current_frames().get(hub_thread))
    if found is not None:
        return [found]
    return [
        StuckUser(type(u).__name__, task_name(u._current_task), "")
        for u in users
        if u._state == "running"
    ]


def hub_stack(hub_thread: int) -> str:
    """The hub thread's stack now, innermost last: where the event loop is held."""
    frame = sys._current_frames().get(hub_thread)
    return "".join(traceback.format_stack(frame)) if frame is not None else ""


def last_words(recorder: StatsRecorder, users: list[User], stuck: list[StuckUser]) -> RequestStats:
    """Count the cut requests and the stuck users, and take the interval (from any thread)."""
    for user in users:
        flight = getattr(user.client, "in_flight", None)
        if flight is not None and flight.open:
            flight.cut(user.context.recorder, CUT_AT_STOP)
    for one in stuck:
        error = (
            f"StuckTask: {CUT_AT_STOP}: {one.user_class} in {one.task}, which never let the "
            "event loop run (a CPU-bound loop or a blocking call gevent cannot interrupt)"
        )
        text = f"{error}\nWhere it was running:\n{one.stack}" if one.stack else error
        recorder.record_exception_text(f"StuckTask|{one.user_class}|{one.task}", error, text)
    return recorder.take()
