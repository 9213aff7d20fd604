"""``bench compare``: regression gate on p99 and achieved_rps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.compare import compare, render


def doc(rps: float, p99: float, valid: bool = True, p50: float = 50.0) -> dict[str, Any]:
    return {
        "schema": "qr-bench-results",
        "schema_version": 1,
        "valid": valid,
        "invalid_reasons": [] if valid else ["generator fell behind"],
        "achieved_rps": rps,
        "latency_us": {"p50": p50, "p99": p99, "p99.9": p99 * 2},
    }


@pytest.mark.parametrize(
    ("new", "passes"),
    [
        (doc(10_000, 500), True),  # identical
        (doc(10_500, 400), True),  # better on both
        (doc(9_100, 500), True),  # 9 % fewer rps: inside 10 %
        (doc(8_900, 500), False),  # 11 % fewer rps
        (doc(10_000, 549), True),  # p99 +9.8 %
        (doc(10_000, 551), False),  # p99 +10.2 %
        (doc(10_000, 500, p50=500), True),  # p50 is shown but does not gate
        (doc(10_000, 500, valid=False), False),  # an invalid run never passes
    ],
)
def test_gate(new: dict[str, Any], passes: bool) -> None:
    comparison = compare(doc(10_000, 500), new, max_regression=0.10)
    assert (not comparison.failures) is passes
    assert ("PASS" in render(comparison)) is passes


def test_rows_report_relative_change() -> None:
    comparison = compare(doc(10_000, 500), doc(8_000, 750), 0.10)
    rows = {row.label: row for row in comparison.rows}
    assert rows["achieved_rps"].change == pytest.approx(-0.2)
    assert rows["latency p99 µs"].change == pytest.approx(0.5)
    assert rows["latency p99 µs"].regressed and rows["achieved_rps"].regressed


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(tmp_path / "base.json", doc(10_000, 500))
    same = write(tmp_path / "same.json", doc(10_000, 510))
    worse = write(tmp_path / "worse.json", doc(10_000, 700))
    assert main(["compare", str(base), str(same)]) == 0
    assert main(["compare", str(base), str(worse)]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert main(["compare", str(base), str(worse), "--max-regression", "50%"]) == 0
    assert main(["compare", str(base), str(tmp_path / "missing.json")]) == 2
