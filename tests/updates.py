"""Build typed update frames for tests from the few fields a test cares about."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notebookswarm.cluster import protocol

_DEFAULTS: dict[str, Any] = {
    "seq": 0,
    "time": 0.0,
    "state": "running",
    "users": 0,
    "target_users": 0,
    "spawn_rate": 1.0,
    "rate": None,
    "max_users": None,
    "start": 0.0,
    "end": 1.0,
    "stats": {},
    "workers": [],
    "lost": [],
    "failures": [],
    "reports": [["w1", 0]],
    "span": 0.0,
    "overloaded": [],
    "dropped": 0,
}


def worker_row(row: Mapping[str, Any] | protocol.WorkerRow) -> protocol.WorkerRow:
    """A worker row from a dict that names some of its fields."""
    if isinstance(row, protocol.WorkerRow):
        return row
    base: dict[str, Any] = {
        "id": "w1",
        "host": "h",
        "pid": 1,
        "cores": 1,
        "state": "running",
        "users": 0,
        "cpu_percent": 0.0,
        "loop_lag": 0.0,
        "rps": 0.0,
        "last_seen": 0.0,
        "error": None,
        "overloaded": False,
    }
    return protocol.WorkerRow(**{**base, **row})


def as_update(fields: Mapping[str, Any] | protocol.Update) -> protocol.Update:
    """An ``Update`` with ``fields`` set and the rest at harmless defaults.

    ``reports`` may be a bool (True: one report, False: none) or ``[[worker, seq], ...]``;
    workers, lost intervals and failures may be dicts.
    """
    if isinstance(fields, protocol.Update):
        return fields
    values = {**_DEFAULTS, **fields}
    reports = values["reports"]
    if reports is True:
        reports = [["w1", 0]]
    elif reports is False:
        reports = []
    values["reports"] = [
        r if isinstance(r, protocol.ReportId) else protocol.ReportId(worker=r[0], seq=r[1])
        for r in reports
    ]
    values["workers"] = [worker_row(w) for w in values["workers"]]
    values["lost"] = [
        w if isinstance(w, protocol.LostInterval) else protocol.LostInterval(**w)
        for w in values["lost"]
    ]
    values["failures"] = [
        f if isinstance(f, protocol.WorkerFailure) else protocol.WorkerFailure(**f)
        for f in values["failures"]
    ]
    values["overloaded"] = list(values["overloaded"])
    for name in ("time", "start", "end", "span", "spawn_rate"):
        values[name] = float(values[name])
    if values["rate"] is not None:
        values["rate"] = float(values["rate"])
    return protocol.Update(**values)
