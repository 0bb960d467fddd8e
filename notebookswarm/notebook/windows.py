"""Percentiles over a time window, as a DataFrame, from the histograms of the window.

Shared by a live ``RunData`` and a loaded run: times in, exact percentiles (within 1%) out,
grouped by name, method, both, or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from notebookswarm.errors import ConfigError
from notebookswarm.stats.histogram import Histogram

_NS_PER_MS = 1_000_000


def percentiles_frame(
    histograms: Iterable[tuple[tuple[str, str], Histogram]],
    qs: Sequence[float],
    by: str | Sequence[str] | None,
) -> pd.DataFrame:
    """Merge ``(key, histogram)`` pairs per group of ``by`` and read ``qs`` (in ms)."""
    keys = _group_keys(by)
    columns = [_label(x) for x in qs]
    merged: dict[tuple[str, ...], Histogram] = {}
    for (method, name), hist in histograms:
        group = tuple({"method": method, "name": name}[k] for k in keys)
        merged.setdefault(group, Histogram()).merge(hist)
    rows = []
    for group, hist in sorted(merged.items()):
        values = [v / _NS_PER_MS for v in hist.percentiles(qs)]
        rows.append([*group, hist.count, *values])
    frame = pd.DataFrame(rows, columns=[*keys, "requests", *columns])
    frame = frame.astype(
        {
            "requests": "int64",
            **dict.fromkeys(columns, "float64"),
            **dict.fromkeys(keys, "string"),
        }
    )
    return frame.set_index(keys) if keys else frame


def to_seconds(value: Any, default: float) -> float:
    """Epoch seconds of a time given as ``pd.Timestamp`` accepts (naive: UTC) or seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return float(stamp.timestamp())


def _group_keys(by: str | Sequence[str] | None) -> list[str]:
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    for key in keys:
        if key not in ("method", "name"):
            raise ConfigError(f"by={by!r}: group by 'name', 'method', ['method', 'name'] or None")
    return keys


def _label(q: float) -> str:
    if not 0 < q <= 1:
        raise ConfigError(f"quantile {q!r} is outside (0, 1]: pass 0.99 for p99")
    text = f"{q * 100:.4f}".rstrip("0").rstrip(".").replace(".", "_")
    return f"p{text}_ms"
