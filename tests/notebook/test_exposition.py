"""Scraped metrics to per-interval values: parsing, rates, bucket quantiles, labels, the grid."""

from __future__ import annotations

import math

import pytest

from notebookswarm.notebook.exposition import (
    Row,
    bucket_deltas,
    bucket_quantile,
    counter_rate,
    format_labels,
    interval_rows,
    parse_exposition,
    snapshot_of_values,
)
from notebookswarm.notebook.watch import first_index, grid_start

PAGE = """# HELP reqs_total Requests.
# TYPE reqs_total counter
reqs_total{endpoint="a",method="GET"} {reqs}
reqs_created{endpoint="a",method="GET"} 1.7e9
# TYPE pool_in_use gauge
pool_in_use {in_use}
# TYPE took_seconds histogram
took_seconds_bucket{le="0.1"} {b1}
took_seconds_bucket{le="1.0"} {b2}
took_seconds_bucket{le="+Inf"} {b3}
took_seconds_sum {sum}
took_seconds_count {b3}
# TYPE lag summary
lag{quantile="0.5",zone="z"} 0.25
lag_sum{zone="z"} {lsum}
lag_count{zone="z"} {lcount}
legacy_total 7
"""


def page(**values: float) -> str:
    """The exposition text above with its numbers filled in."""
    text = PAGE
    for name, value in values.items():
        text = text.replace("{" + name + "}", repr(float(value)))
    return text


def test_labels_are_sorted_and_escaped_as_prometheus_writes_them() -> None:
    """Labels come out sorted by name, with backslash, quote and newline escaped."""
    assert format_labels({"b": "2", "a": 'say "hi"\n\\'}) == 'a="say \\"hi\\"\\n\\\\",b="2"'
    assert format_labels({}) == ""


def test_counter_rate_per_second_and_after_a_reset() -> None:
    """A counter's rate is its increase per second; after a reset, what it counted since."""
    assert counter_rate(100, 160, 2.0) == 30.0
    assert counter_rate(100, 12, 2.0) == 6.0
    assert math.isnan(counter_rate(1, 2, 0.0))


def test_bucket_quantile_interpolates_like_histogram_quantile() -> None:
    """The rank falls in a bucket and is interpolated linearly from its lower bound."""
    buckets = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (math.inf, 40.0)]
    assert bucket_quantile(0.25, buckets) == pytest.approx(0.1)
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * 10 / 20)
    assert bucket_quantile(0.05, buckets) == pytest.approx(0.02)  # rank 2 of 10, from 0
    assert bucket_quantile(0.99, [(1.0, 1.0), (math.inf, 100.0)]) == 1.0  # +Inf: highest bound
    assert math.isnan(bucket_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))


def test_bucket_deltas_are_the_interval_and_survive_a_reset() -> None:
    """Deltas subtract the previous reading per bound; a bucket going down means a reset."""
    before = [(0.1, 5.0), (math.inf, 8.0)]
    assert bucket_deltas(before, [(0.1, 7.0), (math.inf, 12.0)]) == [(0.1, 2.0), (math.inf, 4.0)]
    assert bucket_deltas(before, [(0.1, 1.0), (math.inf, 2.0)]) == [(0.1, 1.0), (math.inf, 2.0)]


def test_interval_rows_by_kind() -> None:
    """Gauges stay values, counters become rates, histograms give interval quantiles and a
    mean, summaries their own quantiles; `_created` samples are left out."""
    first = parse_exposition(page(reqs=100, in_use=3, b1=10, b2=10, b3=10, sum=0.5,
                                  lsum=1, lcount=2), 10.0)  # fmt: skip
    second = parse_exposition(page(reqs=150, in_use=8, b1=10, b2=30, b3=30, sum=8.5,
                                   lsum=3, lcount=6), 12.0)  # fmt: skip
    assert interval_rows(None, first) == [
        Row("pool_in_use", "", "gauge", 3.0),
        Row("lag", 'quantile="0.5",zone="z"', "quantile", 0.25),
    ]
    rows = {(r.metric, r.labels, r.kind): r.value for r in interval_rows(first, second)}
    assert rows[("reqs_total", 'endpoint="a",method="GET"', "rate")] == 25.0
    assert rows[("legacy_total", "", "rate")] == 0.0  # untyped *_total: a counter
    assert rows[("pool_in_use", "", "gauge")] == 8.0
    assert rows[("took_seconds_count", "", "rate")] == 10.0
    assert rows[("took_seconds", "", "mean")] == pytest.approx(8.0 / 20)
    # The interval's 20 observations all fell in (0.1, 1.0]: p50 is halfway through it.
    assert rows[("took_seconds", 'quantile="0.5"', "quantile")] == pytest.approx(0.55)
    assert rows[("lag_count", 'zone="z"', "rate")] == 2.0
    assert rows[("lag", 'zone="z"', "mean")] == pytest.approx(0.5)
    assert not any("created" in metric for metric, _, _ in rows)


def test_garbage_is_a_value_error() -> None:
    """HTML or text that is not exposition raises ValueError (the watcher records it)."""
    with pytest.raises(ValueError):
        parse_exposition("<html><body>Welcome</body></html>", 0.0)
    with pytest.raises(ValueError):
        parse_exposition("metric value-that-is-not-a-number\n", 0.0)


def test_callable_values_become_gauges_and_counters() -> None:
    """`{name: number}` keys may carry labels; `_total` names are counters; others raise."""
    snap = snapshot_of_values({'conns{state="active"}': 3, "xacts_total": 10}, 1.0)
    assert snap.gauges == {("conns", (("state", "active"),)): 3.0}
    assert snap.counters == {("xacts_total", ()): 10.0}
    for bad in ([1, 2], {"ok": "three"}, {"bad name": 1}, {"flag": True}):
        with pytest.raises(ValueError):
            snapshot_of_values(bad, 1.0)


def test_ticks_fall_on_the_grid_of_start() -> None:
    """The first tick is the first `start + n * every` not before now; the default grid is
    whole seconds."""
    assert first_index(now=99.0, start=100.3, every=1.0) == 0
    assert first_index(now=100.3, start=100.3, every=1.0) == 0
    assert first_index(now=100.31, start=100.3, every=1.0) == 1
    assert first_index(now=105.0, start=100.3, every=1.0) == 5
    assert first_index(now=104.3 - 1e-9, start=100.3, every=1.0) == 4  # float noise
    assert first_index(now=107.0, start=100.0, every=2.5) == 3
    assert grid_start(1234.56) == 1234.0
    assert grid_start(1234.56, every=5.0) == 1230.0
