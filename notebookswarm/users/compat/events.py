"""Locust's event hooks: ``events.request.add_listener(fn)``, ``@events.test_start...``.

An :class:`EventHook` is a list of listeners called with keyword arguments by
``fire(**kwargs)``. As in Locust, a listener that raises does not stop the others: its
exception is handed to the owning :class:`Events`' error handler (in a worker: counted
in the run's exceptions; in a controller: printed, and kept for the exit code).

The ``request`` hook is special (:class:`RequestHook`): it is also the door into the
statistics. ``events.request.fire(request_type=..., name=..., response_time=ms, ...)``
from a custom client records the request, and every request our own clients record
reaches its listeners — but only while it has listeners: with none, recording takes
exactly the path it takes without this module (see :meth:`RequestHook.bind`).
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from notebookswarm.users.compat.exception import CatchResponseError

Listener = Callable[..., Any]
ErrorHandler = Callable[[str, BaseException], None]

_NS_PER_MS = 1_000_000


def print_listener_error(hook: str, exc: BaseException) -> None:
    """Say on stderr that a listener of ``hook`` raised, with the traceback."""
    text = "".join(traceback.format_exception(exc))
    print(f"notebookswarm: a listener of events.{hook} raised:\n{text}", file=sys.stderr)


class EventHook:
    """Listeners of one event: ``add_listener`` (also a decorator), ``fire(**kwargs)``."""

    def __init__(self, name: str = "", on_error: ErrorHandler | None = None) -> None:
        self.name = name
        self._handlers: list[Listener] = []
        self._on_error = on_error

    def add_listener(self, handler: Listener) -> Listener:
        """Call ``handler(**kwargs)`` on every fire; returns it, so it works as a decorator."""
        self._handlers.append(handler)
        self._changed()
        return handler

    def remove_listener(self, handler: Listener) -> None:
        """Stop calling ``handler``."""
        self._handlers.remove(handler)
        self._changed()

    def _changed(self) -> None:
        """Called when listeners come or go; the request hook rewires recording here."""

    def fire(self, *, reverse: bool = False, **kwargs: Any) -> None:
        """Call every listener with ``kwargs`` (in reverse order of adding if ``reverse``)."""
        handlers = reversed(self._handlers) if reverse else list(self._handlers)
        for handler in handlers:
            try:
                handler(**kwargs)
            except Exception as exc:  # as in Locust: one bad listener does not stop the rest
                (self._on_error or print_listener_error)(self.name, exc)


class DeprecatedEventHook(EventHook):
    """An event Locust keeps for old locustfiles; it fires like any other."""


class _Recorder:
    """What :class:`RequestHook` needs of a recorder (a worker's ``StatsRecorder``)."""

    def record_request(
        self, method: str, name: str, latency_ns: int, nbytes: int, error: str | None
    ) -> None: ...

    def record_late_request(
        self,
        method: str,
        name: str,
        latency_ns: int,
        late_ns: int,
        nbytes: int,
        error: str | None,
    ) -> None: ...


class RequestHook(EventHook):
    """``events.request``: fired for every request; firing it records a request.

    Listeners receive ``request_type``, ``name``, ``response_time`` (ms),
    ``response_length``, ``exception`` (None, or a ``CatchResponseError`` carrying the
    error text), ``context`` ({}), ``response`` (the HTTP response where one exists, else
    None), ``start_time`` (epoch seconds) and ``url`` (None).
    """

    def __init__(self, name: str = "request", on_error: ErrorHandler | None = None) -> None:
        super().__init__(name, on_error)
        self._recorder: Any = None
        self._record: Callable[[str, str, int, int, str | None], None] | None = None
        self.find_response: Callable[[], Any] = lambda: None

    def bind(self, recorder: Any) -> None:
        """Record fired requests into ``recorder`` and tell listeners what it records.

        The recorder's own methods are left alone while the hook has no listener; with
        one, instance attributes shadow ``record_request`` and ``record_late_request``
        with versions that record and then fire, so the cost falls only on runs that
        asked for it.
        """
        self._recorder = recorder
        self._record = type(recorder).record_request.__get__(recorder)
        self._changed()

    def _changed(self) -> None:
        recorder = self._recorder
        if recorder is None:
            return
        if self._handlers:
            recorder.record_request = self._recording_request(recorder)
            if hasattr(type(recorder), "record_late_request"):
                recorder.record_late_request = self._recording_late(recorder)
        else:
            vars(recorder).pop("record_request", None)
            vars(recorder).pop("record_late_request", None)

    def _recording_request(self, recorder: Any) -> Callable[..., None]:
        record = type(recorder).record_request.__get__(recorder)

        def record_and_fire(
            method: str, name: str, latency_ns: int, nbytes: int, error: str | None
        ) -> None:
            record(method, name, latency_ns, nbytes, error)
            self._tell(method, name, latency_ns, nbytes, error)

        return record_and_fire

    def _recording_late(self, recorder: Any) -> Callable[..., None]:
        record = type(recorder).record_late_request.__get__(recorder)

        def record_and_fire(
            method: str, name: str, latency_ns: int, late_ns: int, nbytes: int, error: str | None
        ) -> None:
            record(method, name, latency_ns, late_ns, nbytes, error)
            self._tell(method, name, latency_ns, nbytes, error)

        return record_and_fire

    def _tell(
        self, method: str, name: str, latency_ns: int, nbytes: int, error: str | None
    ) -> None:
        super().fire(
            request_type=method,
            name=name,
            response_time=latency_ns / _NS_PER_MS,
            response_length=nbytes,
            exception=None if error is None else CatchResponseError(error),
            context={},
            response=self.find_response(),
            start_time=time.time() - latency_ns / 1e9,
            url=None,
        )

    def fire(self, *, reverse: bool = False, **kwargs: Any) -> None:
        """Record one request (Locust's arguments, ``response_time`` in ms), then tell listeners.

        Outside a worker (no recorder bound) only the listeners run.
        """
        if self._record is not None and "request_type" in kwargs and "name" in kwargs:
            exception = kwargs.get("exception")
            error = None if exception is None else describe(exception)
            latency_ns = max(0, round(float(kwargs.get("response_time") or 0) * _NS_PER_MS))
            self._record(
                str(kwargs["request_type"]),
                str(kwargs["name"]),
                latency_ns,
                int(kwargs.get("response_length") or 0),
                error,
            )
        super().fire(reverse=reverse, **kwargs)

    @contextmanager
    def measure(
        self,
        request_type: str,
        name: str,
        response_length: int = 0,
        context: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Time the block and fire one request for it, as Locust's ``measure`` does.

        Yields the request's metadata dict (set ``response_length`` in it); an exception
        in the block is recorded as the failure and not raised further.
        """
        meta: dict[str, Any] = {
            "request_type": request_type,
            "name": name,
            "response_length": response_length,
            "context": context or {},
            "exception": None,
            "start_time": time.time(),
            "url": None,
            "response": None,
        }
        start = time.perf_counter()
        try:
            yield meta
        except Exception as exc:
            meta["exception"] = exc
        meta["response_time"] = (time.perf_counter() - start) * 1000.0
        self.fire(**meta)


def describe(exception: object) -> str:
    """Return the error text our statistics keep for an exception (or a string)."""
    if isinstance(exception, CatchResponseError):
        return str(exception)
    if isinstance(exception, BaseException):
        return f"{type(exception).__name__}: {exception}"
    return str(exception)


#: Every event Locust 2.x declares, with the hook class each uses.
EVENT_NAMES = (
    "request",
    "user_error",
    "report_to_master",
    "worker_report",
    "worker_connect",
    "spawning_complete",
    "quitting",
    "quit",
    "init",
    "init_command_line_parser",
    "test_start",
    "test_stopping",
    "test_stop",
    "reset_stats",
    "cpu_warning",
    "heartbeat_sent",
    "heartbeat_received",
    "usage_monitor",
)


class Events:
    """All of Locust's events for one load of user code (``locust.events``).

    ``on_error`` receives ``(event name, exception)`` when a listener raises; the default
    prints it. Which of them notebookswarm fires, and where, is in docs/locust.md.
    """

    request: RequestHook
    user_error: EventHook
    report_to_master: EventHook
    worker_report: EventHook
    worker_connect: EventHook
    spawning_complete: EventHook
    quitting: EventHook
    quit: EventHook
    init: EventHook
    init_command_line_parser: EventHook
    test_start: EventHook
    test_stopping: EventHook
    test_stop: EventHook
    reset_stats: EventHook
    cpu_warning: EventHook
    heartbeat_sent: EventHook
    heartbeat_received: EventHook
    usage_monitor: EventHook

    def __init__(self) -> None:
        self.errors: list[tuple[str, BaseException]] = []
        self.on_error: ErrorHandler = print_listener_error
        for name in EVENT_NAMES:
            cls = RequestHook if name == "request" else EventHook
            setattr(self, name, cls(name, self._listener_failed))

    def _listener_failed(self, hook: str, exc: BaseException) -> None:
        self.errors.append((hook, exc))
        del self.errors[:-100]  # keep the last few, not every failure of a long run
        self.on_error(hook, exc)

    def hooks(self) -> dict[str, EventHook]:
        """Return every hook by name."""
        return {name: getattr(self, name) for name in EVENT_NAMES}
