"""A controller in its own process, for the fault soak: a Swarm attached to a running master,
streaming its run to disk, steered by lines on stdin, answering with JSON lines on stdout.

Commands: ``start N`` (N users), ``stop`` (graceful; prints the run's counts), ``save``
(finalise the streamed folder), ``quit``. The first line printed is ``{"folder": ...}``
once the run's folder exists. The test SIGKILLs this process to play a crashed kernel.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from notebookswarm.notebook.swarm import Swarm, SwarmConfig

USERS = """
import os

from notebookswarm import HttpUser, constant, task


class Soaker(HttpUser):
    wait_time = constant({wait})

    @task
    def hit(self):
        self.client.get(f"/w/{{os.getpid()}}")
"""


def counts(swarm: Swarm) -> dict[str, Any]:
    """Requests per name, failures that never got an HTTP answer, lost intervals, workers."""
    stats = swarm.stats
    errors = swarm.errors
    unanswered = errors[~errors["error"].str.startswith("HTTP ")]
    result = swarm.result()
    return {
        "requests": {
            str(name): int(n)
            for name, n in zip(stats["name"], stats["requests"], strict=True)
            if name != "Aggregated"
        },
        "unanswered": {
            str(name): int(n) for name, n in unanswered.groupby("name")["count"].sum().items()
        },
        "lost": result._data.lost,
        "workers": {str(row.id): int(row.pid) for row in swarm._worker_rows()},
        "last": result._data.last,
    }


def say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--master", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--runs", required=True)
    parser.add_argument("--users-file", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--wait", type=float, default=0.1)
    args = parser.parse_args()
    with open(args.users_file, "w") as out:
        out.write(USERS.format(wait=args.wait))
    config = SwarmConfig(runs_dir=args.runs, stop_timeout=5.0)
    swarm = Swarm(
        args.users_file, host=args.host, master=args.master, workers=args.workers, config=config
    )
    told_folder = False
    for line in sys.stdin:
        word, _, rest = line.strip().partition(" ")
        if word == "start":
            swarm.start(int(rest), spawn_rate=100)
            swarm.wait("spawned", timeout=30)
            while not told_folder:  # the folder appears with the first update of requests
                store = swarm._data.store
                if store is not None:
                    say({"folder": str(store.folder)})
                    told_folder = True
                time.sleep(0.05)
            say({"started": int(rest)})
        elif word == "stop":
            swarm.stop()
            say(counts(swarm))
        elif word == "save":
            say({"saved": str(swarm.result().save())})
        elif word == "quit":
            break
    swarm.close()


if __name__ == "__main__":
    main()
