"""The JSON views of a verdict: the only place the answer's fields are spelled.

A verdict is ``{"valid", "reason", "covered", "card"?, "holder"?, "coverage"?, "settlement"?,
"request_id"?}`` (the OpenAPI ``Verdict`` schema); a refusal is ``{"error", "message"}``.
Identity appears only masked, money as yuan decimal strings, times as RFC 3339.
"""

from __future__ import annotations

from typing import Any

from verifier import rfc3339
from verifier.benefits import BenefitPolicy, Settlement, ratios
from verifier.core import VerifiedToken
from verifier.errors import OK
from verifier.money import format_fen
from verifier.records import Holder


def verdict(reason: str, valid: bool = False, **parts: Any) -> dict[str, Any]:
    """A decided verdict; ``covered`` is true only for a valid token whose reason is ``ok``."""
    return {"valid": valid, "reason": reason, "covered": valid and reason == OK, **parts}


def error(code: str, message: str) -> dict[str, str]:
    """A refusal body."""
    return {"error": code, "message": message}


def holder_view(holder: Holder) -> dict[str, str | None]:
    """Who the credential belongs to, masked: ``{"id", "name", "id_number"}``.

    ``name`` and ``id_number`` are the stored masked forms, or None when not on record.
    """
    return {"id": holder.sub, "name": holder.name_masked, "id_number": holder.id_masked}


def coverage_view(
    holder: Holder, policy: BenefitPolicy, benefit_ratios: dict[str, str] | None = None
) -> dict[str, Any]:
    """The holder's coverage, JSON-ready::

        {"status": "active", "scheme": "employee", "region": "110101",
         "account_balance": "123.45",
         "benefit_ratios": {"inpatient": "90%", "outpatient": "70%", ...}}

    ``benefit_ratios`` is :func:`verifier.benefits.ratios` for the holder's region and scheme
    (pass it in when the caller already has it).
    """
    return {
        "status": holder.status,
        "scheme": holder.scheme,
        "region": holder.region,
        "account_balance": format_fen(holder.balance_fen),
        "benefit_ratios": benefit_ratios or ratios(policy, holder.region, holder.scheme),
    }


def settlement_view(service: str, amount_fen: int, s: Settlement) -> dict[str, str]:
    return {
        "service": service,
        "amount": format_fen(amount_fen),
        "fund": format_fen(s.fund_fen),
        "personal_account": format_fen(s.personal_account_fen),
        "out_of_pocket": format_fen(s.out_of_pocket_fen),
    }


class Views:
    """Views that repeat across answers, each computed once: built once per service.

    Tokens issued in the same second share their ``exp`` text; holders of one (region, scheme)
    share their benefit ratios. Both caches are bounded.
    """

    def __init__(self, benefits: BenefitPolicy) -> None:
        self.benefits = benefits
        self._times: dict[float, str] = {}
        self._ratios: dict[tuple[str, str], dict[str, str]] = {}

    def card(self, tok: VerifiedToken) -> dict[str, str]:
        text = self._times.get(tok.exp)
        if text is None:
            if len(self._times) >= 4096:
                self._times.clear()
            text = self._times[tok.exp] = rfc3339.format(tok.exp)
        return {"type": tok.card, "issuer": tok.iss, "region": tok.region, "expires_at": text}

    def coverage(self, holder: Holder) -> dict[str, Any]:
        key = (holder.region, holder.scheme)
        found = self._ratios.get(key)
        if found is None:
            found = ratios(self.benefits, holder.region, holder.scheme)
            if len(self._ratios) < 10_000:
                self._ratios[key] = found
        return coverage_view(holder, self.benefits, found)
