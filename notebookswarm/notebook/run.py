"""A finished (or snapshotted) run: the same DataFrames as a live swarm, saved and loaded.

``run.save(path)`` writes a folder: one Parquet file per DataFrame, the stored histograms
in long form (so ``percentiles`` works on a loaded run), and ``meta.json`` with the
configuration, start and end. ``Run.load(path)`` gives back identical DataFrames.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.rundata import Packed, RunData, Slot
from notebookswarm.stats.histogram import Histogram

FORMAT = 1
_TABLES = ("stats", "history", "errors", "exceptions", "workers")


class Run:
    """A run's data and metadata; read it like a live swarm, save it, load it."""

    def __init__(self, data: RunData, meta: dict[str, Any]) -> None:
        self._data = data
        self.meta = meta
        self._frozen: dict[str, pd.DataFrame] = {}

    def _frame(self, name: str) -> pd.DataFrame:
        if name in self._frozen:
            return self._frozen[name].copy()
        frame: pd.DataFrame = getattr(self._data, name)()
        return frame

    @property
    def stats(self) -> pd.DataFrame:
        """Cumulative per-endpoint stats plus ``Aggregated``."""
        return self._frame("stats")

    @property
    def history(self) -> pd.DataFrame:
        """One row per second per endpoint, plus ``Aggregated``."""
        return self._frame("history")

    @property
    def errors(self) -> pd.DataFrame:
        """Failures by ``(method, name, error)`` with counts."""
        return self._frame("errors")

    @property
    def exceptions(self) -> pd.DataFrame:
        """Exceptions raised by user code, with traceback and count."""
        return self._frame("exceptions")

    @property
    def workers(self) -> pd.DataFrame:
        """The workers as last reported."""
        return self._frame("workers")

    def percentiles(
        self,
        q: Sequence[float] = (0.5, 0.95, 0.99),
        start: Any = None,
        end: Any = None,
        by: str | Sequence[str] | None = "name",
        corrected: bool = False,
    ) -> pd.DataFrame:
        """Exact percentiles (ms) over a window; see ``RunData.percentiles``."""
        return self._data.percentiles(q, start, end, by, corrected)

    def __repr__(self) -> str:
        total = self.stats.iloc[-1]  # the Aggregated row; a loaded run has no RequestStats
        return (
            f"<Run {total['requests']} requests, {total['failures']} failures, "
            f"{self._data.duration():.1f} s>"
        )

    # --- files -------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the run to folder ``path`` (Parquet + ``meta.json``); return the folder."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for name in _TABLES:
            self._frame(name).to_parquet(folder / f"{name}.parquet", index=False)
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

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """Read a run written by :meth:`save`."""
        folder = Path(path)
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
        run._frozen = {name: pd.read_parquet(folder / f"{name}.parquet") for name in _TABLES}
        return run

    def to_html(self, path: str | Path, title: str = "notebookswarm run") -> Path:
        """Write one self-contained HTML report (works offline) to ``path``; return it."""
        from notebookswarm.notebook.report import write_html

        return write_html(self, path, title)

    def to_csv(self, folder: str | Path) -> Path:
        """Write each DataFrame as CSV into ``folder``; return the folder."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for name in _TABLES:
            self._frame(name).to_csv(out / f"{name}.csv", index=False)
        return out


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
