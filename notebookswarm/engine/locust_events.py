"""Locust's events in a worker: the listeners a locustfile registered, fired here.

The worker node calls a :class:`WorkerEvents` at the points of a run — code loaded
(``init``), first targets (``test_start``), ramp done (``spawning_complete``), stop
(``test_stop``, before the last report so its data travels), each report
(``report_to_master``), exit (``quitting``) — and it wires ``request`` and ``user_error``
into the recorder. Listeners see ``environment.runner``, a ``WorkerRunner``.

A listener that raises is counted in the run's exceptions (and printed on stderr); the
worker goes on, as Locust's does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

import gevent
import msgpack

from notebookswarm._http.common import CatchResponse
from notebookswarm.cluster import protocol
from notebookswarm.engine.runtime import Runtime
from notebookswarm.errors import ConfigError
from notebookswarm.stats.requests import RequestStats, StatsRecorder
from notebookswarm.users.compat.environment import Environment, RunnerControls, WorkerRunner
from notebookswarm.users.compat.events import print_listener_error
from notebookswarm.users.compat.loading import load_code
from notebookswarm.users.core import User


def load_worker_code(message: protocol.Code) -> tuple[list[type[User]], Environment]:
    """Turn a Code message into user classes and the environment their listeners joined.

    Source keeps ``locust`` names resolved for the worker's life (a task may import
    ``locust`` when it first runs); cell-defined classes get a fresh environment.
    """
    import cloudpickle

    options = message.options
    env = Environment(host=message.host, parsed_options=parsed_options(options))
    if message.fmt == "pickle":
        classes = list(cloudpickle.loads(message.payload))
    else:
        filename = str(options.get("filename", "<users>"))
        source = message.payload.decode("utf-8")
        classes = load_code(source, filename, message.classes, keep=True, environment=env).classes
    by_name = {cls.__name__: cls for cls in classes}
    return [by_name[name] for name in message.classes], env


def parsed_options(options: Mapping[str, Any]) -> argparse.Namespace:
    """Rebuild ``environment.parsed_options`` from a load's options (``parsed_options``)."""
    return argparse.Namespace(**dict(options.get("parsed_options") or {}))


def response_from_frames() -> Any:
    """Find the response of the request being recorded, in the recording session's frame.

    Called only while a ``request`` listener exists. Our sessions call the recorder from
    ``request()`` (a local ``response``) or from a ``catch_response`` block's exit.
    """
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != "record_and_fire":
        frame = frame.f_back  # type: ignore[assignment]
    for _ in range(3):
        frame = frame.f_back if frame is not None else None  # type: ignore[assignment]
        if frame is None:
            return None
        local = frame.f_locals
        if "response" in local:
            return local["response"]
        owner = local.get("self")
        if isinstance(owner, CatchResponse):
            return owner._response
    return None


class WorkerEvents:
    """Fires a locustfile's listeners in this worker; see the module docstring."""

    def __init__(
        self,
        environment: Environment,
        worker_id: str,
        recorder: StatsRecorder,
        leave: Callable[[], None] | None = None,
    ) -> None:
        self.environment = environment
        self.worker_id = worker_id
        self.recorder = recorder
        self._leave = leave
        self.started = False
        self.cumulative = RequestStats()
        events = environment.events
        events.on_error = self._listener_failed
        events.request.bind(recorder)
        events.request.find_response = response_from_frames
        record_exception = type(recorder).record_exception.__get__(recorder)

        def record_and_tell(exc: BaseException) -> None:
            record_exception(exc)
            if events.user_error._handlers:
                events.user_error.fire(
                    user_instance=_current_user(), exception=exc, tb=exc.__traceback__
                )

        recorder.record_exception = record_and_tell  # type: ignore[method-assign]
        environment.set_stats_source(self._stats)

    def _stats(self) -> RequestStats:
        merged = RequestStats()
        merged.merge(self.cumulative)
        merged.merge(self.recorder.current)
        return merged

    def _listener_failed(self, hook: str, exc: BaseException) -> None:
        print_listener_error(hook, exc)
        type(self.recorder).record_exception(self.recorder, exc)

    def attach(self, runtime: Runtime) -> None:
        """Give the runtime's users this environment, then fire ``init``."""
        env = self.environment
        controls = RunnerControls(
            state=lambda: runtime.state,
            user_count=runtime.user_count,
            quit=self.quit,
            stop=lambda: gevent.spawn(runtime.stop),
        )
        env.runner = WorkerRunner(env, controls, client_id=self.worker_id)
        runtime.context.environment = env
        runtime.on_spawned = self.spawning_complete
        env.events.init.fire(environment=env, runner=env.runner, web_ui=None)

    def quit(self) -> None:
        """``runner.quit()`` from user code: this worker stops its users and leaves."""
        if self._leave is not None:
            gevent.spawn(self._leave)

    def starting(self) -> None:
        """The swarm is starting (first targets since load or stop): ``test_start``."""
        if self.started:
            return
        self.started = True
        self.cumulative = RequestStats()
        self.environment.events.test_start.fire(environment=self.environment)

    def spawning_complete(self, user_count: int) -> None:
        """The ramp reached its targets."""
        self.environment.events.spawning_complete.fire(user_count=user_count)

    def stopping(self) -> None:
        """Users have stopped, the last report is not sent yet: ``test_stop``."""
        if not self.started:
            return
        self.started = False
        self.environment.events.test_stop.fire(environment=self.environment)

    def quitting(self) -> None:
        """The worker is about to exit."""
        self.environment.events.quitting.fire(environment=self.environment)

    def report(self, delta: RequestStats) -> dict[str, Any] | None:
        """Keep the delta for ``environment.stats``; return ``report_to_master`` data, if any.

        Only when a listener exists is there data; it must be plain data (msgpack:
        str keys, numbers, strings, lists, maps) or it is dropped and counted.
        """
        self.cumulative.merge(delta)
        hook = self.environment.events.report_to_master
        if not hook._handlers:
            return None
        data: dict[str, Any] = {}
        hook.fire(client_id=self.worker_id, data=data)
        try:
            if not all(isinstance(key, str) for key in data):
                raise TypeError("its keys must be strings")
            msgpack.packb(data, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            problem = ConfigError(
                f"report_to_master data cannot travel to the master ({exc}): "
                "put only strings, numbers, lists and dicts with string keys in it"
            )
            type(self.recorder).record_exception(self.recorder, problem)
            return None
        return data


def _current_user() -> User | None:
    """Return the user whose greenlet is running (the runtime starts one per user)."""
    current = gevent.getcurrent()
    for arg in getattr(current, "args", ()):
        user = getattr(arg, "user", arg)
        if isinstance(user, User):
            return user
    return None
