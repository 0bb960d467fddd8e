"""Turn scraped server metrics into per-interval values: pure functions, no sockets, no clock.

A scrape becomes a :class:`Snapshot` (what the server said at one instant, by kind); two
consecutive snapshots become the interval's rows:

- a **gauge** stays its value (kind ``gauge``);
- a **counter** becomes a per-second rate over the time between the two scrapes (kind
  ``rate``; the metric keeps its name, ``http_requests_total``). A counter that went down
  was reset (the server restarted): its rate is what it counted since the reset;
- a **histogram** gives p50/p95/p99 of the observations *in the interval*, interpolated in
  the bucket deltas as Prometheus' ``histogram_quantile`` does (kind ``quantile``, the
  labels carry ``quantile="0.95"``), the mean (Δsum ÷ Δcount, kind ``mean``) and the
  rate of ``<name>_count``;
- a **summary** gives its own quantiles (they are the server's, over its own window), the
  interval's mean and the rate of ``<name>_count``.

Untyped samples are gauges, except names ending in ``_total`` (Prometheus' convention for
counters). ``*_created`` samples (when a series was created) are left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

#: Quantiles computed from a histogram's buckets.
QUANTILES: Final = (0.5, 0.95, 0.99)
#: The kinds of value a row holds.
KINDS: Final = ("gauge", "rate", "quantile", "mean")

#: A series' labels, sorted by name.
Labels = tuple[tuple[str, str], ...]
#: A series: its metric name and its labels.
Key = tuple[str, Labels]


class Row(NamedTuple):
    """One value of one series over one interval."""

    metric: str
    labels: str
    kind: str
    value: float


@dataclass
class Buckets:
    """A histogram's state at one instant: cumulative bucket counts by upper bound, sum."""

    bounds: list[tuple[float, float]] = field(default_factory=list)  # (le, cumulative)
    sum: float = 0.0
    count: float = 0.0


@dataclass
class Summary:
    """A summary's state at one instant: the server's quantiles, sum and count."""

    quantiles: dict[str, float] = field(default_factory=dict)  # "0.95" -> value
    sum: float = 0.0
    count: float = 0.0


@dataclass
class Snapshot:
    """What a source said at one instant, by kind of metric; ``time`` in seconds."""

    time: float
    gauges: dict[Key, float] = field(default_factory=dict)
    counters: dict[Key, float] = field(default_factory=dict)
    histograms: dict[Key, Buckets] = field(default_factory=dict)
    summaries: dict[Key, Summary] = field(default_factory=dict)


def format_labels(labels: Mapping[str, str] | Labels) -> str:
    """Return labels as Prometheus writes them, sorted by name: ``a="1",b="x"``."""
    pairs = sorted(labels.items() if isinstance(labels, Mapping) else labels)
    return ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_exposition(text: str, time: float) -> Snapshot:
    """Parse Prometheus text exposition into a snapshot; raise ValueError on anything else."""
    snapshot = Snapshot(time)
    families = list(text_string_to_metric_families(text))
    names = {family.name for family in families}
    for family in families:
        kind = family.type
        if family.name.endswith("_created") and _created_of(family.name, names):
            continue
        if kind == "histogram":
            _add_histogram(snapshot, family.name, family.samples)
        elif kind == "summary":
            _add_summary(snapshot, family.name, family.samples)
        else:
            for sample in family.samples:
                if sample.name.endswith("_created") and kind == "counter":
                    continue
                key = (sample.name, _labels(sample.labels))
                is_counter = kind == "counter" or (
                    kind in ("unknown", "untyped") and sample.name.endswith("_total")
                )
                table = snapshot.counters if is_counter else snapshot.gauges
                table[key] = float(sample.value)
    return snapshot


def _created_of(name: str, names: set[str]) -> bool:
    base = name.removesuffix("_created")
    return base in names or f"{base}_total" in names


def _add_histogram(snapshot: Snapshot, name: str, samples: Iterable[Sample]) -> None:
    by_labels: dict[Labels, Buckets] = {}
    for sample in samples:
        raw = dict(sample.labels)
        le = raw.pop("le", None)
        hist = by_labels.setdefault(_labels(raw), Buckets())
        value = float(sample.value)
        suffix = sample.name[len(name) :]
        if suffix == "_bucket" and le is not None:
            hist.bounds.append((float(le), value))
        elif suffix == "_sum":
            hist.sum = value
        elif suffix == "_count":
            hist.count = value
    for labels, hist in by_labels.items():
        hist.bounds.sort()
        snapshot.histograms[(name, labels)] = hist


def _add_summary(snapshot: Snapshot, name: str, samples: Iterable[Sample]) -> None:
    by_labels: dict[Labels, Summary] = {}
    for sample in samples:
        raw = dict(sample.labels)
        quantile = raw.pop("quantile", None)
        summary = by_labels.setdefault(_labels(raw), Summary())
        value = float(sample.value)
        suffix = sample.name[len(name) :]
        if quantile is not None and not suffix:
            summary.quantiles[quantile] = value
        elif suffix == "_sum":
            summary.sum = value
        elif suffix == "_count":
            summary.count = value
    for labels, summary in by_labels.items():
        snapshot.summaries[(name, labels)] = summary


_KEY = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?$")


def snapshot_of_values(values: object, time: float) -> Snapshot:
    """Turn a callable's ``{metric: value}`` into a snapshot; raise ValueError if it is not one.

    A key is a metric name, optionally with labels in exposition form
    (``'connections{state="active"}'``); a name ending in ``_total`` is a counter.
    """
    if not isinstance(values, Mapping):
        raise ValueError(
            f"the callable returned {type(values).__name__}, not a dict of metric -> number"
        )
    lines = []
    for key, value in values.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(f"{key!r} is not a metric name (letters, digits, _ and :)")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key}: {value!r} is not a number")
        lines.append(f"{key} {float(value)!r}")
    return parse_exposition("\n".join(lines) + "\n", time)


def counter_rate(before: float, after: float, seconds: float) -> float:
    """Return the per-second rate of a counter between two readings ``seconds`` apart.

    A counter that went down was reset: it counted ``after`` since the reset.
    """
    if seconds <= 0:
        return math.nan
    return (after - before if after >= before else after) / seconds


def bucket_deltas(
    before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Return cumulative counts per upper bound observed between two readings.

    Bounds missing before count from zero; if any bucket went down the histogram was reset
    and ``after`` is the interval's own.
    """
    old = dict(before)
    deltas = [(le, count - old.get(le, 0.0)) for le, count in after]
    if any(d < 0 for _, d in deltas):
        return list(after)
    return deltas


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Return quantile ``q`` of cumulative buckets ``(le, count)``, sorted by ``le``.

    Linear within the bucket holding the rank, from the previous bound (0 below the first,
    as Prometheus assumes); NaN without observations; a rank in the ``+Inf`` bucket is
    the highest finite bound.
    """
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for le, cumulative in buckets:
        if cumulative >= rank and cumulative > below:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (rank - below) / (cumulative - below)
        if not math.isinf(le):
            lower = le
        below = cumulative
    return lower


def interval_rows(
    before: Snapshot | None, after: Snapshot, quantiles: Sequence[float] = QUANTILES
) -> list[Row]:
    """Return the rows of the interval that ends with ``after`` (see the module docstring).

    Without ``before`` (the first scrape) only gauges and summaries' quantiles have a value.
    """
    rows = [
        Row(name, format_labels(labels), "gauge", v) for (name, labels), v in after.gauges.items()
    ]
    for key, summary in after.summaries.items():
        for given, value in summary.quantiles.items():
            rows.append(Row(key[0], _with_quantile(key[1], given), "quantile", value))
    if before is None:
        return rows
    seconds = after.time - before.time
    for key, value in after.counters.items():
        if key in before.counters:
            rate = counter_rate(before.counters[key], value, seconds)
            rows.append(Row(key[0], format_labels(key[1]), "rate", rate))
    for key, hist in after.histograms.items():
        old = before.histograms.get(key)
        if old is None:
            continue
        deltas = bucket_deltas(old.bounds, hist.bounds)
        rows += _count_and_mean(key, old.count, hist.count, old.sum, hist.sum, seconds)
        if deltas and deltas[-1][1] > 0:
            for q in quantiles:
                text = _with_quantile(key[1], f"{q:g}")
                rows.append(Row(key[0], text, "quantile", bucket_quantile(q, deltas)))
    for key, summary in after.summaries.items():
        old_summary = before.summaries.get(key)
        if old_summary is not None:
            rows += _count_and_mean(
                key, old_summary.count, summary.count, old_summary.sum, summary.sum, seconds
            )
    return rows


def _count_and_mean(
    key: Key, count0: float, count1: float, sum0: float, sum1: float, seconds: float
) -> list[Row]:
    name, labels = key[0], format_labels(key[1])
    rows = [Row(f"{name}_count", labels, "rate", counter_rate(count0, count1, seconds))]
    observed = count1 - count0 if count1 >= count0 else count1
    if observed > 0:
        added = sum1 - sum0 if count1 >= count0 else sum1
        rows.append(Row(name, labels, "mean", added / observed))
    return rows


def _with_quantile(labels: Labels, quantile: str) -> str:
    return format_labels((*labels, ("quantile", quantile)))
