"""What goes into the journal and what comes out: rows, outcomes, errors.

    JournalError            the journal cannot be opened or used (a VerifierError)
    ├── JournalCorrupt      the file failed its integrity check: refuse to start
    └── JournalUnavailable  a commit failed: the scan must not be accepted (503)

A row's ``state`` starts ``pending`` and moves once, after reconciliation with the centre,
to ``confirmed``, ``conflict`` or ``rejected``. Times are integer milliseconds since the epoch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from verifier.errors import VerifierError
from verifier.money import format_fen
from verifier.sidecar.budget import BudgetDecision

PENDING = "pending"
CONFIRMED = "confirmed"
CONFLICT = "conflict"
REJECTED = "rejected"
STATES = (PENDING, CONFIRMED, CONFLICT, REJECTED)
SETTLED_STATES = (CONFIRMED, CONFLICT, REJECTED)

# Recorded.outcome: what recording an offline acceptance did.
NEW = "new"  # the row was written and committed: accept the scan
RETRY = "retry"  # same scanner and request id as the row: answer as the first time
REPLAYED = "replayed"  # the nonce was already used at this sidecar by another request
OVER_BUDGET = "over_budget"  # the holder's offline budget is spent; nothing written

MAX_DETAIL = 200
# An 18-character citizen ID number anywhere in a text (17 digits and a digit or X).
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])([0-9]{4})[0-9]{10}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")


class JournalError(VerifierError):
    """The journal cannot be opened or used; the message names the file."""


class JournalCorrupt(JournalError):
    """The journal file failed ``PRAGMA quick_check`` or is not a SQLite database."""


class JournalUnavailable(JournalError):
    """A journal transaction failed: nothing was committed, so nothing may be accepted."""


def scrub(text: str) -> str:
    """``text`` with any ID-number-shaped run masked as ``1101**********123X``."""
    return _ID_NUMBER.sub(lambda m: f"{m[1]}{'*' * 10}{m[2]}", text)


def format_ms(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-22T14:00:00.250+00:00``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Acceptance:
    """An offline acceptance to journal. The token is kept for reconciliation only."""

    sub: str  # holder id (the token's sub)
    jti: str  # the token's nonce
    token: str = field(repr=False)
    request_id: str  # the scanner's, or one the sidecar made
    scanner: str  # scanner id
    accepted_at: int  # ms since the epoch
    service: str | None = None
    amount: int | None = None  # fen

    def __post_init__(self) -> None:
        for name in ("sub", "jti", "token", "request_id", "scanner"):
            value = getattr(self, name)
            if type(value) is not str or not value:
                raise ValueError(f"acceptance: {name} must be a non-empty string")
        if type(self.accepted_at) is not int or self.accepted_at < 0:
            raise ValueError("acceptance: accepted_at must be ms since the epoch")
        if (self.service is None) != (self.amount is None):
            raise ValueError("acceptance: service and amount go together")
        if self.amount is not None and (type(self.amount) is not int or self.amount < 0):
            raise ValueError("acceptance: amount must be fen >= 0")


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal row. ``repr`` and :meth:`public` leave the token out."""

    id: int
    sub: str
    jti: str
    token: str = field(repr=False)
    request_id: str
    scanner: str
    accepted_at: int
    service: str | None
    amount: int | None
    state: str
    detail: str
    updated_at: int

    @classmethod
    def of(cls, row_id: int, a: Acceptance) -> Entry:
        """The row just written for ``a``."""
        return cls(
            row_id,
            a.sub,
            a.jti,
            a.token,
            a.request_id,
            a.scanner,
            a.accepted_at,
            a.service,
            a.amount,
            PENDING,
            "",
            a.accepted_at,
        )

    def public(self) -> dict[str, object]:
        """JSON-ready view for listings and logs: no token, no nonce, no ID number."""
        return {
            "id": self.id,
            "sub": scrub(self.sub),
            "request_id": self.request_id,
            "scanner": self.scanner,
            "accepted_at": format_ms(self.accepted_at),
            "service": self.service,
            "amount": None if self.amount is None else format_fen(self.amount),
            "state": self.state,
            "detail": scrub(self.detail),
            "updated_at": format_ms(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """The centre's verdict on one pending row, from reconciliation."""

    id: int
    state: str  # one of SETTLED_STATES
    detail: str = ""  # e.g. the rejection reason; scrubbed and cut to MAX_DETAIL

    def __post_init__(self) -> None:
        if self.state not in SETTLED_STATES:
            raise ValueError(f"outcome: state must be one of {', '.join(SETTLED_STATES)}")
        object.__setattr__(self, "detail", scrub(str(self.detail))[:MAX_DETAIL])


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :meth:`Journal.record` did. ``entry`` is the new row (NEW) or the first one (RETRY)."""

    outcome: str  # NEW, RETRY, REPLAYED or OVER_BUDGET
    entry: Entry | None
    budget: BudgetDecision | None  # set when OVER_BUDGET
