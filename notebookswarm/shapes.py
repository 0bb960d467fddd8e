"""Load shapes as data: how many users a swarm should run at each moment.

A shape is a pure function of elapsed seconds; the controller asks it what to run and
sends the answer, so a shape is tested without sockets or sleeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from notebookswarm.errors import ConfigError


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
