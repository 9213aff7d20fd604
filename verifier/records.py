"""Plain records kept in the store (insured holders, institutions, scanners) and their field rules.

Identity is stored only in masked form: the full ID number is validated on input and then
discarded (see ``verifier.idnumber``), names are kept masked.

The field rules below are the one definition of what a valid record holds. Admin input
(:mod:`verifier.registry`) and the records codec (:mod:`verifier.codec`, which checks every
record it writes or reads) both use them. A check returns the value or raises RecordError
whose message names the field and never repeats the value (it may be personal data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from verifier.errors import RecordError
from verifier.money import MAX_FEN

HOLDER_STATUSES = ("active", "suspended", "terminated")
SCHEMES = ("employee", "retiree", "resident", "flexible")
PHYSICAL_CARD_STATES = ("active", "lost", "cancelled", "none")
CARD_TYPES = ("mi-voucher", "ss-ecard")

MAX_INSTITUTION_NAME = 200

# fullmatch, never match: "$" would also accept a trailing newline. [0-9], not \d: \d also
# matches other scripts' digits.
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # holder sub, institution id, scanner id
REGION = re.compile(r"[0-9]{6}")  # GB/T 2260 administrative region code
ID_MASKED = re.compile(r"[0-9]{4}\*{10}[0-9]{3}[0-9X]")  # see idnumber.mask_id_number
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}", re.ASCII)  # printable ASCII, no space


class Holder(NamedTuple):
    """An insured person's coverage as the registry knows it now.

    A NamedTuple rather than a frozen dataclass: one is built per verification (from the
    store's reply), and tuple construction is several times cheaper.
    """

    sub: str  # holder id, the token's `sub`
    status: str  # one of HOLDER_STATUSES
    scheme: str  # one of SCHEMES
    region: str  # 6-digit administrative region code of the insured region
    balance_fen: int = 0  # personal account balance, in fen (1/100 yuan), 0..MAX_FEN
    physical_card: str = "none"  # one of PHYSICAL_CARD_STATES
    name_masked: str | None = None  # e.g. "张*明"
    id_masked: str | None = None  # e.g. "1101**********123X"


@dataclass(frozen=True, slots=True)
class Institution:
    """A designated hospital or pharmacy, and the card types it is enabled for."""

    id: str
    name: str
    cards: frozenset[str]
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Scanner:
    """A scanner credential. Only a SHA-256 hash of its secret is ever stored."""

    id: str
    institution: str
    secret_hash: str  # hex sha256 of the secret part of the credential
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Gateway:
    """A gateway sidecar's credential: it acts for one institution. Only a hash is stored."""

    id: str
    institution: str
    secret_hash: str  # hex sha256 of the secret part of the credential
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Use:
    """One use of a token as a conflict names it: where, through what, and when."""

    scanner: str
    institution: str | None  # None when the scanner is no longer on record
    gateway: str | None  # the gateway that reconciled it; None for a use at the centre
    request_id: str | None
    at: float | None  # Unix seconds; None when the centre no longer knows


@dataclass(frozen=True, slots=True)
class Conflict:
    """A token used twice: once by ``first`` (the centre's record), then by ``second`` (a
    gateway's offline acceptance). Names the holder and the token's nonce, never the token."""

    holder: str  # the token's sub
    nonce: str  # the token's jti
    first: Use
    second: Use
    detected_at: float  # Unix seconds


# --- field rules ------------------------------------------------------------------------------


def check_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise RecordError(f"{field} must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def check_choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise RecordError(f"{field} must be one of {', '.join(choices)}")
    return value


def check_region(value: Any, field: str) -> str:
    if not isinstance(value, str) or not REGION.fullmatch(value):
        raise RecordError(f"{field} must be 6 digits")
    return value


def check_flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise RecordError(f"{field} must be true or false")
    return value


def check_balance_fen(value: Any, field: str) -> int:
    # bool is a subclass of int: true is not a balance.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_FEN:
        raise RecordError(f"{field} must be an integer from 0 to {MAX_FEN}")
    return value


def check_name_masked(value: Any, field: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise RecordError(f"{field} must be null or a non-empty string")
    return value


def check_id_masked(value: Any, field: str) -> str | None:
    """A masked ID number or None: a full 18-character number is refused, never kept."""
    if value is not None and (not isinstance(value, str) or not ID_MASKED.fullmatch(value)):
        raise RecordError(f"{field} must be null or look like 1101**********123X")
    return value


def check_institution_name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise RecordError(f"{field} must be a non-empty string without control characters")
    if len(value) > MAX_INSTITUTION_NAME:
        raise RecordError(f"{field} must be at most {MAX_INSTITUTION_NAME} characters")
    return value


def check_secret_hash(value: Any, field: str) -> str:
    if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
        raise RecordError(f"{field} must be 64 lower-case hex digits")
    return value


def check_request_id(value: Any, field: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not REQUEST_ID.fullmatch(value)):
        raise RecordError(f"{field} must be null or 1-128 printable ASCII characters")
    return value


def check_time(value: Any, field: str) -> float:
    """Unix seconds: a finite, non-negative number."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 <= value < 1e11  # also refuses NaN and infinities
    ):
        raise RecordError(f"{field} must be Unix seconds")
    return float(value)
