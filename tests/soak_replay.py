"""Feed a streaming RunData simulated hours of 100-endpoint updates as fast as it ingests
them, in a process of its own, and print per simulated hour its RSS and ingest times.

``python tests/soak_replay.py HOURS RUNS_DIR STEP`` sends one update every STEP simulated
seconds and prints one JSON line per hour (times are this thread's CPU seconds, so other
processes on a busy machine do not count): ``{"hour", "rss_mb", "ingest_ms", "history_s",
"history_rows"}`` (RSS before the hour's history query).
"""

from __future__ import annotations

import gc
import json
import math
import random
import statistics
import sys
import time

import psutil

from notebookswarm.notebook.rundata import RunData
from notebookswarm.stats.requests import RequestStats

from updates import as_update

ENDPOINTS = 100
T0 = 60 * 28_333_334


def patterns(n: int = 20) -> list[dict[str, object]]:
    """Update bodies of 100 endpoints with a few requests each."""
    rng = random.Random(5)
    out = []
    for _ in range(n):
        stats = RequestStats()
        for e in range(ENDPOINTS):
            for _ in range(rng.randint(1, 4)):
                ns = int(rng.lognormvariate(math.log(20e6), 1.0))
                stats.record_request("GET", f"/endpoint/{e}", ns, 512, None)
        out.append(stats.to_wire())
    return out


def main() -> None:
    hours, runs_dir, step = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    bodies = patterns()
    proc = psutil.Process()
    data = RunData(runs_dir=runs_dir)
    gc.collect()
    timings: list[float] = []
    per_hour = 3600 // step
    for i in range(int(hours * per_hour)):
        start, end = T0 + i * step, T0 + (i + 1) * step
        fields = {"seq": i, "start": start, "end": end, "stats": bodies[i % len(bodies)]}
        update = as_update(fields)
        t = time.thread_time()
        data.ingest(update)
        timings.append(time.thread_time() - t)
        if (i + 1) % per_hour == 0:
            now = end
            rss = proc.memory_info().rss
            t = time.thread_time()
            rows = len(data.history(now - 3600, now))
            history_s = time.thread_time() - t
            sample = {
                "hour": (i + 1) // per_hour,
                "rss_mb": rss / 2**20,
                "ingest_ms": statistics.median(timings) * 1e3,
                "history_s": history_s,
                "history_rows": rows,
            }
            print(json.dumps(sample), flush=True)
            timings = []
    data.close()


if __name__ == "__main__":
    main()
