"""One read-only view of a run's DataFrames, shared by a live ``Swarm`` and a saved ``Run``.

Subclasses say how to reach the data (:meth:`RunView._read`): a swarm under its lock, a
run directly; a run may also answer a table from frozen or loaded frames
(:meth:`RunView._table`). The columns are documented in docs/statistics.md (DataFrames).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

if TYPE_CHECKING:
    from notebookswarm.notebook.rundata import RunData

T = TypeVar("T")


class RunView:
    """The DataFrames of a run: ``stats``, ``history``, ``errors``, ``exceptions``, ``workers``,
    and the watched server's ``server`` and ``server_errors``."""

    def _read(self, reader: Callable[[RunData], T]) -> T:
        """Call ``reader`` on the run's data (a live swarm holds its lock meanwhile)."""
        raise NotImplementedError

    def _table(self, name: str) -> pd.DataFrame:
        """One of the DataFrames by name (``RunData``'s method of that name)."""
        frame: pd.DataFrame = self._read(lambda data: getattr(data, name)())
        return frame

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
        return self._read(lambda data: data.percentiles(q, start, end, by, corrected))
