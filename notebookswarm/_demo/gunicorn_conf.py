"""gunicorn's configuration for the real stack (``-c python:notebookswarm._demo.gunicorn_conf``).

Only the hook lives here; everything else is on gunicorn's command line, where
:mod:`.stack` can show it.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges, so the busy and pool gauges sum live workers only."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
