"""Memory per waiting user: RSS of one generator process as its users grow.

Both tools run ``FastHttpUser`` users whose task does nothing and who then wait an hour
(``constant(3600)``; ours also once with ``park_after = None``, so that each user keeps
its greenlet through the wait, as waits shorter than 5 s do), in one process: a
notebookswarm worker steered by a ``Swarm``, and ``locust --headless`` steered by a
``LoadTestShape`` that reads the wanted count from a file. At each step the harness waits
until every user has started, lets them settle into their wait, and reads the RSS; RSS
per user is ``(RSS(n) - RSS(1)) / (n - 1)``, the growth that users cause rather than the
interpreter and libraries every process has.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from procs import reap, rss, wait_for

OURS_IDLE = """\
from notebookswarm import FastHttpUser, constant, task


class Idle(FastHttpUser):
    wait_time = constant(3600)

    @task
    def idle(self):
        pass
"""

#: The same users holding their greenlets through the wait, as waits under 5 s do.
OURS_UNPARKED = OURS_IDLE + "\n\nIdle.park_after = None\n"

LOCUST_IDLE = """\
import os
from pathlib import Path

from locust import FastHttpUser, LoadTestShape, constant, events, task

WANTED = Path(os.environ["NBS_BENCH_WANTED"])
SPAWNED = Path(os.environ["NBS_BENCH_SPAWNED"])


class Idle(FastHttpUser):
    wait_time = constant(3600)

    @task
    def idle(self):
        pass


class Steps(LoadTestShape):
    def tick(self):
        users, rate = WANTED.read_text().split()
        return int(users), float(rate)


@events.spawning_complete.add_listener
def spawned(user_count, **_):
    SPAWNED.write_text(str(user_count))
"""

SETTLE_S = 1.0


def per_user(steps: list[dict[str, Any]]) -> None:
    """Fill ``kb_per_user`` of each step from the growth over the first step."""
    base = steps[0]
    for step in steps[1:]:
        grown = step["rss_bytes"] - base["rss_bytes"]
        step["kb_per_user"] = grown / (step["users"] - base["users"]) / 1024


def ours(
    url: str, counts: Sequence[int], spawn_rate: float, timeout: float, parked: bool = True
) -> dict[str, Any]:
    """Step one notebookswarm worker through ``counts`` users; RSS of the worker at each.

    ``parked=False`` runs users with ``park_after = None``: each waits in its greenlet.
    """
    from notebookswarm import Swarm, SwarmConfig

    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nbs-bench-mem-") as tmp:
        users_file = Path(tmp) / "idle.py"
        users_file.write_text(OURS_IDLE if parked else OURS_UNPARKED)
        with Swarm(str(users_file), host=url, workers=1, config=SwarmConfig()) as swarm:
            worker_pid = int(swarm.workers["pid"].iloc[0])
            for i, n in enumerate(counts):
                began = time.monotonic()
                if i == 0:
                    swarm.start(users=n, spawn_rate=spawn_rate)
                else:
                    swarm.set_users(n)
                wait_for(
                    lambda n=n: swarm.state == "running" and swarm.user_count == n,
                    timeout,
                    f"{n} notebookswarm users started",
                )
                spawn_s = time.monotonic() - began
                time.sleep(SETTLE_S)
                workers = swarm.workers
                steps.append(
                    {
                        "users": n,
                        "rss_bytes": rss([worker_pid]),
                        "spawn_s": spawn_s,
                        "cpu_percent": float(workers["cpu_percent"].iloc[0]),
                        "loop_lag_ms": float(workers["loop_lag_ms"].iloc[0]),
                    }
                )
            began = time.monotonic()
            swarm.stop()
            stop_s = time.monotonic() - began
    per_user(steps)
    return {"tool": "notebookswarm", "steps": steps, "stop_s": stop_s}


def locust(
    python: Path, url: str, counts: Sequence[int], spawn_rate: float, timeout: float
) -> dict[str, Any]:
    """Step one ``locust --headless`` process through ``counts`` users; its RSS at each."""
    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nbs-bench-mem-locust-") as tmp:
        wanted, spawned = Path(tmp) / "wanted", Path(tmp) / "spawned"
        wanted.write_text(f"{counts[0]} {spawn_rate}")
        locustfile = Path(tmp) / "locustfile.py"
        locustfile.write_text(LOCUST_IDLE)
        env = dict(os.environ, NBS_BENCH_WANTED=str(wanted), NBS_BENCH_SPAWNED=str(spawned))
        cmd = [str(python), "-m", "locust", "-f", str(locustfile), "--headless"]
        cmd += ["--host", url, "--only-summary", "--loglevel", "WARNING"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for n in counts:
                began = time.monotonic()
                wanted.write_text(f"{n} {spawn_rate}")
                wait_for(
                    lambda n=n: _spawned(spawned) == n or proc.poll() is not None,
                    timeout,
                    f"{n} Locust users started",
                )
                if proc.poll() is not None:
                    raise RuntimeError(f"locust exited with {proc.returncode} at {n} users")
                spawn_s = time.monotonic() - began
                time.sleep(SETTLE_S)
                steps.append({"users": n, "rss_bytes": rss([proc.pid]), "spawn_s": spawn_s})
        finally:
            reap(proc, timeout=20)
    per_user(steps)
    return {"tool": "locust", "steps": steps}


def _spawned(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None
