"""``find-max``: the search, driven by a fake that plays a service with known capacity."""

from __future__ import annotations

from typing import Any

import pytest

from bench.args import Slo
from bench.findmax import find_max, judge
from bench.histogram import Histogram


def fake_run(capacity: float, *, errors_above: float | None = None) -> Any:
    """A service whose p99 is 200 µs up to *capacity* rps and 50 ms beyond it."""
    calls: list[float] = []

    def run_at(rate: float) -> dict[str, Any]:
        calls.append(rate)
        latency = Histogram()
        latency.record_many([200_000 if rate <= capacity else 50_000_000] * 100)
        errors = 1 if errors_above is not None and rate > errors_above else 0
        return {
            "valid": True,
            "invalid_reasons": [],
            "requests": {"errors": errors, "mismatches": 0},
            "achieved_rps": rate,
            "latency_us": {"p99": latency.percentile(99) / 1000},
            "histograms": {"latency": latency.to_dict()},
        }

    run_at.calls = calls  # type: ignore[attr-defined]
    return run_at


P99_1MS = (Slo(99.0, 1000.0),)


@pytest.mark.parametrize("capacity", [1_000.0, 7_300.0, 15_000.0, 123_456.0])
def test_finds_the_capacity_within_resolution(capacity: float) -> None:
    found = find_max(fake_run(capacity), P99_1MS, start_rate=1000, max_rate=10**6, resolution=0.02)
    assert found.best_rate is not None
    assert capacity * 0.98 <= found.best_rate <= capacity
    assert all(t.passed == (t.rate <= capacity) for t in found.trials)


def test_start_rate_too_high_searches_downwards() -> None:
    found = find_max(fake_run(300.0), P99_1MS, start_rate=1000, max_rate=10**6, resolution=0.05)
    assert found.best_rate is not None and 285 <= found.best_rate <= 300
    assert not found.trials[0].passed


def test_max_rate_caps_the_search() -> None:
    run_at = fake_run(10**9)
    found = find_max(run_at, P99_1MS, start_rate=1000, max_rate=5000)
    assert found.best_rate == 5000
    assert run_at.calls == [1000, 2000, 4000, 5000]


def test_trials_are_bounded() -> None:
    run_at = fake_run(5_000.0)
    found = find_max(run_at, P99_1MS, start_rate=1, max_rate=10**9, resolution=0.0, max_trials=6)
    assert len(found.trials) == len(run_at.calls) == 6


def test_errors_fail_a_trial_even_within_the_slo() -> None:
    found = find_max(fake_run(10_000.0, errors_above=3_000), P99_1MS, 1000, 10**6, 0.02)
    assert found.best_rate is not None and found.best_rate <= 3_000
    assert any("errors" in t.why for t in found.trials if not t.passed)


def test_nothing_passes() -> None:
    found = find_max(fake_run(0.5), P99_1MS, start_rate=1000, max_rate=10**6, max_trials=5)
    assert found.best_rate is None


def test_judge_reads_the_histogram_and_validity() -> None:
    passing = fake_run(10.0)(5.0)
    assert judge(passing, P99_1MS) == (True, "")
    assert judge(passing, (Slo(99.0, 100.0),))[0] is False  # 200 µs > 100 µs
    invalid = {**passing, "valid": False, "invalid_reasons": ["generator fell behind"]}
    assert judge(invalid, P99_1MS) == (False, "invalid run: generator fell behind")


def test_find_max_refuses_several_processes(tmp_path, capsys):
    """Regression: trial slices split across processes broke the corpus's replay placement,
    so the oracle reported ok/replayed mismatches that were the bench's own fault."""
    from dataclasses import replace as _replace

    from bench import findmax, runner

    settings = runner.RunSettings(
        target="http://127.0.0.1:9/v1/verify", credential="c", rate=100.0, duration_s=1.0,
        connections=4, processes=2,
    )  # fmt: skip
    options = findmax.FindMaxOptions(
        settings=_replace(settings), corpus=tmp_path, slos=(), start_rate=100.0,
        max_rate=200.0, resolution=0.05, max_trials=2, out=None,
    )  # fmt: skip
    assert findmax.run_find_max(options) == 2
    assert "--processes 1" in capsys.readouterr().err
