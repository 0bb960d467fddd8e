"""The line between user code and the worker: what a user's failure may and may not do.

User code can raise anything, ``SystemExit`` and ``KeyboardInterrupt`` included. gevent
treats those two as fatal for the whole process (they reach the main greenlet), so one
``sys.exit()`` in a task would end the worker and every user in it. Inside a task they
are counted and the user goes on (``users.core.USER_ERRORS``); anything that escapes a
user anyway (from ``wait_time``, say) is counted here and ends that user alone, as
``StopUser`` would. Two things still pass: gevent's ``GreenletExit`` (how the runtime
kills a user) and :class:`WorkerInterrupt` (a real Ctrl-C, SIGINT, to the worker).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

import gevent
from gevent import GreenletExit

from notebookswarm._http.common import CUT_AT_STOP
from notebookswarm.stats.recorder import Recorder
from notebookswarm.users.core import User


class WorkerInterrupt(BaseException):
    """A real SIGINT reached the worker: it stops, whatever greenlet it landed in.

    Not a KeyboardInterrupt, which user code's own ``raise KeyboardInterrupt`` is and
    which a task's handler counts and swallows; gevent is told to treat it as one.
    """


def escapes(exc: BaseException) -> bool:
    """Say whether an exception must leave the user: the runtime's kill or a real SIGINT."""
    return isinstance(exc, GreenletExit | WorkerInterrupt)


def count_failure(recorder: Recorder, exc: BaseException) -> None:
    """Count what user code raised, or raise it again if it must pass (see :func:`escapes`)."""
    if escapes(exc):
        raise exc
    recorder.record_exception(exc)


def call_guarded(recorder: Recorder, func: Callable[..., Any], *args: Any) -> None:
    """Call user code (``on_stop``...) counting anything it raises but what must pass."""
    try:
        func(*args)
    except BaseException as exc:
        count_failure(recorder, exc)


def cut_in_flight(user: User, recorder: Recorder | None = None) -> int:
    """Count the user's requests still waiting for an answer as failures; return how many.

    Called once the user's greenlet has ended, so none of them can be recorded twice.
    The error says the stop cut it (``CUT_AT_STOP``) when the runtime asked the user to
    stop; otherwise the user ended inside the request (a ``SystemExit`` in a hook).
    """
    flight = getattr(user.client, "in_flight", None)
    if flight is None or not flight.open:
        return 0
    error = CUT_AT_STOP if user._stop_requested else "the user stopped inside the request"
    count: int = flight.cut(recorder or user.context.recorder, error)
    return count


def install_interrupt_handler() -> None:
    """Make SIGINT raise :class:`WorkerInterrupt`, which the user boundary lets through."""

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise WorkerInterrupt("SIGINT")

    hub = gevent.get_hub()
    # Raised in any greenlet, it then reaches the main one and ends the process.
    hub.SYSTEM_ERROR = (*hub.SYSTEM_ERROR, WorkerInterrupt)
    signal.signal(signal.SIGINT, interrupted)
