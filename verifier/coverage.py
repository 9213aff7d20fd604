"""The coverage decision after the nonce step (the views of a holder: verifier.service.views).

Pure functions of the holder record read together with the nonce claim: no store, no clock.
"""

from __future__ import annotations

from verifier.errors import (
    COVERAGE_SUSPENDED,
    COVERAGE_TERMINATED,
    NOT_ENROLLED,
    OK,
    PHYSICAL_CARD_INACTIVE,
)
from verifier.records import CARD_TYPES, Holder


def decide(card_type: str, holder: Holder | None) -> str:
    """Return the reason code for scanning a ``card_type`` credential of ``holder``.

    The first rule that applies wins:

    1. ``not_enrolled``: no holder record.
    2. ``coverage_terminated``: the holder left the scheme (also any status that is neither
       active nor suspended, so that a corrupt record fails closed).
    3. ``coverage_suspended``: contributions unpaid.
    4. ``physical_card_inactive``: an ``ss-ecard`` whose physical social security card is not
       active (lost, cancelled, none). The ``mi-voucher`` needs no physical card.
    5. ``ok``.

    Coverage comes before the physical card because it is the more fundamental answer: a
    terminated holder with a lost card must re-enrol first; a new card would not help.

    Raises ValueError for a card type outside CARD_TYPES: the token core only lets allowed
    card types through, so another value here is a programming error.
    """
    if card_type not in CARD_TYPES:
        raise ValueError(f"unknown card type {card_type!r}")
    if holder is None:
        return NOT_ENROLLED
    if holder.status not in ("active", "suspended"):
        return COVERAGE_TERMINATED
    if holder.status == "suspended":
        return COVERAGE_SUSPENDED
    if card_type == "ss-ecard" and holder.physical_card != "active":
        return PHYSICAL_CARD_INACTIVE
    return OK
