"""Plain records kept in the store: insured holders, institutions, scanners.

Identity is stored only in masked form: the full ID number is validated on input and then
discarded (see ``verifier.idnumber``), names are kept masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

HOLDER_STATUSES = ("active", "suspended", "terminated")
SCHEMES = ("employee", "retiree", "resident", "flexible")
PHYSICAL_CARD_STATES = ("active", "lost", "cancelled", "none")
CARD_TYPES = ("mi-voucher", "ss-ecard")


class Holder(NamedTuple):
    """An insured person's coverage as the registry knows it now.

    A NamedTuple rather than a frozen dataclass: one is built per verification (from the
    store's reply), and tuple construction is several times cheaper.
    """

    sub: str  # holder id, the token's `sub`
    status: str  # one of HOLDER_STATUSES
    scheme: str  # one of SCHEMES
    region: str  # 6-digit administrative region code of the insured region
    balance_fen: int = 0  # personal account balance, in fen (1/100 yuan), >= 0
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
