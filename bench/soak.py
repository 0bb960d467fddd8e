"""Soak bench: a day of 100 endpoints through a controller's RunData at accelerated speed.

A real master (``start_master``) serves simulated workers (``master_scale.simulate``: one
process holding a DEALER socket per worker that reports every wall-clock second), and a
real ``ControlClient`` receives its update frames. A few seconds of those frames (each
with ``--endpoints`` endpoints, merged from ``--workers`` reports) are kept, then replayed
into a ``RunData`` in this process as fast as it ingests them, re-stamped one simulated
second apart, through ``--hours`` simulated hours. After every simulated hour it samples:

- ``rss_mb``: this process's resident memory (the controller's, since nothing else grows)
  before the queries, and ``rss_after_queries_mb`` after them (the heap a query used is kept
  by the allocator for the next one);
- ``ingest_ms``: median and p99 of ``RunData.ingest`` over that hour's updates;
- ``history_s``: the last hour of ``history`` (a window where the data supports one);
- ``pct_s``: ``percentiles`` over the last hour, by name.

``--store DIR`` streams the run to DIR (a folder per run, see notebookswarm.notebook.store);
without it the RunData keeps everything in memory. ``--json PATH`` writes the samples.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import inspect
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent


def capture(endpoints: int, workers: int, frames: int, buckets: int = 20) -> list[Any]:
    """Return ``frames`` update frames with reports from a real master and simulated workers."""
    from procs import reap, wait_for

    from notebookswarm.cluster import protocol
    from notebookswarm.cluster.config import MasterConfig
    from notebookswarm.cluster.control import ControlClient
    from notebookswarm.cluster.launch import start_master

    master = start_master(MasterConfig(heartbeat_timeout=10.0, controller_timeout=60.0))
    client = ControlClient(master.control_endpoint)
    got: list[Any] = []
    client.on_update(lambda u: got.append(u) if u.reports else None)
    cmd = [sys.executable, str(HERE / "master_scale.py"), "--simulate", master.worker_endpoint]
    cmd += ["--endpoints", str(endpoints), "--buckets", str(buckets)]
    sim = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdin is not None and sim.stdout is not None
        sim.stdin.write(f"{workers}\n")
        sim.stdin.flush()
        line = sim.stdout.readline()
        if line.strip() != f"ready {workers}":
            raise RuntimeError(f"the simulated workers said {line!r}")
        wait_for(
            lambda: sum(len(u.reports) == workers for u in got) >= frames,
            frames + 30,
            f"{frames} full update frames",
        )
    finally:
        if sim.stdin is not None:
            sim.stdin.close()
        reap(sim, timeout=10)
        if sim.stdout is not None:
            sim.stdout.close()
        try:
            client.request(protocol.QuitMaster(), timeout=5)
        except Exception as exc:  # gone already; the stop below reaps it
            print(f"soak: master quit: {exc}", flush=True)
        client.close()
        master.stop()
    return [u for u in got if len(u.reports) == workers][:frames]


def make_data(store: str | None) -> Any:
    """A RunData; streaming into a fresh folder under ``store`` when this version can."""
    from notebookswarm.notebook.rundata import RunData

    if store is None:
        if "runs_dir" in inspect.signature(RunData).parameters:
            return RunData(runs_dir=None)
        return RunData()
    return RunData(runs_dir=store)


def _last_hour_history(data: Any, lo: float, hi: float) -> int:
    if "start" in inspect.signature(data.history).parameters:
        return len(data.history(lo, hi))
    frame = data.history()  # the whole run, then the window
    seconds = frame["time"].astype("int64") / 1e9
    return int(((seconds > lo) & (seconds <= hi)).sum())


def soak(
    frames: list[Any], hours: float, store: str | None, t0: float = 1.7e9
) -> list[dict[str, Any]]:
    """Replay ``frames`` for ``hours`` simulated hours; one sample per simulated hour."""
    proc = psutil.Process()
    gc.collect()
    base = proc.memory_info().rss
    data = make_data(store)
    samples: list[dict[str, Any]] = []
    timings: list[float] = []
    began = time.perf_counter()
    for i in range(int(hours * 3600)):
        frame = frames[i % len(frames)]
        now = t0 + i + 1
        update = dataclasses.replace(frame, seq=i, time=now, start=now - 1, end=now)
        t = time.perf_counter()
        data.ingest(update)
        timings.append(time.perf_counter() - t)
        if (i + 1) % 3600 == 0:
            samples.append(_sample(data, proc, base, timings, now, (i + 1) // 3600))
            samples[-1]["wall_s"] = round(time.perf_counter() - began, 1)
            print(json.dumps(samples[-1]), flush=True)
            timings = []
    return samples


def _sample(
    data: Any, proc: psutil.Process, base: int, timings: list[float], now: float, hour: int
) -> dict[str, Any]:
    ordered = sorted(timings)
    before_queries = proc.memory_info().rss
    t = time.perf_counter()
    rows = _last_hour_history(data, now - 3600, now)
    history_s = time.perf_counter() - t
    t = time.perf_counter()
    data.percentiles([0.5, 0.99], now - 3600, now)
    pct_s = time.perf_counter() - t
    return {
        "hour": hour,
        "rss_mb": round(before_queries / 2**20, 1),
        "grown_mb": round((before_queries - base) / 2**20, 1),
        "rss_after_queries_mb": round(proc.memory_info().rss / 2**20, 1),
        "ingest_ms_median": round(statistics.median(ordered) * 1e3, 3),
        "ingest_ms_p99": round(ordered[int(0.99 * (len(ordered) - 1))] * 1e3, 3),
        "history_rows": rows,
        "history_s": round(history_s, 3),
        "pct_s": round(pct_s, 3),
    }


def table(samples: list[dict[str, Any]]) -> str:
    """A Markdown table of the samples, one row per simulated hour."""
    head = "| hour | RSS MB | grown MB | RSS after queries MB | ingest ms (median) |"
    head += " ingest ms (p99) | history 1 h s | percentiles 1 h s |\n"
    head += "|---|---|---|---|---|---|---|---|\n"
    return head + "".join(
        f"| {s['hour']} | {s['rss_mb']} | {s['grown_mb']} | {s.get('rss_after_queries_mb')} | "
        f"{s['ingest_ms_median']} | "
        f"{s['ingest_ms_p99']} | {s['history_s']} | {s['pct_s']} |\n"
        for s in samples
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8, help="distinct frames to replay")
    parser.add_argument("--store", help="stream the run into a folder under this one")
    parser.add_argument("--tmp-store", action="store_true", help="stream into a temp folder")
    parser.add_argument("--json", help="write the samples here")
    args = parser.parse_args()
    frames = capture(args.endpoints, args.workers, args.frames)
    print(f"soak: {len(frames)} frames of {len(frames[0].stats['e'])} endpoints", flush=True)
    with tempfile.TemporaryDirectory(prefix="nbs-soak-") as tmp:
        store = tmp if args.tmp_store else args.store
        samples = soak(frames, args.hours, store)
    print(table(samples))
    if args.json:
        Path(args.json).write_text(json.dumps(samples, indent=1))


if __name__ == "__main__":
    main()
