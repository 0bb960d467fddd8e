"""Generator honesty with real processes: a worker whose users burn its CPU is flagged
overloaded in the frames, ``swarm.overloaded`` and ``swarm.workers``; an idle one is not."""

from __future__ import annotations

import threading
import time

import pytest

import notebookswarm as nbs
from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.master_state import OVERLOADED_CPU, OVERLOADED_LAG
from notebookswarm.notebook.swarm import Swarm, SwarmConfig
from notebookswarm.testing import wait_until

CONFIG = SwarmConfig(
    master=MasterConfig(
        heartbeat_interval=0.5, heartbeat_timeout=3.0, master_timeout=5.0, controller_timeout=5.0
    ),
    stop_timeout=1.0,
)


class Burner(nbs.User):
    """Holds the worker's event loop for 50 ms at a time: CPU near 100%, loop lag >= 50 ms."""

    wait_time = nbs.constant(0)

    @nbs.task
    def burn(self) -> None:
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            pass


class Sleeper(nbs.User):
    """Does nothing and waits half a minute between its tasks."""

    wait_time = nbs.constant(30)

    @nbs.task
    def nothing(self) -> None:
        pass


class Frames:
    """Every update frame a swarm delivers, kept for the test to look at."""

    def __init__(self, swarm: Swarm) -> None:
        self.lock = threading.Lock()
        self.frames: list[protocol.Update] = []
        swarm.on_frame(self._add)

    def _add(self, frame: protocol.Update) -> None:
        with self.lock:
            self.frames.append(frame)

    def since(self, index: int) -> list[protocol.Update]:
        with self.lock:
            return self.frames[index:]

    def __len__(self) -> int:
        with self.lock:
            return len(self.frames)


pytestmark = pytest.mark.usefixtures("no_strays")


def flagged(frame: protocol.Update) -> list[str]:
    """Ids of the workers a frame's rows mark overloaded."""
    return [row.id for row in frame.workers if row.overloaded]


def test_a_worker_saturated_by_its_users_is_flagged_overloaded() -> None:
    """Users that burn the worker's CPU raise the overloaded flag in frames and on the swarm."""
    with Swarm(Burner, workers=1, config=CONFIG) as swarm:
        frames = Frames(swarm)
        worker = str(swarm.workers["id"].iloc[0])
        swarm.start(users=2, spawn_rate=10)
        wait_until(
            lambda: any(f.overloaded for f in frames.since(0)),
            timeout=20,
            message="a frame flagging the saturated worker",
        )
        frame = next(f for f in frames.since(0) if f.overloaded)
        assert frame.overloaded == [worker]
        assert flagged(frame) == [worker]
        row = next(r for r in frame.workers if r.id == worker)
        assert row.cpu_percent > OVERLOADED_CPU or row.loop_lag > OVERLOADED_LAG
        # The swarm ingests a frame before handing it to callbacks, and the burners keep
        # the flag up, so the controller's view says the same.
        wait_until(lambda: swarm.overloaded == [worker], timeout=5, message="swarm.overloaded")
        workers = swarm.workers
        assert workers.loc[workers["id"] == worker, "overloaded"].tolist() == [True]
        swarm.stop()


def test_an_idle_worker_is_not_flagged_overloaded() -> None:
    """A worker whose users only wait settles unflagged: three frames in a row without the flag."""
    with Swarm(Sleeper, workers=1, config=CONFIG) as swarm:
        frames = Frames(swarm)
        swarm.start(users=5, spawn_rate=50)
        swarm.wait("spawned", timeout=20)
        first = len(frames)

        def three_clean_in_a_row() -> bool:
            run = 0
            for frame in frames.since(first):
                run = run + 1 if not frame.overloaded and not flagged(frame) else 0
                if run >= 3:
                    return True
            return False

        wait_until(three_clean_in_a_row, timeout=20, message="three unflagged frames in a row")
        assert swarm.overloaded == []
        assert not swarm.workers["overloaded"].any()
        assert swarm.user_count == 5
        swarm.stop()
