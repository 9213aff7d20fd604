"""`bench plot`: the header says what was measured and whether to trust it; axes from zero."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench import cli, plot, results
from bench.args import Slo
from bench.runner import RunOutcome

MakeOutcome = Callable[..., RunOutcome]  # the make_outcome fixture (conftest.py)
SLOS = (Slo(99.0, 1000.0), Slo(99.9, 2000.0))


def _document(make_outcome: MakeOutcome, **kwargs: Any) -> dict[str, Any]:
    document = results.build(make_outcome(**kwargs), slos=SLOS)
    document["provenance"].update(
        bench_version="9.8.7", git_revision="0123456789abcdef", git_dirty=False
    )
    return document


def _text(head: plot.Header) -> str:
    return "\n".join([head.title, *head.reasons, *head.details])


def test_header_of_a_valid_run(make_outcome: MakeOutcome) -> None:
    head = plot.header(_document(make_outcome))
    assert head.status == "VALID" and head.reasons == ()
    assert head.title.startswith("VALID run — 400 responses, 0 oracle mismatches, 0 errors")
    text = _text(head)
    for setting in ("target http://127.0.0.1:1/v1/verify", "open-loop constant at 200 rps",
                    "2 s measured after 1 s warm-up", "16 connections"):  # fmt: skip
        assert setting in text
    assert "SLO p99 ≤ 1 ms: met (301 µs)  ·  p99.9 ≤ 2 ms: met (301 µs)" in text
    assert "code 9.8.7 (git 0123456789)" in text


def test_header_of_an_invalid_run_says_why_and_does_not_judge_the_slo(
    make_outcome: MakeOutcome,
) -> None:
    head = plot.header(_document(make_outcome, send_lag_us=500))
    assert head.status == "INVALID"
    assert head.title == "INVALID run — not a measurement at 200 rps"
    assert head.reasons[0].startswith("• generator fell behind: send-lag p99 500.")
    assert "SLO p99 ≤ 1 ms, p99.9 ≤ 2 ms: not judged (invalid run)" in _text(head)


def test_a_missed_slo_is_stressed_not_failed(make_outcome: MakeOutcome) -> None:
    head = plot.header(_document(make_outcome, latency_us=1500))
    assert head.status == "VALID"
    (stressed,) = (head.details[i] for i in head.stressed)
    assert stressed.startswith("SLO p99 ≤ 1 ms: missed (1.5 ms)")
    assert plot.header(_document(make_outcome)).stressed == frozenset()


def test_header_lines_are_wrapped(make_outcome: MakeOutcome) -> None:
    head = plot.header(_document(make_outcome, send_lag_us=500), width=40)
    assert max(len(line) for line in (*head.reasons, *head.details)) <= 40


@pytest.mark.parametrize(
    ("intended", "peaks", "top"),
    [
        (200.0, [200, 199, 201], 1.15 * 201),  # the peak sets the top: never zoomed to ±1 %
        (1000.0, [400, 420], 1.15 * 1000),  # far below target: the target stays in view
        (None, [5000], 1.15 * 5000),  # --max: no target, the peak
        (None, [], 1.15),  # nothing measured: still a positive axis
    ],
)  # fmt: skip
def test_throughput_axis_top(intended: float | None, peaks: list[int], top: float) -> None:
    doc = {"intended_rps": intended, "timeline": [{"completed": n} for n in peaks]}
    assert plot.throughput_top(doc) == pytest.approx(top)


def _rounded(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(round(x, 6), round(y, 6)) for x, y in points]


def test_slo_steps_follow_the_tightest_later_limit() -> None:
    slos = [{"percentile": 99.9, "limit_us": 2000.0}, {"percentile": 99.0, "limit_us": 1000.0}]
    assert _rounded(plot.slo_steps(slos, right=1000.0)) == [
        (1, 1000.0), (100, 1000.0), (100, 2000.0), (1000, 2000.0)
    ]  # fmt: skip
    # a looser p90 is held to the p99 limit left of p90; max sits at the right edge
    slos = [{"percentile": 90.0, "limit_us": 5000.0}, {"percentile": 99.0, "limit_us": 1000.0},
            {"percentile": 100.0, "limit_us": 9000.0}]  # fmt: skip
    assert _rounded(plot.slo_steps(slos, right=1000.0)) == [
        (1, 1000.0), (10, 1000.0), (10, 1000.0), (100, 1000.0), (100, 9000.0), (1000, 9000.0)
    ]  # fmt: skip


@pytest.mark.parametrize("send_lag_us", [5, 500])
def test_figure_axes_start_at_zero_and_carry_the_verdict(
    make_outcome: MakeOutcome, send_lag_us: int, tmp_path: Path
) -> None:
    import matplotlib.pyplot as plt

    document = _document(make_outcome, send_lag_us=send_lag_us)
    drawn = plot.figure(document)
    try:
        header, spectrum, rate, p99 = drawn.axes
        assert rate.get_ylim() == pytest.approx((0, 1.15 * 200))
        assert p99.get_ylim()[0] == 0 and p99.get_ylim()[1] >= 1000  # the SLO line in view
        texts = [t.get_text() for axes in drawn.axes for t in axes.texts]
        word = "VALID" if send_lag_us == 5 else "INVALID"
        assert any(t.startswith(f"{word} run") for t in texts)
        assert ("INVALID" in texts) is (word == "INVALID")  # marked across the panels
        assert any(t.startswith("target http://127.0.0.1:1/v1/verify") for t in texts)
        assert any(t.startswith("code 9.8.7 (git 0123456789)") for t in texts)
        assert "SLO" in [line.get_label() for line in spectrum.get_lines()]
    finally:
        plt.close(drawn)
    out = tmp_path / "run.png"
    plot.draw(document, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_plot_says_how_to_install_it(
    make_outcome: MakeOutcome,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.json"
    results.write(_document(make_outcome), path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    assert cli.main(["plot", str(path), "--out", str(tmp_path / "run.png")]) == 2
    assert "pip install 'insurance-qr-verifier[tools]'" in capsys.readouterr().err
    assert not (tmp_path / "run.png").exists()
