"""Properties of the latency histogram: 1% percentiles, exact merges, a lossless wire form.

Samples are integer nanoseconds between 1 µs and 1 h, drawn from lognormal, uniform and
bimodal distributions whose parameters hypothesis chooses; the oracle is the exact
nearest-rank percentile of the same sample, ``sorted(sample)[ceil(q * n) - 1]``.
"""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notebookswarm.stats.histogram import Histogram, bucket_bounds, bucket_of, bucket_value

LOW = 1_000  # 1 µs in ns
HIGH = 3_600_000_000_000  # 1 h in ns
LOG_LOW, LOG_HIGH = math.log(LOW), math.log(HIGH)
#: The percentiles we report, as decimals: exact as fractions, and as the floats we pass.
QUANTILES = ("0.5", "0.9", "0.95", "0.99", "0.999", "1.0")

examples = settings(max_examples=100, deadline=None)

sizes = st.integers(1, 5_000)
seeds = st.integers(0, 2**32 - 1)
log_points = st.floats(LOG_LOW, LOG_HIGH)


def clip(value: float) -> int:
    return min(HIGH, max(LOW, round(value)))


@st.composite
def lognormal(draw: st.DrawFn) -> list[int]:
    rng = random.Random(draw(seeds))
    mu, sigma = draw(log_points), draw(st.floats(0.01, 3.0))
    return [clip(rng.lognormvariate(mu, sigma)) for _ in range(draw(sizes))]


@st.composite
def uniform(draw: st.DrawFn) -> list[int]:
    rng = random.Random(draw(seeds))
    low, high = sorted(clip(math.exp(draw(log_points))) for _ in range(2))
    return [rng.randint(low, high) for _ in range(draw(sizes))]


@st.composite
def bimodal(draw: st.DrawFn) -> list[int]:
    rng = random.Random(draw(seeds))
    modes = [(draw(log_points), draw(st.floats(0.01, 1.0))) for _ in range(2)]
    share = draw(st.floats(0.01, 0.99))
    return [
        clip(rng.lognormvariate(*modes[0] if rng.random() < share else modes[1]))
        for _ in range(draw(sizes))
    ]


#: Arbitrary integers in range too, so hypothesis can push values to the edges.
anything = st.lists(st.integers(LOW, HIGH), min_size=1, max_size=500)
samples = st.one_of(lognormal(), uniform(), bimodal(), anything)


def histogram_of(values: list[int]) -> Histogram:
    hist = Histogram()
    hist.record_many(values)
    return hist


def nearest_rank(ordered: list[int], q: Fraction) -> int:
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def assert_percentiles_within_one_percent(sample: list[int]) -> None:
    hist = histogram_of(sample)
    ordered = sorted(sample)
    got = hist.percentiles(float(q) for q in QUANTILES)
    for q, value in zip(QUANTILES, got, strict=True):
        exact = nearest_rank(ordered, Fraction(q))
        assert abs(value - exact) <= exact / 100, (q, value, exact)
        assert hist.percentile(float(q)) == value


@examples
@given(lognormal())
def test_lognormal_percentiles_are_within_one_percent(sample: list[int]) -> None:
    """Every reported percentile of a lognormal sample is within 1% of the exact one."""
    assert_percentiles_within_one_percent(sample)


@examples
@given(uniform())
def test_uniform_percentiles_are_within_one_percent(sample: list[int]) -> None:
    """Every reported percentile of a uniform sample is within 1% of the exact one."""
    assert_percentiles_within_one_percent(sample)


@examples
@given(bimodal())
def test_bimodal_percentiles_are_within_one_percent(sample: list[int]) -> None:
    """Every reported percentile of a two-mode sample is within 1% of the exact one."""
    assert_percentiles_within_one_percent(sample)


@examples
@given(anything)
def test_any_sample_percentiles_are_within_one_percent(sample: list[int]) -> None:
    """Every reported percentile of any sample from 1 µs to 1 h is within 1% of the exact one."""
    assert_percentiles_within_one_percent(sample)


def test_percentiles_at_the_ends_of_the_range_are_within_one_percent() -> None:
    """Samples made only of 1 µs and 1 h values are read within 1% at both ends."""
    for sample in ([LOW] * 10 + [HIGH], [LOW, HIGH], [HIGH - 1] * 3, [LOW + 1] * 1000):
        assert_percentiles_within_one_percent(sample)


@examples
@given(samples, st.lists(st.floats(0.0, 1.0), max_size=10))
def test_min_max_are_exact_and_percentiles_stay_between_them(
    sample: list[int], qs: list[float]
) -> None:
    """min and max are exact, p100 is the max, and no percentile leaves [min, max]."""
    hist = histogram_of(sample)
    assert (hist.count, hist.min, hist.max) == (len(sample), min(sample), max(sample))
    assert hist.percentile(1.0) == max(sample)
    for value in hist.percentiles([*qs, 0.0, 0.5, 1.0]):
        assert min(sample) <= value <= max(sample)


@examples
@given(samples, st.data())
def test_merging_split_parts_in_any_order_equals_recording_the_whole(
    sample: list[int], data: st.DataObject
) -> None:
    """Recording parts of a sample separately and merging them, in any order, gives
    exactly the histogram of the whole sample."""
    whole = histogram_of(sample)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(sample)), max_size=6), label="cuts"))
    bounds = [0, *cuts, len(sample)]
    pool = [histogram_of(sample[a:b]) for a, b in itertools.pairwise(bounds)]
    while len(pool) > 1:  # merge two random histograms until one is left
        into = pool.pop(data.draw(st.integers(0, len(pool) - 1), label="into"))
        other = pool.pop(data.draw(st.integers(0, len(pool) - 1), label="other"))
        into.merge(other)
        pool.append(into)
    (merged,) = pool
    assert merged == whole
    assert merged.percentiles([0.5, 0.99, 1.0]) == whole.percentiles([0.5, 0.99, 1.0])


@examples
@given(samples)
def test_merging_into_an_empty_histogram_copies_it(sample: list[int]) -> None:
    """Merging into an empty histogram, and merging an empty one in, change nothing."""
    hist = histogram_of(sample)
    copy = Histogram()
    copy.merge(hist)
    copy.merge(Histogram())
    assert copy == hist == hist.copy()
    copy.record(LOW)
    assert copy != hist  # a copy is independent


@examples
@given(st.one_of(samples, st.just([])))
def test_wire_form_round_trips_through_msgpack(sample: list[int]) -> None:
    """to_wire packed with msgpack and read back by from_wire gives an equal histogram."""
    hist = histogram_of(sample)
    packed = msgpack.packb(hist.to_wire(), use_bin_type=True)
    back = Histogram.from_wire(msgpack.unpackb(packed, strict_map_key=False))
    assert back == hist
    qs = [float(q) for q in QUANTILES]
    assert back.percentiles(qs) == hist.percentiles(qs)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2**50))
def test_every_value_falls_in_the_bucket_whose_bounds_contain_it(value: int) -> None:
    """bucket_of and bucket_bounds agree, buckets tile the integers, and a bucket's value
    is within 1/128 of anything in it."""
    index = bucket_of(value)
    low, high = bucket_bounds(index)
    assert low <= value < high
    assert bucket_of(low) == index == bucket_of(high - 1)
    assert bucket_of(high) == index + 1
    if index > 0:
        assert bucket_bounds(index - 1)[1] == low
    middle = bucket_value(index)
    assert low <= middle < high
    if value < 128:
        assert middle == value  # one bucket per nanosecond below 128 ns
    else:
        assert (high - low) * 64 <= low
        assert abs(middle - value) * 128 <= value


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**50), st.integers(0, 2**50))
def test_bucket_indices_grow_with_values(a: int, b: int) -> None:
    """A larger value never falls in an earlier bucket."""
    if a > b:
        a, b = b, a
    assert bucket_of(a) <= bucket_of(b)


@pytest.mark.parametrize("q", [-0.01, 1.0001, float("nan"), float("-inf"), 99.0])
def test_a_quantile_outside_zero_to_one_is_a_value_error(q: float) -> None:
    """percentile(q) with q outside [0, 1] raises ValueError, also on an empty histogram."""
    for hist in (histogram_of([LOW, HIGH]), Histogram()):
        with pytest.raises(ValueError, match="outside"):
            hist.percentile(q)
        with pytest.raises(ValueError, match="outside"):
            hist.percentiles([0.5, q])


def test_an_empty_histogram_reads_zero() -> None:
    """Every percentile of an empty histogram is 0."""
    assert Histogram().percentiles([0.0, 0.5, 1.0]) == [0, 0, 0]
