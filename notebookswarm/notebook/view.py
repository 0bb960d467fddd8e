"""One read-only view of a run's DataFrames, shared by a live ``Swarm`` and a saved ``Run``.

Subclasses say how to read a table (:meth:`RunView._table`) and percentiles
(:meth:`RunView._percentiles`): a swarm under its lock from live data, a run from frozen
or loaded frames. The columns are documented in docs/statistics.md (DataFrames).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd


class RunView:
    """The DataFrames of a run: ``stats``, ``history``, ``errors``, ``exceptions``, ``workers``,
    and the watched server's ``server`` and ``server_errors``."""

    def _table(self, name: str) -> pd.DataFrame:
        raise NotImplementedError

    def _percentiles(
        self,
        q: Sequence[float],
        start: Any,
        end: Any,
        by: str | Sequence[str] | None,
        corrected: bool,
    ) -> pd.DataFrame:
        raise NotImplementedError

    @property
    def stats(self) -> pd.DataFrame:
        """Cumulative per-endpoint stats plus ``Aggregated``."""
        return self._table("stats")

    @property
    def history(self) -> pd.DataFrame:
        """One row per second per endpoint, plus ``Aggregated``."""
        return self._table("history")

    @property
    def errors(self) -> pd.DataFrame:
        """Failures by ``(method, name, error)`` with counts."""
        return self._table("errors")

    @property
    def exceptions(self) -> pd.DataFrame:
        """Exceptions raised by user code, with traceback and count."""
        return self._table("exceptions")

    @property
    def workers(self) -> pd.DataFrame:
        """One row per worker: id, host, state, users, CPU %, loop lag, rps, last seen."""
        return self._table("workers")

    @property
    def server(self) -> pd.DataFrame:
        """The watched server metrics: time, source, metric, labels, kind, value (tidy)."""
        return self._table("server")

    @property
    def server_errors(self) -> pd.DataFrame:
        """Scrapes of watched sources that failed: when, which source, what kind, why."""
        return self._table("server_errors")

    def percentiles(
        self,
        q: Sequence[float] = (0.5, 0.95, 0.99),
        start: Any = None,
        end: Any = None,
        by: str | Sequence[str] | None = "name",
        corrected: bool = False,
    ) -> pd.DataFrame:
        """Exact percentiles (ms) over a time window, from the stored histograms.

        ``start``/``end``: timestamps or epoch seconds (None: the whole run); ``by``:
        ``"name"``, ``"method"``, ``["method", "name"]`` or None for all requests together;
        ``corrected``: the open model's latencies from the intended start time.
        """
        return self._percentiles(q, start, end, by, corrected)
