"""The pure spawning schedule: which user to start or stop next, and when."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notebookswarm.engine.ramp import next_change, step_time


def ramp(current: Mapping[str, int], targets: Mapping[str, int]) -> list[tuple[str, int]]:
    """Apply next_change until it returns None; return the steps taken."""
    have = dict(current)
    steps: list[tuple[str, int]] = []
    while (change := next_change(have, targets)) is not None:
        name, delta = change
        have[name] = have.get(name, 0) + delta
        steps.append(change)
        assert len(steps) <= sum(current.values()) + sum(targets.values()), "ramp never ends"
    return steps


def counts_after(steps: list[tuple[str, int]], start: Mapping[str, int]) -> dict[str, int]:
    have = dict(start)
    for name, delta in steps:
        have[name] = have.get(name, 0) + delta
    return have


def test_growing_from_zero_interleaves_classes_in_proportion() -> None:
    """Growing to {A: 30, B: 10} from nothing starts three A for each B, every 4 steps."""
    steps = ramp({}, {"A": 30, "B": 10})
    assert len(steps) == 40
    assert all(delta == +1 for _, delta in steps)
    for k in range(1, 11):
        assert counts_after(steps[: 4 * k], {}) == {"A": 3 * k, "B": k}
    assert [name for name, _ in steps[:4]] == ["A", "A", "B", "A"]


def test_equal_targets_alternate_starting_with_the_first_named() -> None:
    """Equal targets take turns, the class named first going first."""
    steps = ramp({}, {"B": 3, "A": 3})
    assert [name for name, _ in steps] == ["B", "A"] * 3


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 80), st.integers(1, 80))
def test_two_classes_never_stray_a_user_from_their_share(a: int, b: int) -> None:
    """Growing two classes from nothing, each is always within one user of its share."""
    steps = ramp({}, {"A": a, "B": b})
    for n in range(1, len(steps) + 1):
        have = counts_after(steps[:n], {})
        assert abs(have.get("A", 0) - a * n / (a + b)) < 1
        assert abs(have.get("B", 0) - b * n / (a + b)) < 1


def test_small_classes_wait_for_their_share_instead_of_going_first() -> None:
    """{A: 1, B: 1, C: 8}: A and B are spread into the ramp, not put at its front."""
    steps = ramp({}, {"A": 1, "B": 1, "C": 8})
    assert "".join(name for name, _ in steps) == "CCCACCBCCC"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("ABCDEF"), st.integers(1, 60), min_size=2, max_size=6))
def test_many_classes_stay_near_their_share_at_every_step(targets: dict[str, int]) -> None:
    """Growing up to six classes from nothing, every class is within 1.25 users of its share
    of the users started so far, at every step (the rule it replaced strayed by 2.9;
    Webster's apportionment by 1.5)."""
    steps = ramp({}, targets)
    total = sum(targets.values())
    for n in range(1, len(steps) + 1):
        have = counts_after(steps[:n], {})
        for name, target in targets.items():
            assert abs(have.get(name, 0) - target * n / total) < 1.25


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from("ABCDE"), st.integers(0, 40), max_size=5),
    st.dictionaries(st.sampled_from("ABCDEF"), st.integers(0, 40), max_size=6),
)
def test_any_ramp_reaches_the_targets_by_the_shortest_path(
    current: dict[str, int], targets: dict[str, int]
) -> None:
    """From any mix, the ramp ends exactly at the targets, stops every surplus user before
    starting any, and never overshoots a class."""
    steps = ramp(current, targets)
    final = counts_after(steps, current)
    assert {k: v for k, v in final.items() if v} == {k: v for k, v in targets.items() if v}
    surplus = sum(max(0, have - targets.get(name, 0)) for name, have in current.items())
    missing = sum(max(0, target - current.get(name, 0)) for name, target in targets.items())
    assert [delta for _, delta in steps] == [-1] * surplus + [+1] * missing
    peak = max(sum(current.values()), sum(targets.values()))
    have = dict(current)
    for name, delta in steps:
        have[name] = have.get(name, 0) + delta
        assert have[name] >= 0
        assert sum(have.values()) <= peak
        if delta > 0:
            assert have[name] <= targets[name]


def test_stops_come_before_starts_when_the_mix_changes() -> None:
    """Changing {A: 5} to {A: 2, B: 3} stops three A before starting any B."""
    steps = ramp({"A": 5}, {"A": 2, "B": 3})
    assert steps == [("A", -1)] * 3 + [("B", +1)] * 3


def test_classes_missing_from_the_targets_are_stopped() -> None:
    """A class absent from the targets is stopped down to zero, then nothing changes."""
    steps = ramp({"A": 2, "Gone": 3}, {"A": 2})
    assert steps == [("Gone", -1)] * 3


def test_the_class_furthest_over_its_target_stops_first() -> None:
    """Shrinking stops the class with the largest share of surplus users first."""
    assert next_change({"A": 10, "B": 10}, {"A": 8, "B": 5}) == ("B", -1)
    assert next_change({"A": 10, "B": 4}, {"A": 5, "B": 3}) == ("A", -1)


@pytest.mark.parametrize(
    ("current", "targets"),
    [
        ({}, {}),
        ({"A": 3}, {"A": 3}),
        ({"A": 3, "B": 0}, {"A": 3}),
        ({"Gone": 0}, {}),
        ({}, {"A": 0}),
        ({"A": 1, "B": 2}, {"A": 1, "B": 2, "C": 0}),
    ],
)
def test_nothing_changes_at_the_target(current: dict[str, int], targets: dict[str, int]) -> None:
    """next_change returns None once every class is at its target."""
    assert next_change(current, targets) is None


def test_step_time_spaces_steps_on_an_absolute_schedule() -> None:
    """Step n of a ramp at r per second is due at start + n / r; the first is due at once."""
    assert step_time(100.0, 0, 4.0) == 100.0
    assert step_time(100.0, 1, 4.0) == 100.25
    assert step_time(100.0, 10, 4.0) == 102.5
    assert step_time(100.0, 3, 0.5) == 106.0  # fractional rates: one user every 2 s
    assert [step_time(0.0, n, 2.0) for n in range(5)] == [0.0, 0.5, 1.0, 1.5, 2.0]


@given(st.floats(0, 1e6), st.integers(0, 10_000), st.floats(0.01, 1_000))
def test_step_time_does_not_depend_on_earlier_steps(start: float, step: int, rate: float) -> None:
    """Each step's time is computed from the start alone, and later steps are never earlier."""
    assert step_time(start, step, rate) == start + step / rate
    assert step_time(start, step + 1, rate) >= step_time(start, step, rate)
