"""Run: a run's DataFrames saved as Parquet + JSON and loaded back identical."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.run import Run
from notebookswarm.notebook.rundata import RunData
from notebookswarm.stats.requests import RequestStats

from updates import as_update

T0 = 1_700_000_000
TABLES = ("stats", "history", "errors", "exceptions", "workers")


def _worker(i: int, error: str | None = None) -> dict[str, object]:
    return {
        "id": f"w{i}",
        "host": "loadgen-1",
        "pid": 4000 + i,
        "cores": 4,
        "state": "running",
        "users": 10,
        "cpu_percent": 37.5,
        "loop_lag": 0.0015,
        "rps": 20.5,
        "last_seen": T0 + 29.75,
        "error": error,
    }


def make_run(updates: int = 30, fine_seconds: float = 600.0) -> Run:
    """A run with requests on three endpoints, failures, an exception and two workers."""
    rng = random.Random(1)
    data = RunData(fine_seconds=fine_seconds)
    for i in range(updates):
        stats = RequestStats()
        for method, name in [("GET", "/"), ("POST", "/login"), ("GET", "/problems/{id}")]:
            for _ in range(rng.randint(0, 30)):
                error = "HTTP 503 Service Unavailable" if rng.random() < 0.05 else None
                stats.record_request(method, name, rng.randint(10**5, 10**9), 2048, error)
        if i % 10 == 0:
            try:
                raise ValueError(f"bad page {i}")
            except ValueError as exc:
                stats.record_exception(exc)
        data.ingest(
            as_update(
                {
                    "start": T0 + i,
                    "end": T0 + i + 1,
                    "state": "running",
                    "users": 20,
                    "target_users": 20,
                    "spawn_rate": 10.0,
                    "stats": stats.to_wire(),
                    "workers": [_worker(0), _worker(1, "ImportError: no module named x")],
                    "lost": [{"worker": "w9", "since": T0, "until": T0 + 2, "users": 3}]
                    if i == 2
                    else [],
                    "failures": [],
                    "dropped": 0,
                }
            )
        )
    return Run(data, {"host": "http://127.0.0.1:8080", "started": T0, "users": 20})


def test_save_then_load_gives_identical_frames(tmp_path: Path) -> None:
    """Run.load(run.save(path)) has every DataFrame equal to the original, dtypes included,
    the same window percentiles and the same summary."""
    run = make_run()
    assert run.save(tmp_path / "run") == tmp_path / "run"
    loaded = Run.load(tmp_path / "run")
    for name in TABLES:
        original = getattr(run, name)
        assert len(original) > 0, name
        pd.testing.assert_frame_equal(getattr(loaded, name), original, check_exact=True)
    assert loaded.meta == run.meta
    assert repr(loaded) == repr(run) == "<Run 1355 requests, 62 failures, 30.0 s>"
    for by in ("name", None, ["method", "name"]):
        for window in [(None, None), (T0 + 5, T0 + 12), (pd.Timestamp(T0 + 20, unit="s"), None)]:
            pd.testing.assert_frame_equal(
                loaded.percentiles([0.5, 0.99, 1.0], *window, by=by),
                run.percentiles([0.5, 0.99, 1.0], *window, by=by),
            )


def test_compacted_and_empty_runs_round_trip(tmp_path: Path) -> None:
    """A run whose old slots were merged per minute, and a run with no data at all, load back
    with equal frames and percentiles."""
    for i, run in enumerate([make_run(updates=200, fine_seconds=60), Run(RunData(), {})]):
        loaded = Run.load(run.save(tmp_path / f"run{i}"))
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(loaded, name), getattr(run, name))
        pd.testing.assert_frame_equal(loaded.percentiles(by=None), run.percentiles(by=None))


def test_loaded_frames_are_copies(tmp_path: Path) -> None:
    """Changing a DataFrame read from a loaded run does not change the run."""
    loaded = Run.load(make_run().save(tmp_path / "run"))
    stats = loaded.stats
    stats["requests"] = 0
    assert (loaded.stats["requests"] > 0).all()


def test_to_csv_writes_the_five_tables(tmp_path: Path) -> None:
    """to_csv writes stats, history, errors, exceptions and workers as CSV files."""
    run = make_run()
    out = run.to_csv(tmp_path / "csv")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.csv" for name in TABLES)
    stats = pd.read_csv(out / "stats.csv", keep_default_na=False)
    assert stats["requests"].tolist() == run.stats["requests"].tolist()
    assert len(pd.read_csv(out / "history.csv")) == len(run.history)


def test_load_without_meta_json_names_the_folder(tmp_path: Path) -> None:
    """Run.load of a folder that holds no saved run raises ConfigError naming the folder."""
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    (folder / "stats.parquet").write_bytes(b"")
    with pytest.raises(ConfigError, match="not-a-run") as info:
        Run.load(folder)
    assert str(folder) in str(info.value)
    with pytest.raises(ConfigError, match="missing"):
        Run.load(tmp_path / "missing")
