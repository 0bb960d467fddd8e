"""The stuck watch's decisions, at given times (engine/stuck.py): when a stop counts as stuck."""

from __future__ import annotations

from notebookswarm.engine.stuck import STUCK_GRACE, StopWatch


def looks(watch: StopWatch, start: float, end: float, hub_ran_at: float) -> list[float | None]:
    """The watching thread's looks every 0.25 s from ``start`` to ``end``."""
    out, now = [], start
    while now <= end + 1e-9:
        out.append(watch.overdue(now, hub_ran_at))
        now += 0.25
    return out


def test_a_stop_is_stuck_past_its_timeout_and_the_grace_with_the_hub_silent() -> None:
    watch = StopWatch()
    watch.asked(1.0, now=10.0)
    assert looks(watch, 10.0, 13.0, hub_ran_at=13.0) == [None] * 13  # the hub runs: not stuck
    assert watch.overdue(13.25, hub_ran_at=10.5) == 3.25  # silent 2.75 s, 3.25 s waited


def test_a_finished_stop_is_never_stuck() -> None:
    watch = StopWatch()
    watch.asked(1.0, now=10.0)
    watch.finished()
    assert looks(watch, 10.0, 20.0, hub_ran_at=10.0) == [None] * 41


def test_the_late_copy_of_a_finished_numbered_stop_does_not_arm_the_watch() -> None:
    """The hub finished stop 3 before the heartbeat thread read its copy of it."""
    watch = StopWatch()
    watch.asked(1.0, now=10.0, stop_id=3)
    watch.finished(stop_id=3)
    watch.asked(1.0, now=10.1, stop_id=3)  # the copy, late
    assert watch.asked_at is None
    assert looks(watch, 10.0, 20.0, hub_ran_at=10.0) == [None] * 41
    watch.asked(1.0, now=20.0, stop_id=4)  # the next stop arms it
    assert looks(watch, 20.25, 23.25, hub_ran_at=20.0)[-2:] == [None, 3.25]


def test_a_frozen_process_gives_the_hub_its_grace_after_it_thaws() -> None:
    """SIGSTOP for 6 s during a stop: at the thaw the hub looks silent for 6 s, but it could
    not run either. It is stuck only if it stays silent for the grace after the thaw."""
    watch = StopWatch()
    watch.asked(1.0, now=10.0)
    assert looks(watch, 10.0, 10.5, hub_ran_at=10.5) == [None] * 3
    assert watch.overdue(16.5, hub_ran_at=10.5) is None  # thawed; the hub not yet run
    assert looks(watch, 16.75, 16.5 + STUCK_GRACE, hub_ran_at=10.5) == [None] * 8
    assert watch.overdue(16.75 + STUCK_GRACE, hub_ran_at=10.5) == 6.75 + STUCK_GRACE
