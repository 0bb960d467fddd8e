"""The open model's schedule on a fake clock: arrivals fall due, wait, drop and run late.

An :class:`~notebookswarm.engine.arrivals.ArrivalRunner` here reads a
:class:`~notebookswarm.testing.FakeClock`, so each test says what time it is instead of
sleeping; the rates on real workers are tested in tests/engine/test_arrivals.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import pytest
from gevent.event import Event

from notebookswarm import User, task
from notebookswarm.engine.arrivals import ArrivalRunner
from notebookswarm.stats.requests import StatsRecorder
from notebookswarm.testing import FakeClock, wait_until
from notebookswarm.users.core import UserContext

MS = 1_000_000


class Job(User):
    """Each task records one 1 ms request, after the gate opens (it is open unless shut)."""

    gate = Event()
    runs: list[float] = []
    clock = FakeClock()

    @task
    def work(self) -> None:
        self.gate.wait()
        self.runs.append(self.clock())
        self.context.recorder.record_request("GET", "/job", MS, 0, None)


@pytest.fixture
def runner() -> Iterator[tuple[ArrivalRunner, StatsRecorder, FakeClock]]:
    """An arrival runner of Job users on a fresh fake clock (at 50 s), stopped after."""
    clock = FakeClock(50.0)
    Job.clock, Job.runs = clock, []
    Job.gate.set()
    recorder = StatsRecorder()
    arrivals = ArrivalRunner({"Job": Job}, recorder, UserContext(recorder=recorder), clock=clock)
    yield arrivals, recorder, clock
    Job.gate.set()
    arrivals.stop(timeout=2)


def test_arrivals_fall_due_on_the_clock_and_count_their_lateness(
    runner: tuple[ArrivalRunner, StatsRecorder, FakeClock],
) -> None:
    """At 10 a second one arrival runs at once and one more per 0.1 s of the clock, none
    early; those that start more than 10 ms behind their due time count as late, and their
    corrected latency adds the lateness to the request's own."""
    arrivals, recorder, clock = runner
    arrivals.set_rate(10, max_users=5, poisson=False, max_backlog=10)
    wait_until(lambda: len(Job.runs) == 1, timeout=5, message="the first arrival at once")
    assert recorder.current.arrivals == 1
    clock.advance(0.09)
    gevent.sleep(0.15)  # longer than the runner waits for a due time: nothing is due yet
    assert len(Job.runs) == 1
    clock.advance(0.16)  # 0.25 s: due at 0.1 and 0.2 s, 150 and 50 ms ago
    wait_until(lambda: len(Job.runs) == 3, timeout=5, message="two more arrivals")
    current = recorder.current
    assert (current.arrivals, current.late, current.dropped) == (3, 2, 0)
    assert Job.runs == [50.0, 50.25, 50.25]
    stats = current.endpoints["GET", "/job"]
    assert stats.latency.max == pytest.approx(MS, rel=0.01)
    assert stats.corrected_latency.max == pytest.approx(151 * MS, rel=0.01)


def test_a_full_pool_backlogs_then_drops_and_every_arrival_is_accounted_for(
    runner: tuple[ArrivalRunner, StatsRecorder, FakeClock],
) -> None:
    """With its one user busy, arrivals wait in the backlog up to max_backlog and the rest
    are dropped and counted; once free, the user serves the backlog in order, late."""
    arrivals, recorder, clock = runner
    Job.gate.clear()
    arrivals.set_rate(10, max_users=1, poisson=False, max_backlog=2)
    wait_until(lambda: recorder.current.arrivals == 1, timeout=5, message="the first arrival")
    clock.advance(0.45)  # due at 0.1 and 0.2 s (backlogged), 0.3 and 0.4 s (dropped)
    wait_until(lambda: recorder.current.arrivals == 5, timeout=5, message="four more due")
    assert (len(arrivals.backlog), recorder.current.dropped) == (2, 2)
    assert Job.runs == []
    Job.gate.set()
    wait_until(lambda: len(Job.runs) == 3, timeout=5, message="the backlog served")
    current = recorder.current
    assert (current.arrivals, current.late, current.dropped) == (5, 2, 2)
    assert current.endpoints["GET", "/job"].requests + current.dropped == current.arrivals
    assert current.endpoints["GET", "/job"].corrected_latency.max == pytest.approx(
        351 * MS, rel=0.01
    )
