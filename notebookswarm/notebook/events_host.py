"""Locust's master-side events, run in the controller (a notebook kernel or the CLI).

The master process never runs user code, so the listeners a locustfile registers for the
master's side run here, in the process that loaded the file: ``init``, ``test_start``,
``spawning_complete``, ``worker_report``, ``test_stop`` and ``quitting``. There
``environment.runner`` is a ``MasterRunner`` whose ``state``, ``user_count`` and
``stats`` follow the update frames, and whose ``quit()`` stops the swarm.

The controller calls, in order::

    host = ControllerEvents(loaded, quit=swarm_stop, ...)  # after the file is loaded
    host.fire_init()                      # once the swarm exists (workers may still join)
    host.fire_test_start()                # just before each start command
    host.on_update(update)                # every update, on the receive thread
    host.fire_test_stop()                 # after stop() has seen the final update
    host.fire_quitting()                  # when the swarm closes

``on_update`` fires ``worker_report(client_id, data)`` once for each worker report that
carried ``report_to_master`` data, and ``test_stop`` itself when a frame says the swarm
has stopped, after that frame's reports — so a ``test_stop`` listener sees every report.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from notebookswarm.cluster import protocol
from notebookswarm.stats.requests import RequestStats
from notebookswarm.users.compat.environment import MasterRunner, RunnerControls
from notebookswarm.users.compat.loading import LoadedCode
from notebookswarm.users.compat.shape import LocustShape


class ControllerEvents:
    """Run a loaded locustfile's master-side listeners; see the module docstring."""

    def __init__(
        self,
        loaded: LoadedCode,
        *,
        quit: Callable[[], None] = lambda: None,
        stop: Callable[[], None] | None = None,
        worker_count: Callable[[], int] = lambda: 0,
    ) -> None:
        self.loaded = loaded
        self.environment = env = loaded.environment
        self._lock = threading.Lock()
        self.total = RequestStats()
        self.state = "ready"
        self.user_count = 0
        self._started = False
        self._inited = False
        self._quitting = False
        controls = RunnerControls(
            state=lambda: self.state,
            user_count=lambda: self.user_count,
            # quit() may be called from a listener on the receive thread, which stopping
            # the swarm waits for: stop from a thread of its own.
            quit=lambda: _in_thread(quit),
            stop=lambda: _in_thread(stop or quit),
            worker_count=worker_count,
        )
        env.runner = MasterRunner(env, controls)
        env.set_stats_source(self._stats)

    def _stats(self) -> RequestStats:
        with self._lock:
            copy = RequestStats()
            copy.merge(self.total)
            return copy

    @property
    def events(self) -> Any:
        """The file's ``events``."""
        return self.environment.events

    def shape(self) -> LocustShape | None:
        """Return the file's LoadTestShape as a shape ``Swarm.shape()`` follows, or None."""
        shape = self.loaded.shape()
        return None if shape is None else LocustShape(shape, self.environment.runner)

    def fire_init(self) -> None:
        """Fire ``init`` (once)."""
        if self._inited:
            return
        self._inited = True
        env = self.environment
        env.events.init.fire(environment=env, runner=env.runner, web_ui=None)

    def fire_test_start(self) -> None:
        """Fire ``test_start`` unless a run is already going; statistics start over."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self.total = RequestStats()
        self.environment.events.test_start.fire(environment=self.environment)

    def fire_test_stop(self) -> None:
        """Fire ``test_stop`` if a run was going (a second call does nothing)."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        self.environment.events.test_stop.fire(environment=self.environment)

    def fire_quitting(self) -> None:
        """Fire ``quitting`` (once), ending a run still going first."""
        self.fire_test_stop()
        if not self._quitting:
            self._quitting = True
            self.environment.events.quitting.fire(environment=self.environment)

    def on_update(self, update: protocol.Update) -> None:
        """Take one update from the master."""
        delta = RequestStats.from_wire(update.stats) if update.stats else None
        state = update.state or self.state
        with self._lock:
            if delta is not None:
                self.total.merge(delta)
            previous, self.state = self.state, state
            self.user_count = update.users
        for report in update.custom:
            self.environment.events.worker_report.fire(client_id=report.worker, data=report.data)
        if state == "running" and previous == "spawning":
            self.environment.events.spawning_complete.fire(user_count=self.user_count)
        if state == "stopped" and previous != "stopped":
            self.fire_test_stop()


def _in_thread(action: Callable[[], None]) -> None:
    threading.Thread(target=action, daemon=True, name="notebookswarm-runner-quit").start()
