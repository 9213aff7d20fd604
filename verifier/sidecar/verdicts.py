"""A sidecar's verdicts: the centre's when it answers in time, else decided offline and journalled.

:class:`GatewayVerdicts` is the sidecar's ``Runtime.pipeline``
(:class:`verifier.service.endpoint.Verdicts`): the endpoint has already applied every admission
rule (limits, credential, content type, shape) before it is called.

Online (the breaker is closed) the request goes to the centre's ``POST /v1/verify`` with the
scanner's own ``Authorization`` and a request id (the scanner's, or one made here), and the
centre's verdict comes back as it is with ``"mode": "online"``; a refusal of the centre
(401, 403, 400 …) is the same refusal here.

One exception online: a token accepted offline here whose journal row the centre has not
received yet is ``replayed`` here (as the centre will say once it has the row) when another
request presents it, instead of being forwarded to a centre that would still call it unused.

Offline (the forward failed, or the breaker is open) the rules of :mod:`verifier.sidecar` apply:
the token core against the synced trust list, the institution's designation, then one journal
transaction (replay, budget, durable write) before the answer
``{"valid": true, "reason": "ok", "covered": null, "mode": "offline", "settle_later": true}``.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import orjson

from verifier import core
from verifier import errors as E
from verifier.benefits import BenefitPolicy
from verifier.errors import RequestRefused, StoreUnavailable, TokenError
from verifier.money import format_fen
from verifier.policy import ClaimPolicy
from verifier.records import Institution, Scanner
from verifier.service.metrics import Metrics
from verifier.service.requests import JSON, TEXT, VerifyRequest
from verifier.service.trustwatch import TrustWatch
from verifier.service.views import Views
from verifier.sidecar.breaker import FORWARD, REFUSE, Breaker
from verifier.sidecar.directory import Presented
from verifier.sidecar.journal import (
    NEW,
    OVER_BUDGET,
    PENDING,
    REPLAYED,
    RETRY,
    Acceptance,
    Entry,
    Journal,
    JournalUnavailable,
)
from verifier.sidecar.upstream import Upstream, UpstreamAnswer, UpstreamFailed

log = logging.getLogger("verifier.sidecar")

ONLINE = "online"
OFFLINE = "offline"


def new_request_id() -> str:
    """A request id for a scan that came without one: ``gw-`` and 22 random characters."""
    return "gw-" + secrets.token_urlsafe(16)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class GatewayVerdicts:
    def __init__(
        self,
        upstream: Upstream,
        breaker: Breaker,
        journal: Journal,
        trust: TrustWatch,
        policy: ClaimPolicy,
        metrics: Metrics,
    ) -> None:
        self.upstream = upstream
        self.breaker = breaker
        self.journal = journal
        self.trust = trust
        self.policy = policy
        self.metrics = metrics
        self.views = Views(BenefitPolicy.default())  # only its card view is used here
        # Nonces accepted offline and not reconciled yet: (sub, jti) -> (scanner, request id).
        self.unreconciled: dict[tuple[str, str], tuple[str, str]] = {}

    async def load_unreconciled(self) -> None:
        """Read the journal's pending rows (at start)."""
        after = 0
        while rows := await self.journal.rows(PENDING, limit=10_000, after_id=after):
            for row in rows:
                self.unreconciled[(row.sub, row.jti)] = (row.scanner, row.request_id)
            after = rows[-1].id

    def reconciled(self, rows: list[Entry]) -> None:
        """The centre has these rows now: it answers for their nonces itself."""
        for row in rows:
            self.unreconciled.pop((row.sub, row.jti), None)

    async def verify(
        self, scanner: Scanner, inst: Institution | None, req: VerifyRequest, now: float
    ) -> dict[str, Any]:
        assert isinstance(scanner, Presented)  # admitted by GatewayScanners
        request_id = req.request_id or new_request_id()
        route = self.breaker.route(_ms(now))
        if route == FORWARD and self.unreconciled:
            used = self._used_here(scanner, req, request_id, now)
            if used is not None:
                return used
        if route == FORWARD:
            try:
                answer = await self._forward(scanner, req, request_id)
            except UpstreamFailed as err:
                now = time.time()
                route = self.breaker.failed(_ms(now))
                log.warning("forward failed, deciding offline: %s", err)
            else:
                self.breaker.record_success(_ms(time.time()))
                return self._online(answer)
        if route == REFUSE:
            raise RequestRefused(E.STORE_UNAVAILABLE, self.breaker.refusal())
        return await self.offline(scanner, inst, req, request_id, now)

    # -- online -------------------------------------------------------------------------------

    async def _forward(
        self, scanner: Presented, req: VerifyRequest, request_id: str
    ) -> UpstreamAnswer:
        if isinstance(req.token, bytes):  # a text/plain scan goes on as text/plain
            body, ctype = req.token, TEXT
        else:
            doc: dict[str, str] = {"token": req.token, "request_id": request_id}
            if req.service is not None and req.amount_fen is not None:
                doc["service"], doc["amount"] = req.service, format_fen(req.amount_fen)
            body, ctype = orjson.dumps(doc), JSON
        return await self.upstream.forward(
            "/v1/verify",
            body,
            content_type=ctype,
            authorization=scanner.authorization,
            request_id=request_id,
        )

    def _online(self, answer: UpstreamAnswer) -> dict[str, Any]:
        try:
            doc = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            doc = None
        if type(doc) is not dict:
            raise RequestRefused(E.STORE_UNAVAILABLE, "the central service answered no JSON")
        if answer.status == 200:
            doc["mode"] = ONLINE
            self.metrics.verdicts[str(doc.get("reason"))] += 1
            return doc
        code = doc.get("error")
        if type(code) is not str or code not in E.REFUSAL_STATUS:
            raise RequestRefused(
                E.STORE_UNAVAILABLE, f"the central service answered {answer.status}"
            )
        raise RequestRefused(code, str(doc.get("message") or code))

    def _used_here(
        self, scanner: Presented, req: VerifyRequest, request_id: str, now: float
    ) -> dict[str, Any] | None:
        """``replayed`` for a token accepted offline here whose row the centre has not seen
        yet (it would still call the token unused), presented by another request; else None.
        Only while such rows exist (after an outage, until the drain): it costs a verification.
        """
        try:
            tok = core.verify(req.token, self.trust.current, self.policy, now)
        except TokenError:
            return None
        first = self.unreconciled.get((tok.sub, tok.jti))
        if first is None or first == (scanner.id, request_id):
            return None
        return self._verdict(E.REPLAYED, card=self.views.card(tok), request_id=request_id)

    # -- offline ------------------------------------------------------------------------------

    def _verdict(self, reason: str, **parts: Any) -> dict[str, Any]:
        """A refusal decided here, not by the centre (so ``mode`` is offline)."""
        self.metrics.verdicts[reason] += 1
        return {"valid": False, "reason": reason, "covered": False, "mode": OFFLINE, **parts}

    async def offline(
        self,
        scanner: Presented,
        inst: Institution | None,
        req: VerifyRequest,
        request_id: str,
        now: float,
    ) -> dict[str, Any]:
        """The offline verdict; a new acceptance is durable in the journal when this returns."""
        if not scanner.known:
            raise RequestRefused(E.UNAUTHORIZED, "unknown scanner credential")
        trust = self.trust.current
        if not trust.is_fresh(now):
            raise RequestRefused(E.TRUST_LIST_EXPIRED, "the trust list has expired; cannot verify")
        try:
            tok = core.verify(req.token, trust, self.policy, now)
        except TokenError as err:
            return self._verdict(err.reason, request_id=request_id)
        card = self.views.card(tok)
        if inst is None or not inst.enabled or tok.card not in inst.cards:
            return self._verdict(E.INSTITUTION_NOT_ENABLED, card=card, request_id=request_id)
        token = req.token.decode("ascii") if isinstance(req.token, bytes) else req.token
        item = Acceptance(
            tok.sub,
            tok.jti,
            token,
            request_id,
            scanner.id,
            _ms(now),
            req.service,
            req.amount_fen,
        )
        try:
            rec = await self.journal.record(item)
        except JournalUnavailable as err:
            log.error("offline acceptance not journalled, refusing: %s", err)
            raise StoreUnavailable(str(err)) from err
        if rec.outcome == REPLAYED:
            return self._verdict(E.REPLAYED, card=card, request_id=request_id)
        if rec.outcome == OVER_BUDGET:
            return self._verdict(E.OFFLINE_LIMIT, card=card, request_id=request_id)
        assert rec.outcome in (NEW, RETRY)
        if rec.outcome == NEW:
            self.unreconciled[(tok.sub, tok.jti)] = (scanner.id, request_id)
        self.metrics.verdicts[E.OK] += 1
        return {
            "valid": True,
            "reason": E.OK,
            "covered": None,
            "mode": OFFLINE,
            "settle_later": True,
            "card": card,
            "holder": {"id": tok.sub},
            "request_id": request_id,
        }
