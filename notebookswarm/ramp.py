"""Which user to start or stop next, and when: the pure core of spawning.

The runtime asks :func:`next_change` after every step and sleeps until
:func:`step_time`; both are plain functions of their inputs, so ramps are tested exactly.
"""

from __future__ import annotations

from collections.abc import Mapping


def next_change(current: Mapping[str, int], targets: Mapping[str, int]) -> tuple[str, int] | None:
    """Return ``(class name, +1 or -1)`` for the next user to start or stop, or None.

    Stops come first, so a change of mix never runs more users than the larger of the
    old and new totals. Among classes to grow, the one missing the largest fraction of
    its target goes next, which interleaves classes in proportion to their targets; ties
    go to the class named first.
    """
    best: tuple[float, str] | None = None
    for name, target in targets.items():
        have = current.get(name, 0)
        if have > target:
            excess = (have - target) / have
            if best is None or excess > best[0]:
                best = (excess, name)
    for name, have in current.items():
        if name not in targets and have > 0 and (best is None or best[0] < 1.0):
            best = (1.0, name)
    if best is not None:
        return best[1], -1
    for name, target in targets.items():
        have = current.get(name, 0)
        if have < target:
            missing = (target - have) / target
            if best is None or missing > best[0]:
                best = (missing, name)
    return None if best is None else (best[1], +1)


def step_time(start: float, step: int, rate: float) -> float:
    """Return when step number ``step`` (0-based) of a ramp at ``rate`` per second is due.

    The first step is due at once; steps are spaced on an absolute schedule, so a late
    step does not delay the ones after it.
    """
    return start + step / rate
