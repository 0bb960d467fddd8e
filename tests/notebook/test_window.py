"""Percentiles over a window of a live swarm equal the exact ones of the raw samples."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from pathlib import Path

import notebookswarm as nbs
from notebookswarm.cluster import protocol
from notebookswarm.testing import CountingServer

QS = [0.5, 0.9, 0.95, 0.99, 1.0]


class Mixed(nbs.HttpUser):
    wait_time = nbs.constant(0.02)

    @nbs.task(3)
    def fast(self) -> None:
        self.client.get("/fast")

    @nbs.task(1)
    def slow(self) -> None:
        self.client.get("/slow")


def exact(values: list[int], q: float) -> int:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_window_percentiles_match_raw_samples(tmp_path: Path) -> None:
    """percentiles(start, end) over a window of updates is within 1% of the exact percentile of
    the requests those updates carried, as the worker recorded them one by one."""
    samples = tmp_path / "samples.tsv"
    frames: list[protocol.Update] = []
    lock = threading.Lock()
    with CountingServer() as target:
        target.route("/slow", delay=0.015)
        config = nbs.SwarmConfig(raw_samples_file=str(samples))
        with nbs.Swarm(Mixed, host=target.url, workers=2, config=config) as swarm:

            def keep(frame: protocol.Update) -> None:
                with lock:
                    frames.append(frame)

            swarm.on_frame(keep)
            swarm.start(users=8, spawn_rate=50)
            swarm.wait("spawned", timeout=30)
            with lock:
                first = len(frames)
            swarm.wait(4)
            swarm.stop()
            with lock:
                window = [f for f in frames[first + 1 : first + 4] if f.reports]
            assert len(window) >= 2
            lo = frames[frames.index(window[0]) - 1].end
            hi = window[-1].end
            got = swarm.percentiles(QS, start=lo, end=hi, by="name")
    in_window = {(r.worker, r.seq) for f in window for r in f.reports}
    raw: dict[str, list[int]] = defaultdict(list)
    for line in samples.read_text().splitlines():
        worker, seq, _method, name, latency = line.split("\t")
        if (worker, int(seq)) in in_window:
            raw[name].append(int(latency))
    assert set(raw) == {"/fast", "/slow"}
    for name, values in raw.items():
        assert got.loc[name, "requests"] == len(values)
        for q in QS:
            column = "p100_ms" if q == 1.0 else f"p{q * 100:g}".replace(".", "_") + "_ms"
            want = exact(values, q) / 1e6
            assert abs(got.loc[name, column] - want) <= 0.01 * want, (name, q)
