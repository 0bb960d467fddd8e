"""A run streamed to disk: the same frames as in memory, exact windows, recovery after a
torn write, finalise in place. Synthetic update frames; no processes."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.run import Run
from notebookswarm.notebook.rundata import RunData
from notebookswarm.stats.requests import RequestStats

from updates import as_update

T0 = 60 * 28_333_334  # a whole minute
KEYS = [("GET", "/a"), ("POST", "/a"), ("GET", "/b")]


def frames(seconds: int, seed: int = 3, late: bool = False) -> list[tuple[Any, list[int]]]:
    """One-second updates over three endpoints, with every latency they hold."""
    rng = random.Random(seed)
    out = []
    for i in range(seconds):
        stats, raw = RequestStats(), []
        for method, name in KEYS:
            for _ in range(rng.randint(0, 6)):
                ns = int(rng.lognormvariate(math.log(20e6), 1.0)) + 100_000
                error = "HTTP 500" if rng.random() < 0.1 else None
                if late and rng.random() < 0.5:
                    stats.record_late_request(method, name, ns, 3_000_000, 100, error)
                else:
                    stats.record_request(method, name, ns, 100, error)
                raw.append(ns)
        if i == 7:
            try:
                raise ValueError("boom")
            except ValueError as exc:
                stats.record_exception(exc)
        fields = {
            "seq": i,
            "start": T0 + i,
            "end": T0 + i + 1,
            "users": i,
            "stats": stats.to_wire(),
            "lost": [{"worker": "w9", "since": T0, "until": T0 + i, "users": 3}] if i == 30 else [],
        }
        out.append((as_update(fields), raw))
    return out


def feed(updates: list[Any], **kwargs: Any) -> RunData:
    data = RunData(**kwargs)
    for update, _ in updates:
        data.ingest(update)
    return data


def assert_same(a: RunData, b: RunData) -> None:
    pd.testing.assert_frame_equal(a.stats(), b.stats())
    pd.testing.assert_frame_equal(a.history(), b.history())
    pd.testing.assert_frame_equal(a.errors(), b.errors())
    pd.testing.assert_frame_equal(a.exceptions(), b.exceptions())
    assert a.lost == b.lost


def test_streamed_run_reads_like_the_memory_one_and_cuts_windows_exactly(tmp_path: Path) -> None:
    """Streaming with short horizons (history beyond 2 min on disk only, minutes merged per
    hour beyond 3 min) gives the same stats, history and errors as memory, keeps fewer rows
    in memory, and percentiles of any window equal those of the unmerged updates."""
    updates = frames(600, late=True)
    memory = feed(updates, fine_seconds=10**9)
    streaming = feed(updates, fine_seconds=120, minute_seconds=180, runs_dir=tmp_path)
    assert streaming.store is not None and streaming.store.folder.parent == tmp_path
    assert len(streaming._columns) < len(memory._columns) / 3
    assert streaming._hours, "old minutes were merged per hour"
    assert_same(streaming, memory)
    for lo, hi in [(T0 + 7, T0 + 333), (T0 + 61.5, T0 + 62), (None, T0 + 455), (T0 + 3, None)]:
        for by in ("name", None):
            for corrected in (False, True):
                pd.testing.assert_frame_equal(
                    streaming.percentiles([0.5, 0.99, 1.0], lo, hi, by, corrected),
                    memory.percentiles([0.5, 0.99, 1.0], lo, hi, by, corrected),
                )
        window = memory.history(lo, hi)
        assert len(window) < len(memory.history())
        pd.testing.assert_frame_equal(streaming.history(lo, hi), window)


def test_a_run_left_unsaved_loads_incomplete_and_a_save_finalises_it(tmp_path: Path) -> None:
    """Run.load of a folder nobody saved (the controller died) gives every update written,
    marked incomplete; run.save() then finalises the same folder, which loads complete."""
    updates = frames(200)
    memory = feed(updates, fine_seconds=10**9)
    streaming = feed(updates, fine_seconds=60, runs_dir=tmp_path)
    folder = streaming.store.folder if streaming.store else None
    assert folder is not None
    crashed = Run.load(folder)
    assert crashed.complete is False
    assert "incomplete" in repr(crashed)
    assert_same(crashed._data, memory)
    pd.testing.assert_frame_equal(crashed.percentiles(by=None), memory.percentiles(by=None))
    assert crashed.history_between(T0 + 100, T0 + 160)["time"].nunique() == 60

    run = Run(streaming.snapshot(), {"host": "http://x"})
    assert run.save() == folder
    streaming.close()
    again = Run.load(folder)
    assert again.complete is True
    assert "incomplete" not in repr(again)
    assert again.meta == {"host": "http://x"}
    assert_same(again._data, memory)


def test_a_torn_last_write_loses_only_that_update(tmp_path: Path) -> None:
    """Cutting the open minute's files mid-batch (a kill during a write) loses the updates
    of the torn batch and nothing before it; events torn mid-line are dropped."""
    updates = frames(90)
    streaming = feed(updates, runs_dir=tmp_path)
    assert streaming.store is not None
    folder = streaming.store.folder
    streaming.store.flush()  # the closed minute is Parquet now; the open one is IPC
    for kind in ("history", "histograms"):
        (piece,) = (folder / kind).glob("*.arrows")
        piece.write_bytes(piece.read_bytes()[:-40])
    with open(folder / "events.jsonl", "a") as out:
        out.write('{"end": 1, "err": [["GET"')
    run = Run.load(folder)
    history = run.history
    last = history["time"].max().timestamp()
    assert last == T0 + 89  # the 90th update was torn
    kept = sum(len(raw) for update, raw in updates[:89])
    assert run.stats.iloc[-1]["requests"] == kept
    assert run.percentiles(by=None)["requests"].iloc[0] == kept


def test_no_runs_dir_writes_nothing_and_save_needs_a_path(tmp_path: Path) -> None:
    """Without runs_dir nothing is written, and run.save() without a folder says what to pass."""
    data = feed(frames(5))
    assert data.store is None
    with pytest.raises(ConfigError, match=r"pass run\.save"):
        Run(data, {}).save()


def test_an_unwritable_runs_dir_keeps_the_run_in_memory(tmp_path: Path) -> None:
    """A runs_dir that cannot be created costs the stream, not the run: it says why once."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    updates = frames(120)
    data = feed(updates, fine_seconds=30, runs_dir=blocker / "runs")
    assert data.store_error is not None and "runs" in data.store_error
    assert len(data.history()) == len(feed(updates).history())
