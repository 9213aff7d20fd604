"""An HDR-style log-linear histogram of non-negative integers (nanoseconds). Pure.

Like HdrHistogram with 3 significant digits, the value range is split into power-of-two
*buckets*, each cut into 1024 equal *sub-buckets* (values below 2048 are kept exactly). Any
recorded value ``v`` is therefore known to within ``v / 1024`` (< 0.1 %): a percentile is
reported as the highest value equivalent to the true one, so for every quantile ``q``::

    exact(q) <= percentile(q) <= exact(q) * (1 + 1/1024)          for 0 < q <= 100

where ``exact(q)`` is the nearest-rank value of the recorded data. As in HdrHistogram,
``max`` is the highest value equivalent to the largest recorded one and ``min`` (= the
0th percentile) the lowest value equivalent to the smallest, so the hot path records a
single counter. Values from 0 to ``2**44 - 1`` ns (~4.9 h) are tracked; larger values are
clamped to that ceiling.

Index of value ``v``: ``v`` itself below 2048; otherwise with ``s = v.bit_length() - 11``
it is ``(s << 10) + (v >> s)`` – contiguous, so merging is element-wise addition.

Histograms are merged, never averaged: :meth:`Histogram.merge` of per-process histograms
gives exactly the histogram of all values. :meth:`to_dict` / :meth:`from_dict` is a compact,
JSON-ready form (only non-empty buckets, delta-encoded indexes) for moving between
processes and for the results file.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from itertools import compress
from typing import Any

FORMAT = "hdr-log-linear-ns/1"
SUB_BUCKET_BITS = 11
_LINEAR = 1 << SUB_BUCKET_BITS  # 2048: values below are exact
_HALF_BITS = SUB_BUCKET_BITS - 1
MAX_SHIFT = 33
MAX_VALUE = (1 << (MAX_SHIFT + SUB_BUCKET_BITS)) - 1  # 2**44 - 1
SIZE = (MAX_SHIFT << _HALF_BITS) + _LINEAR
_INDEXES = range(SIZE)
_CHUNK = 1 << _HALF_BITS  # merge and scan 1024 buckets at a time, at C speed
_CHUNKS = range(0, SIZE, _CHUNK)
_ZERO_CHUNK = [0] * _CHUNK


def index_of(value: int) -> int:
    """Bucket index of *value* (0 <= value <= MAX_VALUE)."""
    if value < _LINEAR:
        return value
    shift = value.bit_length() - SUB_BUCKET_BITS
    return (shift << _HALF_BITS) + (value >> shift)


def lowest_equivalent(index: int) -> int:
    """Smallest value that maps to *index*."""
    if index < _LINEAR:
        return index
    shift = (index >> _HALF_BITS) - 1
    return (index - (shift << _HALF_BITS)) << shift


def highest_equivalent(index: int) -> int:
    """Largest value that maps to *index*."""
    if index < _LINEAR:
        return index
    shift = (index >> _HALF_BITS) - 1
    return lowest_equivalent(index) + (1 << shift) - 1


def _rank(q: float, total: int) -> int:
    """Nearest rank ``ceil(q/100 * total)``, at least 1, in decimal so 99.9 % is not 99.900…1."""
    return max(1, math.ceil(Decimal(repr(q)) * total / 100))


class Histogram:
    """Counts of values in log-linear buckets.

    :meth:`record` is the hot-path operation: one counter increment (~0.2 µs in CPython).
    """

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: list[int] = [0] * SIZE

    def record(self, value: int, times: int = 1) -> None:
        """Add *times* observations of *value* ns. Raises ValueError for negative values."""
        shift = value.bit_length() - SUB_BUCKET_BITS
        if shift > 0:  # the usual case for nanosecond latencies: no separate range check
            if shift > MAX_SHIFT:
                value = MAX_VALUE
                shift = MAX_SHIFT
            self.counts[(shift << _HALF_BITS) + (value >> shift)] += times
        elif value >= 0:
            self.counts[value] += times
        else:
            raise ValueError(f"negative value {value}")

    def record_many(self, values: Iterable[int]) -> None:
        """Record each of *values*."""
        record = self.record
        for value in values:
            record(value)

    @property
    def total(self) -> int:
        """Number of recorded values."""
        return sum(self.counts)

    @property
    def min(self) -> int:
        """Lowest value equivalent to the smallest recorded one (0 if empty)."""
        counts = self.counts
        for start in _CHUNKS:
            part = counts[start : start + _CHUNK]
            if any(part):
                return lowest_equivalent(start + next(i for i, n in enumerate(part) if n))
        return 0

    @property
    def max(self) -> int:
        """Highest value equivalent to the largest recorded one (0 if empty)."""
        counts = self.counts
        for start in reversed(_CHUNKS):
            part = counts[start : start + _CHUNK]
            if any(part):
                last = _CHUNK - 1 - next(i for i, n in enumerate(reversed(part)) if n)
                return highest_equivalent(start + last)
        return 0

    def _busy_chunks(self) -> list[int]:
        counts = self.counts
        return [start for start in _CHUNKS if any(counts[start : start + _CHUNK])]

    def merge(self, other: Histogram) -> None:
        """Add all of *other*'s observations to this histogram (in place)."""
        for _ in self.merge_steps(other):
            pass

    def merge_steps(self, other: Histogram) -> Iterator[None]:
        """:meth:`merge` in slices: yields after each 1024-bucket chunk.

        Each chunk is added at C speed (empty ones skipped), so a caller inside a
        latency-sensitive event loop can interleave the merge with its real work.
        """
        counts, theirs = self.counts, other.counts
        for start in _CHUNKS:
            stop = start + _CHUNK
            part = theirs[start:stop]
            if any(part):
                counts[start:stop] = map(operator.add, counts[start:stop], part)
            yield

    def reset(self) -> None:
        """Forget every observation (cheaper than a new histogram when mostly empty)."""
        for start in self._busy_chunks():
            self.counts[start : start + _CHUNK] = _ZERO_CHUNK

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        """A new histogram holding every observation of *histograms*."""
        out = cls()
        for histogram in histograms:
            out.merge(histogram)
        return out

    def percentile(self, q: float) -> int:
        """Nearest-rank value at percentile *q* (0–100), 0 if empty; see module docstring."""
        return self.percentiles((q,))[q]

    def percentiles(self, qs: Iterable[float]) -> dict[float, int]:
        """:meth:`percentile` for several quantiles in one pass over the buckets."""
        out: dict[float, int] = {}
        for _ in self.percentile_steps(qs, out):
            pass
        return out

    def percentile_steps(self, qs: Iterable[float], out: dict[float, int]) -> Iterator[None]:
        """:meth:`percentiles` in slices (yields after each chunk); fills *out* at the end."""
        wanted = sorted(set(qs))
        if any(not 0 <= q <= 100 for q in wanted):
            raise ValueError(f"percentiles {wanted} not all within 0..100")
        counts, sums = self.counts, []
        for start in _CHUNKS:
            sums.append(sum(counts[start : start + _CHUNK]))
            yield
        total = sum(sums)
        if total == 0:
            out.update(dict.fromkeys(wanted, 0))
            return
        ranks = [(q, _rank(q, total)) for q in wanted]
        running = pos = 0
        for start, chunk_total in zip(_CHUNKS, sums, strict=True):
            if running + chunk_total < ranks[pos][1]:
                running += chunk_total  # the next wanted rank lies beyond this chunk
                continue
            for index in compress(range(start, start + _CHUNK), counts[start : start + _CHUNK]):
                running += counts[index]
                while pos < len(ranks) and running >= ranks[pos][1]:
                    q = ranks[pos][0]
                    out[q] = lowest_equivalent(index) if q == 0 else highest_equivalent(index)
                    pos += 1
                if pos == len(ranks):
                    return
            yield
        raise AssertionError("ranks beyond the total count")

    def mean(self) -> float:
        """Mean of the recorded values, using each bucket's midpoint (0.0 if empty)."""
        total = self.total
        if total == 0:
            return 0.0
        acc, counts = 0, self.counts
        for index in compress(_INDEXES, counts):
            acc += counts[index] * (lowest_equivalent(index) + highest_equivalent(index))
        return acc / (2 * total)

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-ready form: non-empty buckets as ``[index_delta, count, …]``."""
        counts = self.counts
        indexes = list(compress(_INDEXES, counts))
        deltas = map(operator.sub, indexes, [0, *indexes[:-1]])
        pairs = [n for pair in zip(deltas, (counts[i] for i in indexes), strict=True) for n in pair]
        return {
            "format": FORMAT,
            "total": self.total,
            "min": self.min,  # informational: both follow from the buckets
            "max": self.max,
            "buckets": pairs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        """Inverse of :meth:`to_dict`; raises ValueError on an unknown format or bad data."""
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown histogram format {data.get('format')!r}")
        out = cls()
        pairs = data["buckets"]
        if len(pairs) % 2:
            raise ValueError("buckets must hold index/count pairs")
        index = 0
        for i in range(0, len(pairs), 2):
            index += pairs[i]
            out.counts[index] += pairs[i + 1]
        if out.total != data["total"]:
            raise ValueError("bucket counts do not add up to total")
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.counts == other.counts

    def __repr__(self) -> str:
        return f"Histogram(total={self.total}, min={self.min}, max={self.max})"
