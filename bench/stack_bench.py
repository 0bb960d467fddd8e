"""Measure the real demo stack's three fixes: leaderboard and submit throughput, one at a time.

    .venv/bin/python bench/stack_bench.py                  # about 30 s of load in all
    .venv/bin/python bench/stack_bench.py --seconds 3 --clients 8

One stack with the default data (250,000 submissions). Each phase is a closed loop:
``--clients`` threads on this machine send one endpoint back to back for ``--seconds``
over 127.0.0.1 (http.client, a new connection per request as gunicorn's sync workers
close each one) and the phase reports requests per second and the median and p95
latency. The phases apply the fixes in the order a notebook would:

    leaderboard   no index, no cache, 2 workers      the bottleneck
    leaderboard   the index                          stack.add_index()
    leaderboard   no index, the cache                stack.restart(cache=True)
    submit        2 workers                          the judge holds each worker 20 ms
    submit        8 workers                          stack.restart(workers=8)

The generator shares the machine's cores with PostgreSQL and gunicorn, so the fast
phases describe the machine as much as the site; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notebookswarm._demo.stack import Stack, start_stack


def _phase(stack: Stack, path: str, clients: int, seconds: float) -> dict[str, float]:
    port = int(stack.url.rsplit(":", 1)[1])
    body = json.dumps({"problem": 393, "code": "print(1)"}) if path == "/submit" else None
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        mine: list[float] = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                if body is None:
                    conn.request("GET", path)
                else:
                    conn.request("POST", path, body, {"Content-Type": "application/json"})
                answer = conn.getresponse()
                answer.read()
                if answer.status != 200:
                    with lock:
                        errors[0] += 1
                    continue
            finally:
                conn.close()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    count = len(latencies)
    return {
        "rps": count / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if count else float("nan"),
        "p95_ms": 1000 * latencies[int(0.95 * (count - 1))] if count else float("nan"),
        "errors": float(errors[0]),
    }


def main() -> None:
    """Run the phases and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    rows = []
    started = time.monotonic()
    with start_stack(workers=2) as stack:
        print(f"stack up in {time.monotonic() - started:.1f} s at {stack.url}", flush=True)
        phases = [
            ("leaderboard", "no index, no cache, 2 workers", lambda: None),
            ("leaderboard", "index", stack.add_index),
            ("leaderboard", "no index, cache (ttl 5 s)",
             lambda: (stack.drop_index(), stack.restart(cache=True))),
            ("submit", "2 workers (judge 20 ms)", lambda: stack.restart(cache=False)),
            ("submit", "8 workers (judge 20 ms)", lambda: stack.restart(workers=8)),
        ]  # fmt: skip
        for endpoint, setting, apply in phases:
            apply()
            result = _phase(stack, f"/{endpoint}", args.clients, args.seconds)
            rows.append((endpoint, setting, result))
            print(endpoint, setting, {k: round(v, 2) for k, v in result.items()}, flush=True)
    print(f"\n{os.cpu_count()} cores, {args.clients} client threads, {args.seconds:g} s a phase\n")
    print("| endpoint | setting | requests/s | p50 ms | p95 ms | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for endpoint, setting, r in rows:
        print(f"| {endpoint} | {setting} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
              f"{r['p95_ms']:.1f} | {r['errors']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
