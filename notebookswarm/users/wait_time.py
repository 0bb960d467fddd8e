"""How long a user waits between tasks, shaped like Locust's helpers.

Each helper returns a function of the user (or task set) that gives seconds to wait.
Assign it as a class attribute, ``wait_time = between(1, 5)``; the runtime calls
``self.wait_time()`` after every task.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from notebookswarm.errors import ConfigError

WaitTime = Callable[[Any], float]


def _seconds(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{what} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def between(min_wait: float, max_wait: float) -> WaitTime:
    """Wait a uniformly random time between ``min_wait`` and ``max_wait`` seconds."""
    low, high = _seconds(min_wait, "min_wait"), _seconds(max_wait, "max_wait")
    if high < low:
        raise ConfigError(f"between({min_wait!r}, {max_wait!r}): the minimum exceeds the maximum")

    def wait_between(_user: Any) -> float:
        return random.uniform(low, high)

    return wait_between


def constant(wait: float) -> WaitTime:
    """Wait the same number of seconds after every task."""
    seconds = _seconds(wait, "constant wait")

    def wait_constant(_user: Any) -> float:
        return seconds

    return wait_constant


def constant_pacing(wait: float) -> WaitTime:
    """Start a task every ``wait`` seconds: wait what is left after the task's own time."""
    pace = _seconds(wait, "constant_pacing wait")

    def wait_pacing(user: Any) -> float:
        started: float | None = getattr(user, "_task_started", None)
        if started is None:
            return pace
        return max(0.0, pace - (time.monotonic() - started))

    return wait_pacing


def constant_throughput(task_runs_per_second: float) -> WaitTime:
    """Run at most ``task_runs_per_second`` tasks a second per user (the inverse of pacing)."""
    rate = _seconds(task_runs_per_second, "constant_throughput rate")
    if rate == 0:
        raise ConfigError("constant_throughput(0) would never run a task: pass a rate > 0")
    return constant_pacing(1.0 / rate)
