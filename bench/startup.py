"""Time to first request: from ``Swarm.start()`` to the target seeing a request.

A ``Swarm`` with two local workers is built (its master and workers start and join:
reported as ``ready_s``); then ``start()`` is called and the first request to arrive at a
``CountingServer`` in this process is timed on the same monotonic clock. Each repeat uses
a fresh swarm, so no process is warm from the one before.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import wait_for

USERS = """\
from notebookswarm import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(1)

    @task
    def index(self):
        self.client.get("/")
"""


def run(repeats: int = 3, workers: int = 2) -> dict[str, Any]:
    """Median (and every) time from ``Swarm.start()`` to the first request, in ms."""
    from notebookswarm import Swarm, SwarmConfig
    from notebookswarm.testing import CountingServer

    first_ms: list[float] = []
    ready_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="nbs-bench-start-") as tmp:
        users_file = Path(tmp) / "visitor.py"
        users_file.write_text(USERS)
        for _ in range(repeats):
            with CountingServer(keep_log=True) as target:
                built = time.monotonic()
                with Swarm(
                    str(users_file), host=target.url, workers=workers, config=SwarmConfig()
                ) as swarm:
                    began = time.monotonic()
                    swarm.start(users=workers, spawn_rate=100.0)
                    wait_for(lambda: target.log, 30, "the first request")
                    assert target.log is not None
                    first = min(entry[3] for entry in target.log)
                    first_ms.append((first - began) * 1e3)
                    ready_s.append(began - built)
                    swarm.stop()
    return {
        "workers": workers,
        "repeats": repeats,
        "first_request_ms": statistics.median(first_ms),
        "first_request_ms_all": first_ms,
        "ready_s": statistics.median(ready_s),
    }
