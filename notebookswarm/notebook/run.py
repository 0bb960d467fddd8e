"""A finished (or snapshotted) run: the same DataFrames as a live swarm, saved and loaded.

``run.save(path)`` writes a folder: one Parquet file per DataFrame, the stored histograms
in long form (so ``percentiles`` works on a loaded run), and ``meta.json`` with the
configuration, start and end. ``Run.load(path)`` gives back identical DataFrames.

A run streamed to disk as it went (``notebookswarm-runs/<start time>/``, see ``store``) is
already written: ``run.save()`` finalises that folder (the final totals, the metadata, the
watched server's tables) instead of rewriting it. ``Run.load`` reads a streamed folder too,
finalised or left by a crashed kernel; then ``run.complete`` is False and the repr says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.rundata import Packed, RunData, Slot
from notebookswarm.notebook.store import FORMAT as STREAMED
from notebookswarm.notebook.store import is_streamed
from notebookswarm.notebook.view import RunView, T
from notebookswarm.notebook.windows import to_seconds
from notebookswarm.stats.histogram import Histogram

FORMAT = 1
_TABLES = ("stats", "history", "errors", "exceptions", "workers")
#: The watched server's tables: saved when present, empty (typed) when nothing was watched.
_SERVER_TABLES = ("server", "server_errors")


def empty_server_table(name: str) -> pd.DataFrame:
    from notebookswarm.notebook.watch import Watcher

    empty = Watcher()  # starts no thread until it watches something
    return empty.frame() if name == "server" else empty.errors()


class Run(RunView):
    """A run's data and metadata; read it like a live swarm, save it, load it."""

    def __init__(
        self,
        data: RunData,
        meta: dict[str, Any],
        tables: dict[str, pd.DataFrame] | None = None,
    ) -> None:
        self._data = data
        self.meta = meta
        #: Tables fixed at creation (loaded ones, the watched server's) over the live data.
        self._frozen: dict[str, pd.DataFrame] = dict(tables or {})
        #: The threshold verdicts of ``swarm.run(..., thresholds=...)``, if it was judged.
        self.verdicts: pd.DataFrame | None = None

    def _table(self, name: str) -> pd.DataFrame:
        if name in self._frozen:
            return self._frozen[name].copy()
        if name in _SERVER_TABLES:
            return empty_server_table(name)
        return super()._table(name)

    def _read(self, reader: Callable[[RunData], T]) -> T:
        return reader(self._data)

    @property
    def complete(self) -> bool:
        """False for a streamed run whose controller ended before ``run.save()`` (a crash):
        it holds every update written until then."""
        return self._data.complete

    @property
    def folder(self) -> Path | None:
        """The folder this run streams to (or was loaded from, if streamed), else None."""
        store = self._data.store
        return store.folder if store is not None else None

    def history_between(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """``history`` of the updates that ended in ``(start, end]`` (times as for
        ``percentiles``); a streamed run reads only the minutes the window touches."""
        if "history" not in self._frozen:
            return self._data.history(start, end)
        frame = self._frozen["history"]
        seconds = frame["time"].astype("int64") / 1e9
        lo, hi = to_seconds(start, -math.inf), to_seconds(end, math.inf)
        return frame[(seconds > lo) & (seconds <= hi)].reset_index(drop=True)

    def __repr__(self) -> str:
        total = self.stats.iloc[-1]  # the Aggregated row; a loaded run has no RequestStats
        note = ""
        if not self.complete:
            last = self._data.last
            until = pd.Timestamp(last, unit="s", tz="UTC") if last is not None else "its start"
            note = f", incomplete: the controller stopped before it was saved; data to {until}"
        return (
            f"<Run {total['requests']} requests, {total['failures']} failures, "
            f"{self._data.duration():.1f} s{note}>"
        )

    # --- files -------------------------------------------------------------------------

    def save(self, path: str | Path | None = None) -> Path:
        """Write the run to folder ``path`` (Parquet + ``meta.json``); return the folder.

        A streamed run is on disk already: with no ``path`` (or its own folder) this
        finalises that folder in place, which ``Run.load`` then reads as complete.
        """
        store = self._data.store
        if store is not None and (path is None or Path(path).resolve() == store.folder.resolve()):
            return self._finalise()
        if path is None:
            raise ConfigError("this run was not streamed to disk: pass run.save(folder)")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for name in (*_TABLES, *_SERVER_TABLES):
            self._table(name).to_parquet(folder / f"{name}.parquet", index=False)
        _histograms_frame(self._data.slots).to_parquet(folder / "histograms.parquet", index=False)
        meta = {
            "format": FORMAT,
            "meta": self.meta,
            "lost": self._data.lost,
            "failures": self._data.failures,
            "span": [self._data.first, self._data.last],
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        return folder

    def _finalise(self) -> Path:
        store = self._data.store
        assert store is not None
        self._data.finalise()
        for name in _SERVER_TABLES:
            if name in self._frozen:
                self._frozen[name].to_parquet(store.folder / f"{name}.parquet", index=False)
        meta = store.meta()
        meta.update(
            complete=True,
            meta=self.meta,
            span=[self._data.first, self._data.last],
        )
        store.write_meta(meta)
        self._data.complete = True
        return store.folder

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """Read a run written by :meth:`save`, or a streamed run folder (even one left by a
        crash: ``run.complete`` is then False)."""
        folder = Path(path)
        if is_streamed(folder):
            return cls._load_streamed(folder)
        meta_file = folder / "meta.json"
        if not meta_file.is_file():
            raise ConfigError(
                f"{str(folder)!r} holds no saved run (no meta.json): pass the "
                "folder given to run.save()"
            )
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != FORMAT:
            raise ConfigError(
                f"{folder} was saved in format {meta.get('format')!r}; this "
                f"notebookswarm reads format {FORMAT}"
            )
        data = RunData()
        data.slots = _slots_from(pd.read_parquet(folder / "histograms.parquet"))
        data.lost, data.failures = meta["lost"], meta["failures"]
        data.first, data.last = meta.get("span", [None, None])
        run = cls(data, meta["meta"])
        names = [*_TABLES, *(n for n in _SERVER_TABLES if (folder / f"{n}.parquet").is_file())]
        run._frozen = {name: pd.read_parquet(folder / f"{name}.parquet") for name in names}
        return run

    @classmethod
    def _load_streamed(cls, folder: Path) -> Run:
        from notebookswarm.notebook.recover import load_streamed

        data, meta = load_streamed(folder)
        if meta.get("format") != STREAMED:
            raise ConfigError(
                f"{folder} was streamed in format {meta.get('format')!r}; this "
                f"notebookswarm reads format {STREAMED}"
            )
        tables = {
            name: pd.read_parquet(folder / f"{name}.parquet")
            for name in _SERVER_TABLES
            if (folder / f"{name}.parquet").is_file()
        }
        return cls(data, dict(meta.get("meta") or {"started": meta.get("started")}), tables)

    def to_html(self, path: str | Path, title: str = "notebookswarm run") -> Path:
        """Write one self-contained HTML report (works offline) to ``path``; return it."""
        from notebookswarm.notebook.report import write_html

        return write_html(self, path, title)

    def to_csv(self, path: str | Path, style: str = "frames", full_history: bool = False) -> Path:
        """Write the run as CSV; return the folder written into.

        ``style="frames"``: each DataFrame as ``<name>.csv`` in folder ``path``.
        ``style="locust"``: Locust 2.x's four files ``path_stats.csv``,
        ``path_stats_history.csv``, ``path_failures.csv`` and ``path_exceptions.csv``,
        with Locust's header rows (``full_history``: every endpoint in the history, as
        ``--csv-full-history``); see ``notebookswarm.notebook.locust_format``.
        """
        if style == "locust":
            from notebookswarm.notebook import locust_format

            files = locust_format.write_csv(
                path,
                self.stats,
                self.history,
                self.errors,
                self.exceptions,
                self._data.slots,
                full_history,
            )
            return files[0].parent
        if style != "frames":
            raise ConfigError(f"style={style!r}: write CSV in style 'frames' or 'locust'")
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        for name in _TABLES:
            self._table(name).to_csv(out / f"{name}.csv", index=False)
        return out

    def to_locust_json(self) -> list[dict[str, Any]]:
        """Return what ``locust --json`` prints for this run: one dict per endpoint."""
        from notebookswarm.notebook import locust_format

        start = self._data.first if self._data.first is not None else self.meta.get("started")
        return locust_format.to_json(self.stats, self.history, self._data.slots, start)

    def check(self, thresholds: Sequence[str]) -> pd.DataFrame:
        """Judge the run: one verdict row per threshold such as ``"p95_ms<500"``.

        Columns ``threshold``, ``observed``, ``limit``, ``passed``, ``note``; the
        expressions are those of ``notebookswarm run --threshold`` (docs/cli.md).
        """
        from notebookswarm.notebook.thresholds import evaluate

        return evaluate(thresholds, self.stats)


def _histograms_frame(slots: Sequence[Slot]) -> pd.DataFrame:
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "slot",
            "start",
            "end",
            "corrected",
            "method",
            "name",
            "bucket",
            "count",
            "n",
            "min",
            "max",
        )
    }
    for i, slot in enumerate(slots):
        kinds = ((False, slot.histograms), (True, slot.corrected))
        for corrected, (method, name), packed in (
            (c, key, p) for c, table in kinds for key, p in table.items()
        ):
            for bucket, count in zip(packed.buckets, packed.counts, strict=True):
                for key, value in (
                    ("slot", i),
                    ("corrected", corrected),
                    ("start", slot.start),
                    ("end", slot.end),
                    ("method", method),
                    ("name", name),
                    ("bucket", bucket),
                    ("count", count),
                    ("n", packed.count),
                    ("min", packed.min),
                    ("max", packed.max),
                ):
                    rows[key].append(value)
    return pd.DataFrame(rows).astype(
        {
            "slot": "int64",
            "start": "float64",
            "end": "float64",
            "corrected": "bool",
            "method": "string",
            "name": "string",
            "bucket": "int64",
            "count": "int64",
            "n": "int64",
            "min": "int64",
            "max": "int64",
        }
    )


def _slots_from(frame: pd.DataFrame) -> list[Slot]:
    slots: list[Slot] = []
    for _, part in frame.groupby("slot", sort=True):
        head = part.iloc[0]
        slot = Slot(float(head["start"]), float(head["end"]))
        for (corrected, method, name), rows in part.groupby(
            ["corrected", "method", "name"], sort=False
        ):
            hist = Histogram()
            hist.buckets = dict(zip(rows["bucket"].tolist(), rows["count"].tolist(), strict=True))
            first = rows.iloc[0]
            hist.count, hist.min, hist.max = int(first["n"]), int(first["min"]), int(first["max"])
            table = slot.corrected if corrected else slot.histograms
            table[(str(method), str(name))] = Packed.pack(hist)
        slots.append(slot)
    return slots
