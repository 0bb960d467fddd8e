"""Load shapes are plans: what to run at each moment, checked without a swarm."""

from __future__ import annotations

import pytest

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.shapes import Stages, StepLoad, as_shape, parse_duration


def test_stages_ramp_linearly_between_targets() -> None:
    """Stages give the planned value at every second: linear ramps, holds, then None."""
    plan = Stages.of([("10s", 100), (5, 100), ("5s", 0)])
    assert [plan.value_at(t) for t in range(0, 21)] == [
        0, 10, 20, 30, 40, 50, 60, 70, 80, 90,
        100, 100, 100, 100, 100,
        100, 80, 60, 40, 20, None,
    ]  # fmt: skip
    assert plan.value_at(2.5) == 25  # sub-second resolution
    assert plan.duration == 20


def test_stages_start_from_a_given_level() -> None:
    """A stage ramps from the previous target, and the first from ``start``."""
    plan = Stages.of([(4, 0)], start=40)
    assert [plan.value_at(t) for t in (0, 1, 2, 3)] == [40, 30, 20, 10]


def test_step_load_is_a_shape() -> None:
    """A step load holds each step for ``every`` seconds and ends after the last."""
    plan = StepLoad(start=10, step=10, every=2, until=35)
    assert [s.users for s in plan.steps()] == [10, 20, 30, 35]
    assert [plan.value_at(t) for t in (0, 1.9, 2, 5.5, 7.9, 8)] == [10, 10, 20, 30, 35, None]


def test_custom_shapes_as_functions_and_tickers() -> None:
    """A function of elapsed seconds and an object with tick() (Locust style) are shapes."""
    square = as_shape(lambda t: 50 if int(t) % 2 == 0 else 10)
    assert [square.value_at(t) for t in (0, 1, 2, 3)] == [50, 10, 50, 10]

    class Ticker:
        def __init__(self) -> None:
            self.calls = 0

        def tick(self) -> tuple[int, float] | None:
            self.calls += 1
            return (self.calls * 5, 10.0) if self.calls < 3 else None

    ticker = as_shape(Ticker())
    assert [ticker.value_at(0), ticker.value_at(0), ticker.value_at(0)] == [5, 10, None]


@pytest.mark.parametrize(
    ("shape", "needle"),
    [
        ([], "stages are empty"),
        ([(10,)], "a stage is (duration, target)"),
        ([("ten seconds", 5)], "'ten seconds' is not a time"),
        ([(10, -5)], "target must be a number >= 0, got -5"),
        (42, "42 is not a load shape"),
    ],
)
def test_bad_shapes_say_what_is_wrong(shape: object, needle: str) -> None:
    """A malformed shape raises ConfigError naming the value."""
    with pytest.raises(ConfigError) as info:
        as_shape(shape)
    assert needle in str(info.value)


def test_durations_read_like_people_write_them() -> None:
    """Durations accept seconds and '30s', '5m', '1h30m'; nonsense is refused."""
    assert [parse_duration(x) for x in (2.5, "30s", "5m", "1h30m", "90")] == [
        2.5, 30, 300, 5400, 90,
    ]  # fmt: skip
    for bad in ("", "fast", -1, 0, True):
        with pytest.raises(ConfigError):
            parse_duration(bad)  # type: ignore[arg-type]
