"""The one door through which users report what happened: :class:`Recorder`.

A worker passes its :class:`~notebookswarm.stats.requests.StatsRecorder`; anything with
these two methods will do (a test's list, a custom protocol's client).
"""

from __future__ import annotations

from typing import Protocol


class Recorder(Protocol):
    """Where users report what happened (a ``StatsRecorder`` in a worker)."""

    def record_request(
        self, method: str, name: str, latency_ns: int, nbytes: int, error: str | None
    ) -> None: ...

    def record_exception(self, exc: BaseException) -> None: ...
