"""The HDR-style histogram: bucket maths, percentiles within 0.1 %, merge, round-trip."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.histogram import (
    MAX_VALUE,
    Histogram,
    highest_equivalent,
    index_of,
    lowest_equivalent,
)

values = st.integers(min_value=0, max_value=10**12)


def exact_percentile(data: list[int], q: float) -> int:
    """Nearest rank: the smallest value with at least q % of the data at or below it."""
    ordered = sorted(data)
    rank = max(1, math.ceil(q / 100 * len(ordered) - 1e-9))
    return ordered[rank - 1]


@pytest.mark.parametrize(
    ("value", "lowest", "highest"),
    [
        (0, 0, 0),  # zero is its own bucket
        (2047, 2047, 2047),  # the last exact value
        (2048, 2048, 2049),  # first log bucket: width 2
        (2049, 2048, 2049),  # same bucket as 2048
        (4095, 4094, 4095),  # top of the width-2 range
        (4096, 4096, 4099),  # width 4 from here
        (1_000_000, 999_936, 1_000_447),  # 1 ms: width 512 ns (0.05 %)
        (MAX_VALUE, MAX_VALUE - (1 << 33) + 1, MAX_VALUE),  # the ceiling
    ],
)
def test_bucket_bounds(value: int, lowest: int, highest: int) -> None:
    index = index_of(value)
    assert lowest_equivalent(index) == lowest
    assert highest_equivalent(index) == highest
    assert (highest - lowest + 1) <= max(1, value / 1024)  # 3 significant digits


def test_indexes_are_contiguous() -> None:
    previous = -1
    for value in range(0, 1 << 16):
        index = index_of(value)
        assert index in (previous, previous + 1)
        previous = index


def test_uniform_distribution_percentiles_within_precision() -> None:
    histogram = Histogram()
    histogram.record_many(range(1, 1_000_001))  # 1 ns … 1 ms, once each
    assert histogram.total == 1_000_000
    assert histogram.min == 1
    assert 1_000_000 <= histogram.max <= 1_000_000 * (1 + 1 / 1024)  # HdrHistogram's max
    for q in (50, 90, 99, 99.9, 99.99):
        expected = round(q * 10_000)  # the nearest-rank value of 1..1e6
        got = histogram.percentile(q)
        assert expected <= got <= expected * (1 + 1 / 1024), q
    assert histogram.percentile(0) == 1
    assert histogram.percentile(100) == histogram.max
    assert histogram.mean() == pytest.approx(500_000.5, rel=1e-3)


def test_spikes() -> None:
    histogram = Histogram()
    for _ in range(9900):
        histogram.record(100_000)  # 100 µs
    for _ in range(99):
        histogram.record(50_000_000)  # 50 ms
    histogram.record(2_000_000_000)  # one 2 s outlier
    assert histogram.percentile(50) == pytest.approx(100_000, rel=1e-3)
    assert histogram.percentile(99) == pytest.approx(100_000, rel=1e-3)  # rank 9900
    assert histogram.percentile(99.01) == pytest.approx(50_000_000, rel=1e-3)
    assert histogram.percentile(99.99) == pytest.approx(50_000_000, rel=1e-3)
    assert histogram.percentile(100) == histogram.max
    assert histogram.max == pytest.approx(2_000_000_000, rel=1e-3)


def test_empty() -> None:
    histogram = Histogram()
    assert histogram.total == 0
    assert histogram.percentile(99) == 0
    assert histogram.mean() == 0.0
    assert Histogram.from_dict(histogram.to_dict()) == histogram


def test_rejects_negative_and_clamps_huge_values() -> None:
    histogram = Histogram()
    with pytest.raises(ValueError, match="negative"):
        histogram.record(-1)
    histogram.record(MAX_VALUE * 10)
    assert histogram.max == MAX_VALUE
    assert histogram.percentile(100) == MAX_VALUE


def test_bad_percentile() -> None:
    with pytest.raises(ValueError):
        Histogram().percentile(100.1)


def test_from_dict_rejects_foreign_or_corrupt_data() -> None:
    good = Histogram()
    good.record(5)
    data = good.to_dict()
    with pytest.raises(ValueError, match="format"):
        Histogram.from_dict({**data, "format": "other"})
    with pytest.raises(ValueError, match="total"):
        Histogram.from_dict({**data, "total": 2})
    with pytest.raises(ValueError, match="pairs"):
        Histogram.from_dict({**data, "buckets": [1]})


def test_reset_forgets_everything() -> None:
    histogram = Histogram()
    histogram.record_many([1, 10**6, 10**9])
    histogram.reset()
    assert histogram == Histogram()


def test_compact_form_is_small_and_json() -> None:
    histogram = Histogram()
    rng = random.Random(4)
    histogram.record_many(rng.randint(50_000, 150_000) for _ in range(100_000))
    text = json.dumps(histogram.to_dict())
    assert len(text) < 20_000  # ~200 non-empty buckets, not 35 840 counters
    assert Histogram.from_dict(json.loads(text)) == histogram


@settings(max_examples=200, deadline=None)
@given(data=st.lists(values, min_size=1, max_size=300), q=st.floats(0, 100))
def test_percentile_is_exact_within_bucket_precision(data: list[int], q: float) -> None:
    histogram = Histogram()
    histogram.record_many(data)
    exact = exact_percentile(data, q)
    got = histogram.percentile(q)
    if q == 0:  # the minimum is reported as its bucket's lowest value
        assert got <= exact <= got + got / 1024
    else:
        assert exact <= got <= exact + exact / 1024


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.lists(values, max_size=100), min_size=1, max_size=5))
def test_merge_equals_recording_everything_into_one(parts: list[list[int]]) -> None:
    separate = []
    for part in parts:
        histogram = Histogram()
        histogram.record_many(part)
        separate.append(histogram)
    together = Histogram()
    together.record_many(v for part in parts for v in part)
    assert Histogram.merged(separate) == together
    assert Histogram.merged(separate).max == together.max
    stepwise = Histogram()
    for histogram in separate:
        for _ in stepwise.merge_steps(histogram):
            pass
    assert stepwise == together


@settings(max_examples=100, deadline=None)
@given(data=st.lists(values, max_size=300))
def test_serialisation_round_trip(data: list[int]) -> None:
    histogram = Histogram()
    histogram.record_many(data)
    again = Histogram.from_dict(json.loads(json.dumps(histogram.to_dict())))
    assert again == histogram
    assert again.total == len(data)


@settings(max_examples=50, deadline=None)
@given(data=st.lists(values, min_size=1, max_size=200))
def test_percentiles_agrees_with_percentile(data: list[int]) -> None:
    histogram = Histogram()
    histogram.record_many(data)
    qs = (0, 50, 90, 99, 99.9, 99.99, 100)
    assert histogram.percentiles(qs) == {q: histogram.percentile(q) for q in qs}


def test_record_with_a_count_is_that_many_records() -> None:
    once, many = Histogram(), Histogram()
    for value in (0, 2047, 2048, 123_456, 7_000_000_000, MAX_VALUE + 5):
        for _ in range(3):
            once.record(value)
        many.record(value, 3)
    assert many.counts == once.counts
    assert many.total == 18
