"""The pacer: when request n is intended to go out. Pure, so exact."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.pacer import NS_PER_S, ConstantPacer, PoissonPacer, shard_pacer


@pytest.mark.parametrize(
    ("rate", "phase", "n", "expected"),
    [
        (1000.0, 0, 0, 0),  # the first request goes at the start
        (1000.0, 0, 1, 1_000_000),  # 1 ms apart at 1000 rps
        (1000.0, 0, 1000, NS_PER_S),  # request 1000 exactly one second in
        (3.0, 0, 1, 333_333_333),  # 1/3 s rounds down
        (3.0, 0, 2, 666_666_667),  # 2/3 s rounds up
        (3.0, 0, 3, NS_PER_S),  # no drift: three thirds make a second
        (1000.0, 250, 1, 1_000_250),  # a phase shifts every request
        (0.5, 0, 1, 2 * NS_PER_S),  # slower than 1 rps
    ],
)
def test_constant_intended_times(rate: float, phase: int, n: int, expected: int) -> None:
    assert ConstantPacer(rate, phase).intended_ns(n) == expected


def test_constant_offsets_match_intended_ns() -> None:
    pacer = ConstantPacer(30_000.0, phase_ns=17)
    offsets = list(itertools.islice(pacer.offsets(), 100_000))
    assert offsets == [pacer.intended_ns(n) for n in range(100_000)]


def test_constant_has_no_drift_over_a_long_run() -> None:
    pacer = ConstantPacer(7_919.0)  # a period that is not a whole number of ns
    n = 7_919 * 3600  # one hour of requests
    assert pacer.intended_ns(n) == 3600 * NS_PER_S


@pytest.mark.parametrize(
    ("horizon", "expected"),
    [
        (0, 0),  # nothing is before the start
        (1, 1),  # request 0 (at 0) is before 1 ns
        (1_000_000, 1),  # request 1 is *at* 1 ms, so not strictly before it
        (1_000_001, 2),  # one ns later it is
        (NS_PER_S, 1000),  # a second at 1000 rps holds exactly 1000 requests
    ],
)
def test_constant_count_before(horizon: int, expected: int) -> None:
    assert ConstantPacer(1000.0).count_before(horizon) == expected


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf])
def test_rejects_bad_rates(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        ConstantPacer(rate)
    with pytest.raises(ValueError, match="rate"):
        PoissonPacer(rate)


def test_poisson_is_reproducible_and_seed_dependent() -> None:
    first = list(itertools.islice(PoissonPacer(1000.0, seed=7).offsets(), 1000))
    again = list(itertools.islice(PoissonPacer(1000.0, seed=7).offsets(), 1000))
    other = list(itertools.islice(PoissonPacer(1000.0, seed=8).offsets(), 1000))
    assert first == again
    assert first != other
    assert first == sorted(first)


def test_poisson_mean_gap_is_one_over_rate() -> None:
    n = 50_000
    offsets = list(itertools.islice(PoissonPacer(10_000.0, seed=1).offsets(), n + 1))
    mean_gap = offsets[-1] / n
    # Exponential gaps: the standard error of the mean is mean/sqrt(n) (~0.45 % here).
    assert mean_gap == pytest.approx(100_000, rel=0.03)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    below_mean = sum(g < 100_000 for g in gaps) / n
    assert below_mean == pytest.approx(1 - math.exp(-1), abs=0.01)  # P(gap < mean) = 1 - 1/e


def test_poisson_count_before_agrees_with_offsets() -> None:
    pacer = PoissonPacer(2000.0, seed=3)
    offsets = list(itertools.islice(pacer.offsets(), 5000))
    horizon = offsets[1234]
    assert pacer.count_before(horizon) == sum(o < horizon for o in offsets)


def test_constant_shards_interleave_into_the_single_schedule() -> None:
    rate, shards = 10_000.0, 3
    single = ConstantPacer(rate)
    union = []
    for shard in range(shards):
        pacer = shard_pacer(rate, shard, shards)
        union += [(o, shard) for o in itertools.islice(pacer.offsets(), 1000)]
    union.sort()
    for n, (offset, shard) in enumerate(union):
        assert shard == n % shards  # shard p sends global requests p, p + P, …
        assert abs(offset - single.intended_ns(n)) <= 1  # within rounding


def test_poisson_shards_are_independent_streams() -> None:
    a = shard_pacer(1000.0, 0, 2, poisson=True, seed=5)
    b = shard_pacer(1000.0, 1, 2, poisson=True, seed=5)
    assert isinstance(a, PoissonPacer) and isinstance(b, PoissonPacer)
    assert a.rate == b.rate == 500.0
    assert a.seed != b.seed


def test_shard_out_of_range() -> None:
    with pytest.raises(ValueError, match="shard"):
        shard_pacer(100.0, 2, 2)


@given(
    rate=st.floats(min_value=0.01, max_value=5e6, allow_nan=False),
    n=st.integers(min_value=0, max_value=10**9),
)
def test_constant_is_monotonic_and_within_a_nanosecond(rate: float, n: int) -> None:
    pacer = ConstantPacer(rate)
    assert pacer.intended_ns(n + 1) >= pacer.intended_ns(n)
    exact = n * NS_PER_S / rate
    assert abs(pacer.intended_ns(n) - exact) <= max(1.0, exact * 1e-15)
