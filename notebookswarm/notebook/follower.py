"""Follow a load shape on a thread: evaluate it ten times a second, send what changed.

:class:`ShapeFollower` owns the thread. It steers through two callables (set the users,
set the rate) and stops the swarm at the end of the shape. A shape whose evaluation
raises stops the swarm too; the exception is kept, with its traceback, for ``wait()`` to
raise — a broken shape never leaves a swarm running unattended.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from notebookswarm.errors import NotebookSwarmError
from notebookswarm.notebook.shapes import Shape


@dataclass(frozen=True)
class Plan:
    """A shape being followed: what it steers, since when, and whether its end stops."""

    shape: Shape
    kind: str  # "users" or "rate"
    began: float
    stop_at_end: bool


class ShapeFollower:
    """The thread that follows one plan at a time (a new plan replaces the old)."""

    def __init__(
        self,
        set_users: Callable[[int], None],
        set_rate: Callable[[float], None],
        stop: Callable[[], None],
        changed: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        every: float = 0.1,
    ) -> None:
        self._set_users = set_users
        self._set_rate = set_rate
        self._stop_swarm = stop
        self._changed = changed
        self._clock = clock
        self._every = every
        self._lock = threading.Lock()
        self._plan: Plan | None = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self.done = threading.Event()
        self.done.set()
        self.error: BaseException | None = None

    def follow(self, shape: Shape, kind: str, stop_at_end: bool) -> None:
        """Follow ``shape`` from now on, replacing any plan being followed."""
        self.done.clear()
        self.error = None
        with self._lock:
            self._plan = Plan(shape, kind, self._clock(), stop_at_end)
            running = self._thread is not None and self._thread.is_alive()
        if not running:
            self._halt.clear()
            self._thread = threading.Thread(
                target=self._run, daemon=True, name="notebookswarm-shape"
            )
            self._thread.start()

    def halt(self) -> None:
        """Stop following (the swarm is stopping or closing); the thread ends soon."""
        self._halt.set()

    def on_thread(self) -> bool:
        """Say whether the caller is the follower's own thread."""
        return threading.current_thread() is self._thread

    def _run(self) -> None:
        sent: tuple[Plan, float] | None = None
        try:
            while not self._halt.is_set():
                with self._lock:
                    plan = self._plan
                if plan is None:
                    break
                value = plan.shape.value_at(self._clock() - plan.began)
                if value is None:
                    with self._lock:
                        if self._plan is plan:
                            self._plan = None
                    if plan.stop_at_end:
                        self._stop_swarm()
                    break
                if plan.kind == "users":
                    value = float(round(value))
                if sent is None or sent[0] is not plan or sent[1] != value:
                    if plan.kind == "users":
                        self._set_users(int(value))
                    else:
                        self._set_rate(value)
                    sent = (plan, value)
                self._halt.wait(self._every)
        except NotebookSwarmError:
            pass  # closed under us: nothing left to steer
        except Exception as exc:  # the user's shape raised: stop the swarm, keep the reason
            self.error = exc
            with contextlib.suppress(NotebookSwarmError):
                self._stop_swarm()
        finally:
            self.done.set()
            self._changed()
