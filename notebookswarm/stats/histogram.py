"""A latency histogram that merges exactly and reads percentiles within 1%.

Values are integer nanoseconds (what ``time.perf_counter_ns`` returns). The buckets are
log-linear: values below 128 ns have a bucket each; above that, every power of two is cut
into 64 equal buckets, so a bucket is at most 1/64 of its lower bound wide and its midpoint
is within 1/128 (0.78%) of any value in it. That holds from 1 µs to hours, which is why
the unit is the nanosecond rather than the microsecond: at 1 µs a microsecond grid would
be 100% coarse.

The histogram is sparse (``bucket index -> count``), so merging is dict addition:
associative, commutative and exact. The exact minimum and maximum are kept beside the
buckets and every percentile is clamped to them, so p100 is the max and no percentile
ever exceeds it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

_LINEAR = 128  # values below this have one bucket each
_SUB_BITS = 6  # 2**6 = 64 buckets per power of two above _LINEAR


def _only_ints(values: Iterable[object]) -> bool:
    """True when every value is exactly an ``int`` (not a bool, float or string)."""
    return set(map(type, values)) <= _INT_TYPE


_INT_TYPE = {int}


def bucket_of(value: int) -> int:
    """Return the bucket index of a value in nanoseconds (negative values count as 0)."""
    if value < _LINEAR:
        return value if value > 0 else 0
    shift = value.bit_length() - 7
    return (shift << _SUB_BITS) + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """Return the half-open range ``[low, high)`` of values that fall in a bucket."""
    if index < _LINEAR:
        return index, index + 1
    shift = (index >> _SUB_BITS) - 1
    mantissa = index - (shift << _SUB_BITS)
    return mantissa << shift, (mantissa + 1) << shift


def bucket_value(index: int) -> int:
    """Return the value that represents a bucket: its midpoint (exact below 128 ns)."""
    low, high = bucket_bounds(index)
    return (low + high - 1) // 2 if high - low > 1 else low


class Histogram:
    """Count latencies in log-linear buckets; merge by addition; read percentiles."""

    __slots__ = ("buckets", "count", "max", "min")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        """Count one value in nanoseconds."""
        if value < _LINEAR:
            if value < 0:  # a clock step backwards; count it as zero, not as a new minimum
                value = 0
            index = value
        else:
            shift = value.bit_length() - 7
            index = (shift << _SUB_BITS) + (value >> shift)
        buckets = self.buckets
        buckets[index] = buckets.get(index, 0) + 1
        if self.count == 0:
            self.min = self.max = value
        elif value < self.min:
            self.min = value
        elif value > self.max:
            self.max = value
        self.count += 1

    def record_many(self, values: Iterable[int]) -> None:
        """Count every value of an iterable."""
        for value in values:
            self.record(value)

    def merge(self, other: Histogram) -> None:
        """Add another histogram's counts into this one."""
        if other.count == 0:
            return
        buckets = self.buckets
        if buckets:
            get = buckets.get  # the master merges every worker's report: keep this loop tight
            for index, n in other.buckets.items():
                buckets[index] = get(index, 0) + n
        else:
            buckets.update(other.buckets)
        if self.count == 0:
            self.min, self.max = other.min, other.max
        else:
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.count += other.count

    def copy(self) -> Histogram:
        """Return an independent copy."""
        new = Histogram()
        new.merge(self)
        return new

    def percentile(self, q: float) -> int:
        """Return the nearest-rank ``q`` quantile (0 < q <= 1) in nanoseconds; 0 when empty."""
        return self.percentiles([q])[0]

    def percentiles(self, qs: Iterable[float]) -> list[int]:
        """Return several nearest-rank quantiles in one walk over the buckets."""
        qs = list(qs)
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile {q!r} is outside [0, 1]: pass 0.99 for p99")
        if self.count == 0:
            return [0 for _ in qs]
        ranks = sorted((max(1, math.ceil(q * self.count)), i) for i, q in enumerate(qs))
        out = [0] * len(qs)
        pending = iter(ranks)
        rank, slot = next(pending)
        seen = 0
        done = False
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            while seen >= rank:
                out[slot] = self._clamp(index, rank)
                nxt = next(pending, None)
                if nxt is None:
                    done = True
                    break
                rank, slot = nxt
            if done:
                break
        return out

    def _clamp(self, index: int, rank: int) -> int:
        if rank >= self.count:
            return self.max
        return min(max(bucket_value(index), self.min), self.max)

    def to_wire(self) -> dict[str, Any]:
        """Return a msgpack-ready dict (integer keys are kept as integers)."""
        return {"b": self.buckets, "n": self.count, "lo": self.min, "hi": self.max}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Histogram:
        """Rebuild a histogram from :meth:`to_wire` output."""
        new = cls()
        buckets = data["b"]
        if type(buckets) is dict and _only_ints(buckets) and _only_ints(buckets.values()):
            new.buckets = dict(buckets)  # what msgpack gives: a copy at C speed
        else:
            new.buckets = {int(k): int(v) for k, v in buckets.items()}
        new.count = int(data["n"])
        new.min = int(data["lo"])
        new.max = int(data["hi"])
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (self.buckets, self.count, self.min, self.max) == (
            other.buckets,
            other.count,
            other.min,
            other.max,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Histogram(count={self.count}, min={self.min}, max={self.max})"
