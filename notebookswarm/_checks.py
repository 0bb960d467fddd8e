"""Checks for the numbers people pass in: one message shape everywhere.

Every check returns the value when it is fine and raises :class:`ConfigError` naming the
value and what is expected otherwise, so bad input fails before anything starts.
"""

from __future__ import annotations

import math

from notebookswarm.errors import ConfigError


def check_count(name: str, value: object, minimum: int = 0, hint: str = "") -> int:
    """Return ``value`` if it is an integer >= ``minimum`` (bools are not integers)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}{hint}")
    return value


def check_rate(name: str, value: object, unit: str, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number > 0 (>= 0 with ``allow_zero``)."""
    bound = ">= 0" if allow_zero else "> 0"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        raise ConfigError(f"{name} must be {bound} {unit}, got {value!r}")
    return float(value)
