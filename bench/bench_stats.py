"""How much recording one request costs: run with `.venv/bin/python bench/bench_stats.py`."""

from __future__ import annotations

import random
import time

from notebookswarm.stats.requests import StatsRecorder


def main() -> None:
    n = 1_000_000
    latencies = [int(random.lognormvariate(14, 1.5)) for _ in range(n)]
    names = [("GET", f"/page/{i % 20}") for i in range(n)]
    recorder = StatsRecorder()
    record = recorder.record_request
    start = time.perf_counter()
    for (method, name), latency in zip(names, latencies, strict=True):
        record(method, name, latency, 512, None)
    elapsed = time.perf_counter() - start
    print(f"record_request: {elapsed / n * 1e9:.0f} ns per request over {n:,} requests")
    recorder.take()
    hist = recorder.current.endpoints
    assert not hist
    start = time.perf_counter()
    for (method, name), latency in zip(names, latencies, strict=True):
        record(method, name, latency, 512, "HTTP 500 Internal Server Error")
    elapsed = time.perf_counter() - start
    print(f"record_request, failed: {elapsed / n * 1e9:.0f} ns per request")


if __name__ == "__main__":
    main()
