"""Reconciling a gateway's offline acceptances with the centre, without HTTP.

A gateway sidecar that accepted scans while the centre could not be reached sends them here
afterwards (``POST /v1/reconcile``, :mod:`verifier.service.gateway_api`). Each item is judged
on its own, in this order; the first rule broken rejects it with that reason:

1. its shape: ``{"token", "request_id", "scanner", "accepted_at", "service"?, "amount"?}``
   (``malformed_item``);
2. ``accepted_at`` is not ahead of the centre's clock by more than the future leeway
   (``accepted_in_future``), nor older than the reconcile window (``outside_reconcile_window``:
   a double use could no longer be seen);
3. the token passes the token core *at* ``accepted_at`` (its reason: ``bad_signature``,
   ``expired``, ``unknown_key`` …), against the trust list in force now;
4. the scanner is on record and belongs to the gateway's institution (``foreign_scanner``);
5. that institution is enabled, now, for the card type (``institution_not_enabled``).

Then one store call, :meth:`verifier.store.base.Store.reconcile_claim`, claims the nonce: an
unused nonce, or one used by the same scanner with the same request id (this item sent again,
or a forward that timed out at the centre before the gateway accepted it offline), is
``confirmed`` with the verdict as of now (coverage, settlement); a nonce used by anyone else is
a ``conflict``, recorded with both uses for review (:meth:`Store.add_conflict`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

from verifier import errors as E
from verifier import rfc3339
from verifier.core import VerifiedToken
from verifier.errors import RequestRefused, TokenError
from verifier.records import ID, Conflict, Gateway, Institution, Scanner, Use
from verifier.service.pipeline import Pipeline
from verifier.service.requests import request_from_json
from verifier.store.base import REPLAYED, PriorUse

log = logging.getLogger("verifier.reconcile")

CONFIRMED = "confirmed"
CONFLICT = "conflict"
REJECTED = "rejected"

_OWN_FIELDS = ("scanner", "accepted_at")


@dataclass(frozen=True, slots=True)
class Item:
    """One offline acceptance, as the gateway journaled it."""

    token: str
    request_id: str
    scanner: str
    accepted_at: float  # Unix seconds
    service: str | None = None
    amount_fen: int | None = None


class Malformed(ValueError):
    """An item that is not an offline acceptance; ``request_id`` when it had a usable one."""

    def __init__(self, message: str, request_id: str | None) -> None:
        super().__init__(message)
        self.request_id = request_id


def parse_item(obj: object) -> Item:
    """The item of a reconcile request, or Malformed. ``token``, ``request_id``, ``service``
    and ``amount`` follow the rules of a verify request; ``request_id`` is required here;
    ``accepted_at`` is RFC 3339 text or Unix seconds."""
    if type(obj) is not dict:
        raise Malformed("an item must be a JSON object", None)
    rid = obj.get("request_id")
    echo = rid if type(rid) is str and 0 < len(rid) <= 128 and rid.isascii() else None
    try:
        vreq = request_from_json({k: v for k, v in obj.items() if k not in _OWN_FIELDS})
    except RequestRefused as err:
        raise Malformed(err.message, echo) from err
    if vreq.request_id is None:
        raise Malformed("request_id is required", None)
    scanner = obj.get("scanner")
    if type(scanner) is not str or not ID.fullmatch(scanner):
        raise Malformed("scanner must be the scanner's id", echo)
    at = obj.get("accepted_at")
    if type(at) is int or type(at) is float:
        accepted_at = float(at)
        if not math.isfinite(accepted_at):
            raise Malformed("accepted_at must be a finite number", echo)
    else:
        try:
            accepted_at = rfc3339.parse(at)
        except ValueError as err:
            raise Malformed("accepted_at must be RFC 3339 text or Unix seconds", echo) from err
    assert isinstance(vreq.token, str)  # request_from_json checked it
    return Item(vreq.token, vreq.request_id, scanner, accepted_at, vreq.service, vreq.amount_fen)


def rejected(request_id: str | None, reason: str, message: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"request_id": request_id, "outcome": REJECTED, "reason": reason}
    if message is not None:
        out["message"] = message
    return out


class Reconciler:
    """Judges the items of one gateway's reconcile requests (see the module docstring)."""

    def __init__(self, pipeline: Pipeline, window_s: float) -> None:
        self.pipeline = pipeline
        self.store = pipeline.store
        self.window_s = window_s
        self.metrics = pipeline.metrics

    async def reconcile(
        self, gateway: Gateway, inst: Institution | None, raw_items: list[object], now: float
    ) -> list[dict[str, Any]]:
        """One result per item, in order. Raises StoreUnavailable if the store fails for any
        item (the whole request is then retried: every outcome is the same the second time).
        The caller has checked that the trust list is fresh."""
        parsed: list[Item | dict[str, Any]] = []
        for obj in raw_items:
            try:
                parsed.append(parse_item(obj))
            except Malformed as err:
                parsed.append(rejected(err.request_id, E.MALFORMED_ITEM, str(err)))
        ids = {p.scanner for p in parsed if isinstance(p, Item)}
        found = await asyncio.gather(*(self.store.get_scanner(i) for i in ids))
        scanners = dict(zip(ids, found, strict=True))
        results = await asyncio.gather(
            *(
                self._one(gateway, inst, p, scanners.get(p.scanner), now)
                if isinstance(p, Item)
                else _done(p)
                for p in parsed
            )
        )
        for r in results:
            self.metrics.reconcile[r["outcome"]] += 1
        return results

    async def _one(
        self,
        gateway: Gateway,
        inst: Institution | None,
        item: Item,
        scanner: Scanner | None,
        now: float,
    ) -> dict[str, Any]:
        rid = item.request_id
        policy = self.pipeline.claim_policy
        if item.accepted_at > now + policy.future_leeway:
            return rejected(rid, E.ACCEPTED_IN_FUTURE)
        if item.accepted_at < now - self.window_s:
            return rejected(rid, E.OUTSIDE_RECONCILE_WINDOW)
        try:
            verifier = self.pipeline.token_verifier(self.pipeline.trust.current)
            tok = verifier.verify(item.token, item.accepted_at)
        except TokenError as err:
            return rejected(rid, err.reason)
        if scanner is None or scanner.institution != gateway.institution:
            return rejected(rid, E.FOREIGN_SCANNER)
        if inst is None or not inst.enabled or tok.card not in inst.cards:
            return rejected(rid, E.INSTITUTION_NOT_ENABLED)
        # While the token can still be presented, its nonce must say it is spent (as a claim's).
        ttl_ms = policy.nonce_ttl_ms(tok.exp, now)
        done = await self.store.reconcile_claim(
            tok.sub, tok.jti, scanner.id, rid, gateway.id, item.accepted_at, ttl_ms
        )
        if done.claim.outcome == REPLAYED:
            assert done.first is not None
            await self._record(tok, gateway, item, done.first, now)
            return {"request_id": rid, "outcome": CONFLICT}
        card = self.pipeline.views.card(tok)
        verdict = self.pipeline.held(tok, card, done.claim, item.service, item.amount_fen)
        return {"request_id": rid, "outcome": CONFIRMED, "verdict": verdict}

    async def _record(
        self, tok: VerifiedToken, gateway: Gateway, item: Item, first: PriorUse, now: float
    ) -> None:
        other = await self.store.get_scanner(first.claimant)
        conflict = Conflict(
            holder=tok.sub,
            nonce=tok.jti,
            first=Use(
                scanner=first.claimant,
                institution=other.institution if other is not None else None,
                gateway=first.via or None,
                request_id=first.request_id or None,
                at=first.used_at,
            ),
            second=Use(
                item.scanner, gateway.institution, gateway.id, item.request_id, item.accepted_at
            ),
            detected_at=now,
        )
        await self.store.add_conflict(conflict)
        log.warning(
            "double use: holder %s, nonce %s: first %s (scanner %s), then offline through "
            "gateway %s (scanner %s, request %s)",
            tok.sub,
            tok.jti,
            f"through gateway {first.via}" if first.via else "at the centre",
            first.claimant,
            gateway.id,
            item.scanner,
            item.request_id,
        )


async def _done(result: dict[str, Any]) -> dict[str, Any]:
    return result
