"""Histograms of spans of time, packed into typed arrays, merged per minute and per hour.

A controller keeps one :class:`Slot` per update for the recent past; older slots are merged
into one per minute, and (when the run streams to disk, which keeps every update) minutes
older than an hour into one per hour. Merging adds bucket counts, so percentiles over the
merged spans stay exact for those spans.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

from notebookswarm.stats.histogram import Histogram

Key = tuple[str, str]


@dataclass
class Packed:
    """A histogram packed into typed arrays: a few bytes per bucket, not a dict entry."""

    buckets: array[int]
    counts: array[int]
    count: int
    min: int
    max: int

    @classmethod
    def pack(cls, hist: Histogram) -> Packed:
        """Pack a histogram."""
        keys = sorted(hist.buckets)
        return cls(
            array("I", keys),
            array("Q", [hist.buckets[k] for k in keys]),
            hist.count,
            hist.min,
            hist.max,
        )

    def unpack(self) -> Histogram:
        """Rebuild the histogram."""
        hist = Histogram()
        hist.buckets = dict(zip(self.buckets, self.counts, strict=True))
        hist.count, hist.min, hist.max = self.count, self.min, self.max
        return hist


@dataclass
class Slot:
    """The histograms of one span of time, per endpoint key ``(method, name)``."""

    start: float
    end: float
    histograms: dict[Key, Packed] = field(default_factory=dict)
    #: From the intended start, where it differs (arrival-rate mode).
    corrected: dict[Key, Packed] = field(default_factory=dict)


def take_older(slots: list[Slot], cut: float) -> list[Slot]:
    """Remove and return the leading slots that ended before ``cut``."""
    k = 0
    while k < len(slots) and slots[k].end < cut:
        k += 1
    old = slots[:k]
    del slots[:k]
    return old


def absorb(level: list[Slot], slots: list[Slot], width: float) -> None:
    """Merge ``slots`` into ``level``, one slot per ``width`` seconds (by start time)."""
    for slot in slots:
        span = math.floor(slot.start / width)
        if level and math.floor(level[-1].start / width) == span:
            merge_into(level[-1], slot)
        else:
            level.append(Slot(slot.start, slot.end, dict(slot.histograms), dict(slot.corrected)))


def merge_into(target: Slot, slot: Slot) -> None:
    """Add ``slot``'s histograms into ``target`` and stretch it to ``slot``'s end."""
    target.end = max(target.end, slot.end)
    for key in set(target.corrected) | set(slot.corrected):  # before histograms change
        mine = target.corrected.get(key) or target.histograms.get(key)
        theirs = slot.corrected.get(key) or slot.histograms.get(key)
        target.corrected[key] = _sum(mine, theirs)
    for key, packed in slot.histograms.items():
        target.histograms[key] = _sum(target.histograms.get(key), packed)


def _sum(a: Packed | None, b: Packed | None) -> Packed:
    if a is None or b is None:
        result = a or b
        assert result is not None
        return result
    hist = a.unpack()
    hist.merge(b.unpack())
    return Packed.pack(hist)
