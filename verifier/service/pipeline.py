"""One verification, start to finish, without HTTP: verify → claim → decide.

The only I/O is the single store call (:meth:`Store.claim`). A verdict is a JSON-ready dict;
what cannot be decided raises :class:`verifier.errors.RequestRefused` (the trust list has
expired) or :class:`verifier.errors.StoreUnavailable`.
"""

from __future__ import annotations

import logging
from typing import Any

from verifier import coverage
from verifier import errors as E
from verifier.benefits import BenefitPolicy, UnknownService, settle
from verifier.core import TokenVerifier, VerifiedToken
from verifier.errors import RequestRefused, TokenError
from verifier.policy import ClaimPolicy
from verifier.records import Institution, Scanner
from verifier.service import views
from verifier.service.metrics import Metrics
from verifier.service.requests import VerifyRequest
from verifier.service.trustwatch import TrustWatch
from verifier.store.base import REPLAYED, Claim, Store
from verifier.store.cluster import ClusterStore
from verifier.trust import TrustList

log = logging.getLogger("verifier.verify")


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
        metrics.forgettings = lambda: store.forgettings
        if isinstance(store, ClusterStore):
            metrics.store_redirects = lambda: store.redirects
        self.views = views.Views(benefits)
        self._verifier: TokenVerifier | None = None

    def token_verifier(self, trust: TrustList) -> TokenVerifier:
        """The token verifier of ``trust``: built once per loaded trust list."""
        v = self._verifier
        if v is None or v.trust is not trust:
            v = self._verifier = TokenVerifier(trust, self.claim_policy)
        return v

    def _verdict(self, reason: str, valid: bool = False, **parts: Any) -> dict[str, Any]:
        self.metrics.verdicts[reason] += 1
        return views.verdict(reason, valid, **parts)

    async def verify(
        self, scanner: Scanner, inst: Institution | None, req: VerifyRequest, now: float
    ) -> dict[str, Any]:
        """The verdict for one request. Raises StoreUnavailable or RequestRefused (503)."""
        trust = self.trust.current
        if not trust.is_fresh(now):
            raise RequestRefused(E.TRUST_LIST_EXPIRED, "the trust list has expired; cannot verify")
        try:
            tok = self.token_verifier(trust).verify(req.token, now)
        except TokenError as err:
            return self._verdict(err.reason)
        card = self.views.card(tok)
        if inst is None or not inst.enabled or tok.card not in inst.cards:
            return self._verdict(E.INSTITUTION_NOT_ENABLED, card=card)
        self.metrics.observe_drift(inst.id, now - tok.iat)
        forgotten = self.store.forgotten_before
        if forgotten is not None and tok.iat < forgotten:
            # The store may have lost the claim of this token: refuse it, and its nonce is
            # not claimed (a fresh code, issued after the loss, is served at once).
            return self._verdict(E.REISSUE_REQUIRED, card=card)
        ttl_ms = self.claim_policy.nonce_ttl_ms(tok.exp, now)
        claim = await self.store.claim(tok.sub, tok.jti, scanner.id, req.request_id, ttl_ms)
        if self.store.forgotten_before != forgotten:  # found while this claim reconnected
            forgotten = self.store.forgotten_before
            if forgotten is not None and tok.iat < forgotten:
                return self._verdict(E.REISSUE_REQUIRED, card=card)
        if claim.outcome == REPLAYED:
            return self._verdict(E.REPLAYED, card=card)  # no holder data for a replay
        out = self.held(tok, card, claim, req.service, req.amount_fen)
        self.metrics.verdicts[out["reason"]] += 1
        return out

    def held(
        self,
        tok: VerifiedToken,
        card: dict[str, str],
        claim: Claim,
        service: str | None,
        amount_fen: int | None,
    ) -> dict[str, Any]:
        """The verdict on a genuine token whose nonce this use holds (``claim`` is NEW or
        RETRY): the coverage of ``claim.holder`` and the settlement split, as of now. Counts
        no verdict (the caller does). Also what a gateway's confirmed offline use is told."""
        if claim.record_error is not None:
            # The token was genuine and its nonce is spent: say so, and that coverage is unknown.
            self.metrics.records_unreadable += 1
            log.warning("holder %s: stored record unreadable: %s", tok.sub, claim.record_error)
            return views.verdict(E.RECORD_UNREADABLE, True, card=card)
        holder = claim.holder
        reason = coverage.decide(tok.card, holder)
        if holder is None:
            return views.verdict(reason, True, card=card)
        out = views.verdict(
            reason,
            True,
            card=card,
            holder=views.holder_view(holder),
            coverage=self.views.coverage(holder),
        )
        if reason == E.OK and service is not None and amount_fen is not None:
            try:
                s = settle(
                    self.benefits,
                    holder.region,
                    holder.scheme,
                    service,
                    amount_fen,
                    holder.balance_fen,
                )
            except UnknownService as err:  # cannot happen: service was validated
                raise RequestRefused(E.MALFORMED_REQUEST, str(err)) from err
            out["settlement"] = views.settlement_view(service, amount_fen, s)
        return out
