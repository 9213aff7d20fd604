"""`bench report`: aligned tables, and one verdict that comes last."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from bench import results
from bench.args import Slo
from bench.report import render, table, verdict, verdict_table
from bench.runner import RunOutcome

MakeOutcome = Callable[..., RunOutcome]  # the make_outcome fixture (conftest.py)


def _spans(line: str) -> list[tuple[int, int]]:
    """(start, end) of each run of non-blanks: the cells of a row whose cells hold no space."""
    return [m.span() for m in re.finditer(r"\S+", line)]


def _document(make_outcome: MakeOutcome, **kwargs: Any) -> dict[str, Any]:
    return results.build(make_outcome(**kwargs), slos=(Slo(99.0, 1000.0), Slo(99.9, 2000.0)))


def test_table_widens_a_column_to_its_longest_cell() -> None:
    lines = table(("name", "n"), [("a", "1"), ("coverage_terminated", "12345")], "lr")
    assert lines == [
        "name                     n",
        "a                        1",
        "coverage_terminated  12345",
    ]


def test_per_verdict_table_columns_line_up(make_outcome: MakeOutcome) -> None:
    lines = verdict_table(_document(make_outcome, mismatches=3))
    rows = [_spans(line) for line in lines]
    assert len(lines) == 4  # header + coverage_terminated, ok → ok, ok → replayed
    # expected and actual are left-aligned: every cell starts where its header starts
    for column in (0, 1):
        assert {row[column][0] for row in rows} == {rows[0][column][0]}
    # count, p50, p99 and max are right-aligned: every cell ends where its header ends
    for column in (2, 3, 4, 5):
        assert {row[column][1] for row in rows} == {rows[0][column][1]}
    mismatch = next(line for line in lines if "replayed" in line)
    assert mismatch.endswith("✗")
    assert not any(line.endswith("✗") for line in lines if "replayed" not in line)


def test_latency_table_columns_line_up(make_outcome: MakeOutcome) -> None:
    text = render(_document(make_outcome))
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == ["p50", "p90", "p99",
                                                                       "p99.9", "p99.99", "max"])  # fmt: skip
    block = lines[start : start + 4]  # header, latency, service time, send lag
    assert block[1].startswith("latency ") and block[2].startswith("service time ")
    ends = [[end for _, end in _spans(line)[-6:]] for line in block]
    assert all(row == ends[0] for row in ends)


@pytest.mark.parametrize(
    ("kwargs", "passed", "first_word", "says"),
    [
        ({}, True, "VALID", "SLO p99 ≤ 1 ms met"),  # clean run inside the SLO
        ({"latency_us": 1500}, True, "VALID", "p99 ≤ 1 ms missed"),  # SLO missed: said, not failed
        ({"mismatches": 3}, False, "FAILED", "3 oracle mismatches"),  # service answered wrongly
        ({"send_lag_us": 500}, False, "INVALID", "generator fell behind"),  # not a measurement
    ],
)  # fmt: skip
def test_verdict(
    make_outcome: MakeOutcome, kwargs: dict[str, Any], passed: bool, first_word: str, says: str
) -> None:
    ok, line = verdict(_document(make_outcome, **kwargs))
    assert ok is passed
    assert line.split(":")[0] == first_word
    assert says in line


def test_an_invalid_run_says_so_last_and_only_once(make_outcome: MakeOutcome) -> None:
    lines = render(_document(make_outcome, send_lag_us=500)).splitlines()
    assert lines[-1].startswith("INVALID: generator fell behind")
    assert "SLO not judged" in lines[-1]
    assert [line for line in lines if re.match(r"(OK|VALID|INVALID|FAILED)\b", line)] == [lines[-1]]
    assert "not judged" in next(line for line in lines if line.startswith("p99 ≤ 1 ms"))


def test_report_names_the_code_version(make_outcome: MakeOutcome) -> None:
    document = _document(make_outcome)
    document["provenance"].update(bench_version="9.8.7", git_revision="0123456789abcdef")
    document["provenance"]["git_dirty"] = False
    assert "code 9.8.7 (git 0123456789)" in render(document).splitlines()


def test_an_older_document_without_slos_still_renders(make_outcome: MakeOutcome) -> None:
    document = _document(make_outcome)
    del document["slos"]
    assert render(document).splitlines()[-1].endswith("SLO none given.")
