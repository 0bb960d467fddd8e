"""Load shapes as data: how many users (or arrivals a second) to run at each moment.

A shape answers ``value_at(elapsed)`` with a number, or None when it is over; the
controller evaluates it ten times a second and sends what changed, so shapes follow a
plan at sub-second resolution and are tested without sockets or sleeps. Shapes here:
:class:`StepLoad`, :class:`Stages` (linear ramps, like k6's stages), and any callable of
elapsed seconds or any object with a ``tick()`` (Locust's ``LoadTestShape`` style),
wrapped by :func:`as_shape`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from notebookswarm.errors import ConfigError

_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"^\s*(?:{_NUMBER}h)?\s*(?:{_NUMBER}m)?\s*(?:{_NUMBER}s?)?\s*$")


def parse_duration(value: float | str) -> float:
    """Return seconds from 30, 2.5, "30s", "5m", "1h30m"; raise ConfigError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)) and value.strip():
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ConfigError(f"duration {value!r} is not a time: pass seconds or '30s', '5m', '1h'")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"duration {value!r} must be > 0")
    return seconds


class Shape(Protocol):
    """Anything that says what to run ``elapsed`` seconds in (None: the shape is over)."""

    def value_at(self, elapsed: float) -> float | None: ...


@dataclass(frozen=True)
class Stages:
    """Ramp linearly to each ``(duration, target)`` in turn, starting from ``start``."""

    stages: tuple[tuple[float, float], ...]
    start: float = 0.0

    @classmethod
    def of(cls, stages: Sequence[tuple[float | str, float]], start: float = 0.0) -> Stages:
        """Build from ``[("30s", 100), (60, 100), ("10s", 0)]``, checking every value."""
        checked = []
        for item in stages:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise ConfigError(f"a stage is (duration, target), got {item!r}")
            duration, target = item
            if isinstance(target, bool) or not isinstance(target, int | float) or target < 0:
                raise ConfigError(f"a stage's target must be a number >= 0, got {target!r}")
            checked.append((parse_duration(duration), float(target)))
        if not checked:
            raise ConfigError("stages are empty: pass at least one (duration, target)")
        return cls(tuple(checked), float(start))

    def value_at(self, elapsed: float) -> float | None:
        """The planned value: linear within a stage, from the previous stage's target."""
        if elapsed < 0:
            return self.start
        begin, level = 0.0, self.start
        for duration, target in self.stages:
            if elapsed < begin + duration:
                return level + (target - level) * (elapsed - begin) / duration
            begin, level = begin + duration, target
        return None

    @property
    def duration(self) -> float:
        """Seconds until the last stage ends."""
        return sum(d for d, _ in self.stages)


@dataclass(frozen=True)
class _Function:
    fn: Callable[[float], Any]

    def value_at(self, elapsed: float) -> float | None:
        return _number(self.fn(elapsed))


@dataclass(frozen=True)
class _Ticker:
    obj: Any

    def value_at(self, elapsed: float) -> float | None:
        return _number(self.obj.tick())


def _number(value: Any) -> float | None:
    if isinstance(value, tuple):  # Locust's tick() returns (users, spawn_rate)
        value = value[0] if value else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"a shape must give a number >= 0 or None, got {value!r}")
    return float(value)


def as_shape(shape: Any) -> Shape:
    """Accept a shape, a list of (duration, target) stages, a callable, or a tick() object."""
    if hasattr(shape, "value_at"):
        return shape  # type: ignore[no-any-return]
    if isinstance(shape, list | tuple):
        return Stages.of(shape)
    if hasattr(shape, "tick"):
        return _Ticker(shape)
    if callable(shape):
        return _Function(shape)
    raise ConfigError(
        f"{shape!r} is not a load shape: pass stages [(duration, target), ...], a function "
        "of elapsed seconds, or an object with tick()"
    )


@dataclass(frozen=True)
class Step:
    """One step of a step load: ``users`` from ``start`` to ``end`` seconds into the run."""

    users: int
    start: float
    end: float


@dataclass(frozen=True)
class StepLoad:
    """Start at ``start`` users, add ``step`` every ``every`` seconds, up to ``until`` users."""

    start: int
    step: int
    every: float
    until: int

    def __post_init__(self) -> None:
        for name in ("start", "step", "until"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"step load {name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.every, int | float) and math.isfinite(self.every)) or (
            self.every <= 0
        ):
            raise ConfigError(f"step load every must be > 0 seconds, got {self.every!r}")
        if self.until < self.start:
            raise ConfigError(
                f"step load until={self.until} is below start={self.start}: raise until"
            )

    def steps(self) -> list[Step]:
        """Return every step with its start and end in seconds."""
        counts = list(range(self.start, self.until + 1, self.step))
        if counts[-1] != self.until:
            counts.append(self.until)
        return [Step(n, i * self.every, (i + 1) * self.every) for i, n in enumerate(counts)]

    def value_at(self, elapsed: float) -> float | None:
        """The shape protocol: :meth:`users_at`."""
        return self.users_at(elapsed)

    def users_at(self, elapsed: float) -> int | None:
        """Return the users to run ``elapsed`` seconds in, or None once the last step is over."""
        if elapsed < 0:
            return None
        index = int(elapsed // self.every)
        steps = self.steps()
        return steps[index].users if index < len(steps) else None

    @property
    def duration(self) -> float:
        """Seconds from the first step's start to the last step's end."""
        return len(self.steps()) * self.every
