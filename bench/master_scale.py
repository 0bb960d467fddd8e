"""Master scale: how many workers one master serves under half a core, and what a frame
costs the controller.

A real master process (``start_master``) with a real controller (``ControlClient``)
attached serves simulated workers: one process holding a ZeroMQ DEALER socket per worker
that says Hello like a worker, then on every wall-clock second sends what a busy worker
sends, a heartbeat and a stats report with ``endpoints`` endpoints. Each endpoint's
histogram holds about ``buckets`` distinct buckets (what a worker doing ~25 requests per
endpoint per second records); 16 different report bodies are spread over the workers, so
merged histograms grow as they would. The number of workers steps up; at each step the
master's CPU (user + system, psutil) is read over a window. The controller keeps the
update frames, and :func:`ingest_cost` times ``RunData.ingest`` on them afterwards.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from procs import CpuMeter, pin, reap, wait_for

HERE = Path(__file__).resolve()
TEMPLATES = 16
CPU_LIMIT = 50.0


# --- the simulated workers (a subprocess) -------------------------------------------


def report_bodies(endpoints: int, buckets: int, seed: int = 1) -> list[dict[str, Any]]:
    """Stats deltas of one second, as workers send them: ``TEMPLATES`` different ones."""
    from notebookswarm.stats.requests import RequestStats

    rng = random.Random(seed)
    bodies = []
    for _ in range(TEMPLATES):
        stats = RequestStats()
        for e in range(endpoints):
            # ~1.4 samples per distinct bucket over about one and a half octaves
            centre = rng.uniform(2e6, 50e6)
            for _ in range(int(buckets * 1.4)):
                latency = int(rng.lognormvariate(math.log(centre), 0.35))
                stats.record_request("GET", f"/api/endpoint/{e}", latency, 512, None)
        bodies.append(stats.to_wire())
    return bodies


def simulate(endpoint: str, endpoints: int, buckets: int) -> None:
    """Run workers on command: read a count per line on stdin, print "ready N" when joined."""
    import selectors

    import zmq

    from notebookswarm import __version__
    from notebookswarm.cluster import protocol

    bodies = report_bodies(endpoints, buckets)
    context = zmq.Context()
    context.set(zmq.MAX_SOCKETS, 65536)
    workers: list[tuple[Any, bytes, bytes]] = []
    welcomed: set[int] = set()
    stdin = selectors.DefaultSelector()
    stdin.register(sys.stdin, selectors.EVENT_READ)
    wanted = 0
    next_second = math.floor(time.time()) + 1.0
    while True:
        for _key, _ in stdin.select(timeout=0):
            line = sys.stdin.readline()
            if not line:
                return
            wanted = int(line)
        while len(workers) < wanted:
            n = len(workers)
            worker_id = f"sim-{n:05d}"
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.IDENTITY, worker_id.encode())
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            hello = protocol.Hello(
                worker_id=worker_id,
                host="sim",
                pid=n + 1,
                cores=2,
                version=__version__,
                millicpus=2000,
            )
            sock.send(protocol.encode(hello))
            now = time.time()
            report = protocol.encode(
                protocol.Report(
                    worker_id=worker_id,
                    seq=0,
                    start=now - 1.0,
                    end=now,
                    stats=bodies[n % TEMPLATES],
                )
            )
            beat = protocol.encode(
                protocol.Heartbeat(
                    worker_id=worker_id,
                    state="running",
                    users={"Visitor": 100},
                    cpu_percent=40.0,
                    loop_lag=0.001,
                )
            )
            workers.append((sock, report, beat))
        for i, (sock, _report, _beat) in enumerate(workers):
            while sock.poll(0):
                sock.recv()
                if i not in welcomed:
                    welcomed.add(i)
                    if len(welcomed) == wanted:
                        print(f"ready {wanted}", flush=True)
        if time.time() >= next_second:
            for sock, report, beat in workers:
                sock.send(report)
                sock.send(beat)
            next_second = math.floor(time.time()) + 1.0
        time.sleep(0.01)


# --- the harness side ---------------------------------------------------------------


class Frames:
    """Keep the update frames a controller receives, with when each arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.updates: list[tuple[float, Any]] = []

    def __call__(self, update: Any) -> None:
        with self.lock:
            self.updates.append((time.monotonic(), update))

    def since(self, t: float) -> list[Any]:
        with self.lock:
            return [u for at, u in self.updates if at >= t]


def run(
    levels: Sequence[int],
    endpoints: int = 200,
    buckets: int = 20,
    window: float = 5.0,
    settle: float = 2.0,
    keep_frames_at: int = 200,
) -> dict[str, Any]:
    """Step the simulated workers through ``levels``; the master's CPU % at each.

    Stops after the first step above ``CPU_LIMIT`` once ``keep_frames_at`` workers have
    been measured; the update frames of that step (or the last one) are timed by
    :func:`ingest_cost`.
    """
    from notebookswarm.cluster import protocol
    from notebookswarm.cluster.config import MasterConfig
    from notebookswarm.cluster.control import ControlClient
    from notebookswarm.cluster.launch import start_master

    config = MasterConfig(heartbeat_timeout=10.0, controller_timeout=60.0)
    master = start_master(config)
    client = ControlClient(master.control_endpoint)
    frames = Frames()
    client.on_update(frames)
    cmd = [sys.executable, str(HERE), "--simulate", master.worker_endpoint]
    cmd += ["--endpoints", str(endpoints), "--buckets", str(buckets)]
    sim = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    steps: list[dict[str, Any]] = []
    kept: list[Any] = []
    try:
        pin([master.process.pid], 0)
        pin([sim.pid], 1)
        assert sim.stdin is not None and sim.stdout is not None
        for n in levels:
            sim.stdin.write(f"{n}\n")
            sim.stdin.flush()
            line = sim.stdout.readline()
            if line.strip() != f"ready {n}":
                raise RuntimeError(f"the simulated workers said {line!r}, not 'ready {n}'")
            wait_for(
                lambda n=n: _workers_in_last_frame(frames) >= n,
                30,
                f"the master reporting {n} workers",
            )
            time.sleep(settle)
            meter = CpuMeter(lambda: [master.process.pid])
            before, t0 = meter.read(), time.monotonic()
            time.sleep(window)
            after, t1 = meter.read(), time.monotonic()
            got = frames.since(t0)
            cpu = 100.0 * CpuMeter.between(before, after) / (t1 - t0)
            steps.append(_step(n, cpu, got))
            if got and (not kept or n <= keep_frames_at):
                kept = got  # a master far behind may send no update in the window
            if cpu > CPU_LIMIT and n >= keep_frames_at:
                break
    finally:
        if sim.stdin is not None:
            sim.stdin.close()
        reap(sim, timeout=10)
        if sim.stdout is not None:
            sim.stdout.close()
        try:
            client.request(protocol.QuitMaster(), timeout=5)
        except Exception as exc:  # it may be gone already; the reap below makes sure
            print(f"bench: master quit: {exc}", flush=True)
        client.close()
        master.stop()
    under = [s["workers"] for s in steps if s["master_cpu_percent"] <= CPU_LIMIT]
    return {
        "endpoints": endpoints,
        "buckets": buckets,
        "window_s": window,
        "steps": steps,
        "max_workers_under_limit": max(under) if under else 0,
        "limit_percent": CPU_LIMIT,
        "ingest": ingest_cost(kept) if kept else None,
    }


def _workers_in_last_frame(frames: Frames) -> int:
    with frames.lock:
        if not frames.updates:
            return 0
        return len(frames.updates[-1][1].workers)


def _step(n: int, cpu: float, got: list[Any]) -> dict[str, Any]:
    reports = [len(u.reports) for u in got]
    return {
        "workers": n,
        "master_cpu_percent": cpu,
        "updates": len(got),
        "reports_per_update": statistics.mean(reports) if reports else 0.0,
        "endpoints_per_update": statistics.mean(len(u.stats["e"]) for u in got) if got else 0,
        "dropped": got[-1].dropped if got else None,
    }


def ingest_cost(updates: list[Any], repeat: int = 3) -> dict[str, Any]:
    """Time ``protocol.decode`` and ``RunData.ingest`` per update frame (ms, median)."""
    import dataclasses

    from notebookswarm.cluster import protocol
    from notebookswarm.notebook.rundata import RunData

    full = [u for u in updates if u.reports]
    encoded = [protocol.encode(dataclasses.replace(u, seq=i)) for i, u in enumerate(full)]
    decode_ms, ingest_ms = [], []
    for _ in range(repeat):
        data = RunData()
        for frame in encoded:
            t0 = time.perf_counter()
            message = protocol.decode(frame)
            t1 = time.perf_counter()
            assert isinstance(message, protocol.Update)
            data.ingest(message)
            t2 = time.perf_counter()
            decode_ms.append((t1 - t0) * 1e3)
            ingest_ms.append((t2 - t1) * 1e3)
    return {
        "frames": len(encoded),
        "frame_bytes": statistics.median(len(f) for f in encoded) if encoded else 0,
        "workers": len(full[0].workers) if full else 0,
        "endpoints": statistics.median(len(u.stats["e"]) for u in full) if full else 0,
        "decode_ms": statistics.median(decode_ms) if decode_ms else 0.0,
        "ingest_ms": statistics.median(ingest_ms) if ingest_ms else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="simulated workers for the master scale part")
    parser.add_argument("--simulate", required=True, help="the master's worker endpoint")
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--buckets", type=int, default=20)
    args = parser.parse_args()
    simulate(args.simulate, args.endpoints, args.buckets)


if __name__ == "__main__":
    main()
