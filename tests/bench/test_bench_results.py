"""The results document: validity rules, figures, provenance, file round trip; shard merge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import results
from bench.args import Slo
from bench.histogram import Histogram
from bench.runner import RunOutcome, RunSettings
from bench.shard import SecondStats, ShardResult, merge, worst_of


def shard(lags_us: list[int], completed: int = 1000, window_s: float = 1.0) -> ShardResult:
    r = ShardResult(
        sent=completed, completed=completed, window_s=window_s, cpu_user_s=0.006, cpu_system_s=0.004
    )
    for i in range(completed):
        r.latency.record(100_000 + i)
        r.service.record(90_000 + i)
    for lag in lags_us:
        r.send_lag.record(lag * 1000)
    r.verdicts[("ok", "ok")] = Histogram.merged([r.latency])
    second = SecondStats(0, completed, 0, 0, Histogram.merged([r.latency]))
    second.summarise()
    r.seconds.append(second)
    return r


def outcome(r: ShardResult, rate: float | None = 1000.0) -> RunOutcome:
    s = RunSettings("http://127.0.0.1:1/v1/verify", "c", rate, 1.0, 8)
    return RunOutcome(s, r, {"synthetic": True}, 1_700_000_000.0)


@pytest.mark.parametrize(
    ("lags_us", "valid"),
    [
        ([5] * 1000, True),  # microsecond pacing
        ([5] * 990 + [500] * 10, True),  # 1 % late: p99 is still 5 µs
        ([5] * 980 + [500] * 20, False),  # 2 % late: p99 is 500 µs
        ([99] * 1000, True),  # just under the limit (values carry 0.1 % precision)
        ([101] * 1000, False),  # just over
    ],
)
def test_send_lag_p99_limit(lags_us: list[int], valid: bool) -> None:
    document = results.build(outcome(shard(lags_us)))
    assert document["valid"] is valid
    if not valid:
        assert "generator fell behind" in document["invalid_reasons"][0]


def test_unsent_requests_invalidate() -> None:
    r = shard([5] * 1000)
    r.not_sent = 3
    assert any("could not be sent" in why for why in results.validity(outcome(r)))


def test_a_lower_achieved_rate_is_not_reported_quietly() -> None:
    r = shard([5] * 900, completed=900)  # 900 rps against 1000 intended
    assert any("below the intended" in why for why in results.validity(outcome(r)))


def test_closed_loop_has_no_schedule_to_fall_behind() -> None:
    r = shard([], completed=1000)
    document = results.build(outcome(r, rate=None))
    assert document["valid"] and document["mode"] == "closed-loop max"
    assert document["intended_rps"] is None
    assert document["send_lag_us"]["count"] == 0


def test_document_figures_and_provenance() -> None:
    document = results.build(outcome(shard([5] * 1000)))
    assert document["schema"] == "qr-bench-results" and document["schema_version"] == 1
    assert document["achieved_rps"] == 1000.0
    lat = document["latency_us"]
    assert set(lat) == {"count", "min", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"}
    assert lat["min"] == pytest.approx(100.0, rel=1e-3)
    assert lat["max"] == pytest.approx(100.999, rel=1e-3)
    assert document["verdicts"][0]["expected"] == document["verdicts"][0]["actual"] == "ok"
    assert document["timeline"][0]["completed"] == 1000
    assert document["generator"]["cpu_us_per_request"] == 10.0
    assert document["settings"]["connections"] == 8
    prov = document["provenance"]
    assert {"git_revision", "python", "packages", "cpu", "started_at"} <= set(prov)
    assert {"bench_version", "git_dirty"} <= set(prov)
    assert document["slos"] == []  # none asked for
    assert "aiohttp" in prov["packages"]
    again = Histogram.from_dict(document["histograms"]["latency"])
    assert again.total == 1000


@pytest.mark.parametrize(
    ("slo", "met"),
    [
        (Slo(99.0, 101.0), True),  # p99 of 100.000 … 100.999 µs is about 100.99 µs: inside
        (Slo(99.0, 100.0), False),  # just under the observed p99
        (Slo(50.0, 101.0), True),  # p50 is about 100.5 µs
        (Slo(100.0, 100.0), False),  # max = 100.999 µs
    ],
)
def test_slo_checks(slo: Slo, met: bool) -> None:
    (check,) = results.build(outcome(shard([5] * 1000)), slos=(slo,))["slos"]
    assert check["met"] is met
    assert check["objective"] == str(slo) and check["limit_us"] == slo.limit_us
    assert (check["observed_us"] <= slo.limit_us) is met


def test_slos_are_listed_by_percentile_and_an_empty_run_meets_none() -> None:
    slos = (Slo(99.9, 2000.0), Slo(99.0, 1000.0))
    checks = results.build(outcome(shard([5] * 1000)), slos=slos)["slos"]
    assert [c["percentile"] for c in checks] == [99.0, 99.9]
    empty = results.slo_checks(Histogram(), slos)
    assert [(c["observed_us"], c["met"]) for c in empty] == [(None, False), (None, False)]


@pytest.mark.parametrize(
    ("prov", "text"),
    [
        ({"bench_version": "0.1.0", "git_revision": "0123456789abcdef", "git_dirty": False},
         "0.1.0 (git 0123456789)"),  # a clean checkout
        ({"bench_version": "0.1.0", "git_revision": "0123456789abcdef", "git_dirty": True},
         "0.1.0 (git 0123456789, uncommitted changes)"),  # modified files: said
        ({"bench_version": "0.1.0", "git_revision": None, "git_dirty": None},
         "0.1.0"),  # an installed wheel: no git
        ({"git_revision": "0123456789abcdef"},
         "version unknown (git 0123456789)"),  # a document from before the version was kept
    ],
)  # fmt: skip
def test_code_version(prov: dict[str, Any], text: str) -> None:
    assert results.code_version(prov) == text


def test_write_and_load(tmp_path: Path) -> None:
    document = results.build(outcome(shard([5] * 1000)))
    path = tmp_path / "run.json"
    results.write(document, path)
    assert results.load(path) == json.loads(json.dumps(document))


@pytest.mark.parametrize(
    "content",
    ["not json", '{"schema": "other"}', '{"schema": "qr-bench-results", "schema_version": 9}'],
)
def test_load_refuses_other_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(results.ResultsError):
        results.load(path)


def test_merge_adds_up_shards() -> None:
    a, b = shard([5] * 100, completed=100), shard([7] * 300, completed=300, window_s=1.5)
    a.mismatch_examples = [{"index": i} for i in range(4)]
    b.mismatch_examples = [{"index": 100 + i} for i in range(4)]
    b.corpus_exhausted = True
    merged = merge([a, b])
    assert merged.completed == 400 and merged.sent == 400
    assert merged.latency == Histogram.merged([a.latency, b.latency])
    assert merged.send_lag.total == 400
    assert merged.verdicts[("ok", "ok")].total == 400
    assert merged.window_s == 1.5 and merged.corpus_exhausted
    assert [e["index"] for e in merged.mismatch_examples] == [0, 1, 2, 3, 100]
    assert merged.seconds[0].completed == 400
    assert merged.seconds[0].p99_ns == merged.seconds[0].latency.percentile(99)


def test_shard_result_round_trip() -> None:
    r = shard([5, 6, 7])
    again = ShardResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.to_dict() == r.to_dict()


def test_progress_across_processes_reports_the_worst() -> None:
    parts = [SecondStats(3, 10, 1, 0, p50_ns=5, p99_ns=50, max_ns=70),
             SecondStats(3, 20, 0, 2, p50_ns=7, p99_ns=40, max_ns=90)]  # fmt: skip
    combined = worst_of(parts)
    assert (combined.completed, combined.errors, combined.mismatches) == (30, 1, 2)
    assert (combined.p50_ns, combined.p99_ns, combined.max_ns) == (7, 50, 90)
    assert combined.processes == 2
