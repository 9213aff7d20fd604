"""Fixtures for the bench tests: made-up run outcomes, so verdicts need no real load."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.histogram import Histogram
from bench.runner import RunOutcome, RunSettings
from bench.shard import SecondStats, ShardResult


def _outcome(
    *, send_lag_us: int = 5, completed: int = 400, mismatches: int = 0, latency_us: int = 300
) -> RunOutcome:
    """A run at 200 rps for 2 s: valid with the defaults; a send lag over 100 µs makes it
    INVALID (the generator fell behind), *mismatches* answers differ from the oracle."""
    r = ShardResult(sent=completed, completed=completed, window_s=2.0, mismatches=mismatches)
    for i in range(completed):
        r.latency.record(latency_us * 1000 + i)
        r.service.record(latency_us * 1000 - 10_000 + i)
        r.send_lag.record(send_lag_us * 1000)
    r.verdicts[("ok", "ok")] = Histogram.merged([r.latency])
    r.verdicts[("coverage_terminated", "coverage_terminated")] = Histogram.merged([r.latency])
    if mismatches:
        r.verdicts[("ok", "replayed")] = Histogram.merged([r.latency])
    for second in range(2):
        stats = SecondStats(second, completed // 2, 0, 0, Histogram.merged([r.latency]))
        stats.summarise()
        r.seconds.append(stats)
    settings = RunSettings("http://127.0.0.1:1/v1/verify", "c", 200.0, 2.0, 16, warmup_s=1.0)
    return RunOutcome(settings, r, {"synthetic": True}, 1_700_000_000.0)


@pytest.fixture
def make_outcome() -> Callable[..., RunOutcome]:
    """``make_outcome(send_lag_us=…, completed=…, mismatches=…, latency_us=…)``."""
    return _outcome
