"""The offline budget: a pure decision over the holder's journalled uses and ``now``."""

from __future__ import annotations

import pytest

from verifier.errors import ConfigError
from verifier.sidecar.budget import (
    AMOUNT,
    COUNT,
    BudgetDecision,
    OfflineBudget,
    Use,
    parse_amount,
)

H = 3_600_000  # one hour in ms
NOW = 1_800_000_000_000
B = OfflineBudget(max_count=2, window_ms=24 * H, max_amount=50_000)


@pytest.mark.parametrize(
    "uses, amount, expected",
    [
        # nothing used yet: allowed, with or without an amount
        ([], None, BudgetDecision(True, None, 0, 0)),
        ([], 50_000, BudgetDecision(True, None, 0, 0)),  # exactly the amount limit
        ([], 50_001, BudgetDecision(False, AMOUNT, 0, 0)),  # one fen over, on its own
        # one use in the window: the second is allowed, up to the remaining amount
        ([Use(NOW - H, 30_000)], 20_000, BudgetDecision(True, None, 1, 30_000)),
        ([Use(NOW - H, 30_000)], 20_001, BudgetDecision(False, AMOUNT, 1, 30_000)),
        ([Use(NOW - H, None)], None, BudgetDecision(True, None, 1, 0)),  # no amount: 0 fen
        # two uses: the count is spent, whatever the amount
        ([Use(NOW - H, None), Use(NOW - 1, None)], None, BudgetDecision(False, COUNT, 2, 0)),
        # count is reported before amount when both are spent
        (
            [Use(NOW - H, 25_000), Use(NOW - H, 25_000)],
            1,
            BudgetDecision(False, COUNT, 2, 50_000),
        ),
        # a use exactly one window old has just left the window
        ([Use(NOW - 24 * H, 50_000), Use(NOW - 1, 0)], 50_000, BudgetDecision(True, None, 1, 0)),
        # one millisecond younger, it still counts
        (
            [Use(NOW - 24 * H + 1, 50_000), Use(NOW - 1, 0)],
            None,
            BudgetDecision(False, COUNT, 2, 50_000),
        ),
        # a use stamped in the future (clock set back) counts
        ([Use(NOW + H, 50_000)], 1, BudgetDecision(False, AMOUNT, 1, 50_000)),
        # old uses do not count at all
        ([Use(NOW - 48 * H, 50_000)] * 5, 50_000, BudgetDecision(True, None, 0, 0)),
    ],
)
def test_decide(uses: list[Use], amount: int | None, expected: BudgetDecision) -> None:
    assert B.decide(uses, amount, NOW) == expected


def test_defaults_match_the_documented_settings() -> None:
    # VERIFIER_OFFLINE_LIMIT=2, VERIFIER_OFFLINE_WINDOW=24h, VERIFIER_OFFLINE_MAX_AMOUNT=500.00
    assert OfflineBudget() == OfflineBudget(2, 24 * H, 50_000)


def test_a_zero_count_budget_refuses_everything() -> None:
    assert OfflineBudget(max_count=0).decide([], None, NOW).exceeded == COUNT


def test_decide_accepts_a_generator() -> None:
    # The journal passes a generator over its cursor; it is read once.
    assert B.decide((u for u in [Use(NOW, 1)]), None, NOW).count == 1


@pytest.mark.parametrize(
    "kwargs", [{"max_count": -1}, {"max_amount": -1}, {"window_ms": 0}, {"window_ms": -5}]
)
def test_invalid_budget(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        OfflineBudget(**kwargs)


@pytest.mark.parametrize("raw, fen", [("500.00", 50_000), (" 123.45 ", 12_345), ("0", 0)])
def test_parse_amount(raw: str, fen: int) -> None:
    assert parse_amount("VERIFIER_OFFLINE_MAX_AMOUNT", raw) == fen


@pytest.mark.parametrize("raw", ["500.001", "-1", "1e3", "", 500, 500.0, None])
def test_parse_amount_names_the_setting(raw: object) -> None:
    with pytest.raises(ConfigError, match="^VERIFIER_OFFLINE_MAX_AMOUNT: "):
        parse_amount("VERIFIER_OFFLINE_MAX_AMOUNT", raw)
