"""What the journal keeps of the centre's reconcile results (verifier.sidecar.reconcile)."""

from __future__ import annotations

import pytest

from verifier.sidecar.journal_types import PENDING, Entry
from verifier.sidecar.reconcile import outcomes


def row(n: int) -> Entry:
    return Entry(
        n, f"h-{n}", f"n-{n}", "v4.public.x", f"r-{n}", "s-1", 0, None, None, PENDING, "", 0
    )


def test_a_confirmation_keeps_the_coverage_and_how_the_bill_was_split() -> None:
    settlement = {
        "service": "inpatient",
        "amount": "100.00",
        "fund": "80.00",
        "personal_account": "12.00",
        "out_of_pocket": "8.00",
    }
    doc = {
        "results": [
            {"outcome": "confirmed", "verdict": {"reason": "ok", "settlement": settlement}},
            {"outcome": "confirmed", "verdict": {"reason": "coverage_suspended"}},
            {"outcome": "rejected", "reason": "expired"},
            {"outcome": "conflict"},
            {"outcome": "later"},  # not final: the row stays pending
        ]
    }
    got = [(o.id, o.state, o.detail) for o in outcomes([row(n) for n in range(5)], doc)]
    assert got == [
        (0, "confirmed", "ok; fund 80.00, personal account 12.00, out of pocket 8.00"),
        (1, "confirmed", "coverage_suspended"),
        (2, "rejected", "expired"),
        (3, "conflict", ""),
    ]


def test_an_answer_that_is_not_one_result_per_row_is_refused() -> None:
    with pytest.raises(ValueError):
        outcomes([row(0), row(1)], {"results": [{"outcome": "confirmed"}]})
