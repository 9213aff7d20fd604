"""One verification, start to finish, without HTTP: parse → verify → claim → decide.

The only I/O is the single store call (:meth:`Store.claim`). Request-shape problems raise
:class:`RequestError` (HTTP 4xx); a store that cannot answer raises StoreUnavailable (503);
every decided verdict is returned as a JSON-ready dict (HTTP 200).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from verifier import core, coverage, rfc3339
from verifier import errors as E
from verifier.benefits import SERVICES, BenefitPolicy, UnknownService, settle
from verifier.benefits import ratios as benefit_ratios
from verifier.errors import TokenError
from verifier.money import MoneyError, format_fen, parse_yuan
from verifier.policy import ClaimPolicy
from verifier.records import Holder, Institution, Scanner
from verifier.service.metrics import Metrics
from verifier.service.trustwatch import TrustWatch
from verifier.store.base import REPLAYED, Store

_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}", re.ASCII)
_FIELDS = frozenset({"token", "request_id", "service", "amount"})


_formatted: dict[float, str] = {}


def _format_time(ts: float) -> str:
    """rfc3339.format, remembered: tokens issued in the same second share their exp."""
    text = _formatted.get(ts)
    if text is None:
        if len(_formatted) >= 4096:
            _formatted.clear()
        text = _formatted[ts] = rfc3339.format(ts)
    return text


class RequestError(Exception):
    """The request itself is unacceptable (HTTP ``status``, machine code ``code``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class TrustListStale(Exception):
    """The loaded trust list has expired: nothing can be verified safely (503)."""


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    token: str | bytes
    request_id: str | None = None
    service: str | None = None
    amount_fen: int | None = None


def parse_request_id(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not str or not _REQUEST_ID.fullmatch(value):
        raise RequestError(
            400, "malformed_request", "request_id must be 1-128 printable ASCII characters"
        )
    return value


def request_from_json(obj: object, idempotency_key: str | None = None) -> VerifyRequest:
    """Validate a JSON body ``{"token", "request_id"?, "service"?, "amount"?}``."""
    if type(obj) is not dict:
        raise RequestError(400, "malformed_request", "body must be a JSON object")
    unknown = obj.keys() - _FIELDS
    if unknown:
        raise RequestError(
            400, "malformed_request", f"unknown field(s): {', '.join(sorted(unknown))[:200]}"
        )
    token = obj.get("token")
    if type(token) is not str:
        raise RequestError(400, "malformed_request", "token must be a string")
    request_id = parse_request_id(obj.get("request_id", idempotency_key))
    service, amount = obj.get("service"), obj.get("amount")
    if (service is None) != (amount is None):
        raise RequestError(400, "malformed_request", "service and amount go together")
    amount_fen = None
    if service is not None:
        if type(service) is not str or service not in SERVICES:
            raise RequestError(
                400, "malformed_request", f"service must be one of {', '.join(SERVICES)}"
            )
        if type(amount) is not str:
            raise RequestError(
                400, "malformed_request", 'amount must be a decimal string like "123.45"'
            )
        try:
            amount_fen = parse_yuan(amount)
        except MoneyError as err:
            raise RequestError(400, "malformed_request", f"amount: {err}") from err
    return VerifyRequest(token, request_id, service, amount_fen)


class Pipeline:
    def __init__(
        self,
        store: Store,
        trust: TrustWatch,
        claim_policy: ClaimPolicy,
        benefits: BenefitPolicy,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.trust = trust
        self.claim_policy = claim_policy
        self.benefits = benefits
        self.metrics = metrics
        self._ratios: dict[tuple[str, str], dict[str, Any]] = {}

    def _verdict(self, reason: str, valid: bool = False, **parts: Any) -> dict[str, Any]:
        self.metrics.verdicts[reason] += 1
        return {"valid": valid, "reason": reason, "covered": valid and reason == E.OK, **parts}

    async def verify(
        self, scanner: Scanner, inst: Institution | None, req: VerifyRequest, now: float
    ) -> dict[str, Any]:
        """The verdict for one request. Raises StoreUnavailable or TrustListStale (503)."""
        trust = self.trust.current
        if not trust.is_fresh(now):
            raise TrustListStale()
        try:
            tok = core.verify(req.token, trust, self.claim_policy, now)
        except TokenError as err:
            return self._verdict(err.reason)
        card = {
            "type": tok.card,
            "issuer": tok.iss,
            "region": tok.region,
            "expires_at": _format_time(tok.exp),
        }
        if inst is None or not inst.enabled or tok.card not in inst.cards:
            return self._verdict(E.INSTITUTION_NOT_ENABLED, card=card)
        self.metrics.observe_drift(inst.id, now - tok.iat)
        # Keep the nonce at least until the token can no longer pass the expiry check.
        ttl_ms = math.ceil((tok.exp + self.claim_policy.exp_leeway - now) * 1000) + 1000
        claim = await self.store.claim(tok.sub, tok.jti, scanner.id, req.request_id, ttl_ms)
        if claim.outcome == REPLAYED:
            return self._verdict(E.REPLAYED, card=card)  # no holder data for a replay
        holder = claim.holder
        reason = coverage.decide(tok.card, holder)
        if holder is None:
            return self._verdict(reason, True, card=card)
        # Built per answer, not cached: a patient rarely scans twice within minutes, so a cache
        # of holders would only pay off in a bench that reuses a few thousand of them.
        out = self._verdict(
            reason,
            True,
            card=card,
            holder=coverage.holder_view(holder),
            coverage=self._coverage(holder),
        )
        if reason == E.OK and req.service is not None and req.amount_fen is not None:
            try:
                s = settle(
                    self.benefits,
                    holder.region,
                    holder.scheme,
                    req.service,
                    req.amount_fen,
                    holder.balance_fen,
                )
            except UnknownService as err:  # cannot happen: service was validated
                raise RequestError(400, "malformed_request", str(err)) from err
            out["settlement"] = {
                "service": req.service,
                "amount": format_fen(req.amount_fen),
                "fund": format_fen(s.fund_fen),
                "personal_account": format_fen(s.personal_account_fen),
                "out_of_pocket": format_fen(s.out_of_pocket_fen),
            }
        return out

    def _coverage(self, holder: Holder) -> dict[str, Any]:
        # The ratios depend only on (region, scheme): compute each pair once.
        key = (holder.region, holder.scheme)
        ratios = self._ratios.get(key)
        if ratios is None:
            ratios = benefit_ratios(self.benefits, holder.region, holder.scheme)
            if len(self._ratios) < 10_000:
                self._ratios[key] = ratios
        return coverage.coverage_view(holder, self.benefits, ratios)
