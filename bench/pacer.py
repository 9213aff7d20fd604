"""When should request *n* be sent? Pure open-loop schedules (no clocks, no I/O).

A pacer turns a target rate into *intended* send offsets in integer nanoseconds from the
start of the run. The engine compares them with the clock; latency is measured from the
intended time, so a slow server cannot slow the schedule down (no coordinated omission).

Two schedules, as in vegeta's ``pacer.go`` and wrk2:

* :class:`ConstantPacer`: request *n* at ``phase + n / rate`` (exact integer maths, no drift).
* :class:`PoissonPacer`: exponential gaps with mean ``1 / rate`` from a seeded RNG, so a run
  is reproducible; the superposition of independent Poisson shards is Poisson again.

Both support :meth:`offsets` (an iterator, what the engine uses) and :meth:`count_before`
(how many requests fall inside a window, for sizing and tests). ``ConstantPacer`` also offers
O(1) :meth:`ConstantPacer.intended_ns`.

With ``P`` processes each runs ``rate / P``; :func:`shard_pacer` staggers the constant
schedules by ``p / rate`` so their union is the single-process schedule (to within 1 ns).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

NS_PER_S = 1_000_000_000


class Pacer(Protocol):
    """A schedule of intended send offsets (ns since the start of the run)."""

    @property
    def rate(self) -> float:
        """Requests per second."""
        ...

    def offsets(self) -> Iterator[int]:
        """Yield the intended offset of request 0, 1, 2, … (non-decreasing, unbounded)."""
        ...

    def count_before(self, horizon_ns: int) -> int:
        """Number of requests whose intended offset is strictly before *horizon_ns*."""
        ...


def _check_rate(rate: float) -> None:
    if not rate > 0 or rate != rate or rate == float("inf"):
        raise ValueError(f"rate must be a positive finite number, got {rate!r}")


@dataclass(frozen=True)
class ConstantPacer:
    """Evenly spaced requests: ``intended_ns(n) = phase_ns + round(n * (1e9 / rate))``."""

    rate: float
    phase_ns: int = 0

    def __post_init__(self) -> None:
        _check_rate(self.rate)
        if self.phase_ns < 0:
            raise ValueError("phase_ns must be >= 0")

    def intended_ns(self, n: int) -> int:
        """Intended offset of request *n* (0-based), computed without accumulating error."""
        if n < 0:
            raise ValueError("n must be >= 0")
        return self.phase_ns + round(n * (NS_PER_S / self.rate))

    def offsets(self) -> Iterator[int]:
        # intended_ns(0), intended_ns(1), … built from C-level iterators: next() on this is
        # on the engine's hot path, and a Python generator costs several times as much.
        period = NS_PER_S / self.rate
        return map(self.phase_ns.__add__, map(round, map(period.__mul__, itertools.count())))

    def count_before(self, horizon_ns: int) -> int:
        if horizon_ns <= self.phase_ns:
            return 0
        # Smallest n with intended_ns(n) >= horizon, found from the float estimate and then
        # corrected, because rounding can move the boundary by one.
        n = max(0, int((horizon_ns - self.phase_ns) * self.rate / NS_PER_S) - 1)
        while self.intended_ns(n) < horizon_ns:
            n += 1
        while n > 0 and self.intended_ns(n - 1) >= horizon_ns:
            n -= 1
        return n


@dataclass(frozen=True)
class PoissonPacer:
    """Poisson arrivals: independent exponential gaps with mean ``1 / rate`` seconds.

    The same ``seed`` always yields the same schedule. Gaps accumulate in float
    nanoseconds (exact to far below 1 ns for any realistic run) and are rounded on output.
    """

    rate: float
    seed: int = 0
    phase_ns: int = 0

    def __post_init__(self) -> None:
        _check_rate(self.rate)
        if self.phase_ns < 0:
            raise ValueError("phase_ns must be >= 0")

    def offsets(self) -> Iterator[int]:
        rng = random.Random(self.seed)
        mean_gap_ns = NS_PER_S / self.rate
        at = float(self.phase_ns)
        while True:
            yield round(at)
            at += rng.expovariate(1.0) * mean_gap_ns

    def count_before(self, horizon_ns: int) -> int:
        n = 0
        for offset in self.offsets():
            if offset >= horizon_ns:
                return n
            n += 1
        raise AssertionError("unreachable: offsets() is unbounded")


def shard_pacer(
    rate: float, shard: int, shards: int, *, poisson: bool = False, seed: int = 0
) -> ConstantPacer | PoissonPacer:
    """The pacer for process *shard* of *shards* so the union of all shards runs at *rate*.

    Constant: each shard runs ``rate / shards`` shifted by ``shard / rate``, so shard *p*
    sends the global requests ``p, p + P, p + 2P, …`` of the single-process schedule
    (each within 1 ns, from rounding).
    Poisson: each shard gets an independent stream (seed derived from *seed* and *shard*).
    """
    _check_rate(rate)
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} out of range for {shards} shards")
    if poisson:
        return PoissonPacer(rate / shards, seed=seed * 1_000_003 + shard)
    return ConstantPacer(rate / shards, phase_ns=round(shard * NS_PER_S / rate))
