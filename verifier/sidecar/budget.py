"""The offline budget: how much one holder may be accepted for while the centre is unreachable.

Offline, the sidecar can check that a card is genuine, fresh and unused *here*, but not that
it is unused at another site or that the holder is still covered. The budget bounds what a
copied or revoked card can obtain before reconciliation flags it: at most ``max_count``
offline acceptances and at most ``max_amount`` fen per holder within any sliding window of
``window_ms``.

The uses are read from the journal's rows, so the budget survives a restart; every row in
the window counts whatever its reconciliation state (a confirmed row was still an offline
acceptance, and a conflict is exactly what the budget exists to limit). A refused request
is not journalled, so it does not use up budget. Uses stamped in the future (the clock was
set back) count as inside the window.

:meth:`OfflineBudget.decide` is pure: it takes the holder's uses and ``now`` and never
reads a clock or a database. The journal calls it inside the same transaction that writes
the row, so two concurrent scans of one holder cannot both pass on the same remaining budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from verifier.errors import ConfigError
from verifier.money import MoneyError, parse_yuan

# Why a request is over budget (BudgetDecision.exceeded).
COUNT = "count"
AMOUNT = "amount"


@dataclass(frozen=True, slots=True)
class Use:
    """One earlier offline acceptance of the holder: when (ms since the epoch) and how much."""

    accepted_at: int
    amount: int | None  # fen; None when the scan named no service and amount


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """The verdict, with what the window already held before this request (for logs)."""

    allowed: bool
    exceeded: str | None  # None, COUNT or AMOUNT
    count: int  # acceptances already in the window
    amount: int  # fen already in the window


@dataclass(frozen=True, slots=True)
class OfflineBudget:
    """Per-holder limits on offline acceptance within a sliding window."""

    max_count: int = 2  # VERIFIER_OFFLINE_LIMIT
    window_ms: int = 24 * 3_600_000  # VERIFIER_OFFLINE_WINDOW (24h)
    max_amount: int = 50_000  # fen; VERIFIER_OFFLINE_MAX_AMOUNT (500.00 yuan)

    def __post_init__(self) -> None:
        if self.max_count < 0 or self.max_amount < 0 or self.window_ms <= 0:
            raise ValueError("offline budget: limits must be >= 0 and the window > 0")

    def window_start(self, now_ms: int) -> int:
        """Uses stamped strictly after this instant are inside the window ending at ``now_ms``."""
        return now_ms - self.window_ms

    def decide(self, uses: Iterable[Use], amount: int | None, now_ms: int) -> BudgetDecision:
        """May one more acceptance of ``amount`` fen (None: no amount) be given at ``now_ms``?

        A use exactly ``window_ms`` old has just left the window. The count is checked first:
        a holder at the count limit is refused as COUNT even when the amount would also fail.
        """
        start = self.window_start(now_ms)
        count = spent = 0
        for use in uses:
            if use.accepted_at > start:
                count += 1
                spent += use.amount or 0
        if count + 1 > self.max_count:
            return BudgetDecision(False, COUNT, count, spent)
        if spent + (amount or 0) > self.max_amount:
            return BudgetDecision(False, AMOUNT, count, spent)
        return BudgetDecision(True, None, count, spent)


def parse_amount(label: str, raw: object) -> int:
    """A yuan setting such as ``"500.00"`` (``VERIFIER_OFFLINE_MAX_AMOUNT``) in fen.

    Shaped as a settings parser (``label`` names the variable or config key, and starts every
    ConfigError message), like :func:`verifier.durations.parse_duration`.
    """
    if not isinstance(raw, str):  # a TOML number: money is never a float here
        raise ConfigError(f'{label}: expected a yuan amount such as "500.00", got {raw!r}')
    try:
        return parse_yuan(raw.strip())
    except MoneyError as err:
        raise ConfigError(f"{label}: {err}") from err
