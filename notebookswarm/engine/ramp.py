"""Which user to start or stop next, and when: the pure core of spawning.

The runtime asks :func:`next_change` after every step and sleeps until
:func:`step_time`; both are plain functions of their inputs, so ramps are tested exactly.
"""

from __future__ import annotations

from collections.abc import Mapping


def next_change(current: Mapping[str, int], targets: Mapping[str, int]) -> tuple[str, int] | None:
    """Return ``(class name, +1 or -1)`` for the next user to start or stop, or None.

    Stops come first, so a change of mix never runs more users than the larger of the
    old and new totals. Among classes to grow, the one furthest short of its share of the
    users started so far, counting the next one, goes next (the rule of nginx's smooth
    weighted round robin). Every class stays within about one user of its share at every
    step, and a class of 1 in {1, 1, 8} comes in near the middle of the ramp rather than
    at its front. Ties go to the class named first.
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
    total = sum(targets.values())
    started = sum(min(current.get(name, 0), target) for name, target in targets.items())
    for name, target in targets.items():
        have = current.get(name, 0)
        if have < target:
            behind = target * (started + 1) / total - have  # short of its share after one more
            if best is None or behind > best[0]:
                best = (behind, name)
    return None if best is None else (best[1], +1)


def step_time(start: float, step: int, rate: float) -> float:
    """Return when step number ``step`` (0-based) of a ramp at ``rate`` per second is due.

    The first step is due at once; steps are spaced on an absolute schedule, so a late
    step does not delay the ones after it.
    """
    return start + step / rate
