"""Locust's ``LoadTestShape``, and the adapter that lets a swarm follow one.

A locustfile's shape subclasses :class:`LoadTestShape` and answers ``tick()`` with
``(users, spawn_rate)``, ``(users, spawn_rate, user_classes)`` or None (the test is
over), reading the time with ``self.get_run_time()``. :class:`LocustShape` wraps one in
the interface of ``notebookswarm.notebook.shapes``: ``value_at(elapsed)`` (the users),
plus :meth:`LocustShape.step_at` for the spawn rate and classes. The follower's
``elapsed`` becomes the shape's run time, so a shape is tested with plain numbers,
without sleeping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from notebookswarm.errors import ConfigError


class LoadTestShape:
    """Subclass and define ``tick()``; the swarm follows it about ten times a second.

    ``runner`` is the controller's runner (``environment.runner``) once the swarm has
    one. ``use_common_options`` and ``abstract`` are Locust's and kept for its files.
    """

    abstract: ClassVar[bool] = True
    use_common_options: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "abstract" not in cls.__dict__:
            cls.abstract = False

    def __init__(self) -> None:
        self.runner: Any = None
        self._origin = time.monotonic()
        self._elapsed: float | None = None  # set by LocustShape: the follower's clock
        self._offset = 0.0

    def reset_time(self) -> None:
        """Start the run time over from now."""
        if self._elapsed is None:
            self._origin = time.monotonic()
        else:
            self._offset = self._elapsed

    def get_run_time(self) -> float:
        """Seconds since the shape started (or since ``reset_time()``)."""
        if self._elapsed is None:
            return time.monotonic() - self._origin
        return self._elapsed - self._offset

    def get_current_user_count(self) -> int:
        """Users running now in the swarm (0 before a runner is attached)."""
        return int(getattr(self.runner, "user_count", 0) or 0)

    def tick(self) -> tuple[Any, ...] | None:
        """Return ``(users, spawn_rate[, user_classes])``, or None to end the test."""
        raise NotImplementedError(f"{type(self).__name__} must define tick()")


@dataclass(frozen=True)
class ShapeStep:
    """What a shape asks for at one moment; ``classes`` None means every class."""

    users: int
    spawn_rate: float
    classes: tuple[str, ...] | None = None


class LocustShape:
    """A ``LoadTestShape`` seen as a notebookswarm shape (``value_at``) and as steps."""

    def __init__(self, shape: LoadTestShape, runner: Any = None) -> None:
        if isinstance(shape, type):
            shape = shape()
        if not callable(getattr(shape, "tick", None)):
            raise ConfigError(f"{shape!r} has no tick(): subclass LoadTestShape and define it")
        self.shape = shape
        if runner is not None:
            shape.runner = runner
        self.last: ShapeStep | None = None

    def step_at(self, elapsed: float) -> ShapeStep | None:
        """Run the shape's ``tick()`` with its run time at ``elapsed`` seconds; check it."""
        self.shape._elapsed = max(0.0, float(elapsed))
        answer = self.shape.tick()
        self.last = None if answer is None else _step(answer, type(self.shape).__name__)
        return self.last

    def value_at(self, elapsed: float) -> float | None:
        """The users wanted ``elapsed`` seconds in, or None once the shape is over."""
        step = self.step_at(elapsed)
        return None if step is None else float(step.users)


def _step(answer: Any, owner: str) -> ShapeStep:
    """Turn a tick() answer into a ShapeStep, or raise ConfigError saying what is wrong."""
    if not isinstance(answer, tuple | list) or len(answer) not in (2, 3):
        raise ConfigError(
            f"{owner}.tick() returned {answer!r}: return (users, spawn_rate), "
            "(users, spawn_rate, user_classes) or None"
        )
    users, rate = answer[0], answer[1]
    if isinstance(users, bool) or not isinstance(users, int | float) or users < 0:
        raise ConfigError(f"{owner}.tick() gave users={users!r}: a number >= 0")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        raise ConfigError(f"{owner}.tick() gave spawn_rate={rate!r}: a number > 0")
    classes: tuple[str, ...] | None = None
    if len(answer) == 3 and answer[2] is not None:
        classes = tuple(c if isinstance(c, str) else c.__name__ for c in answer[2])
    return ShapeStep(round(users), float(rate), classes)


def shape_classes_in(namespace: dict[str, Any]) -> list[type[LoadTestShape]]:
    """Return the concrete LoadTestShape subclasses defined in a module's namespace."""
    return [
        value
        for value in namespace.values()
        if isinstance(value, type)
        and issubclass(value, LoadTestShape)
        and not value.__dict__.get("abstract", False)
    ]
