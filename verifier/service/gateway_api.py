"""The gateway API, HTTP-neutral: what a gateway sidecar asks of the centre.

Every route takes a gateway credential (``Authorization: Bearer <gateway id>.<secret>``, from
``verifier gateways add``; 401 ``unauthorized``, 403 ``gateway_revoked``) and acts for the
gateway's institution only:

- ``GET /v1/gateway/scanners``: the institution's record and its scanner directory (ids,
  secret hashes, revoked flags), so that the sidecar can authenticate scanners offline;
- ``GET /v1/trust-list``: the signed trust list, byte for byte as the centre loaded it (the
  sidecar checks it against its own root key);
- ``POST /v1/reconcile``: the sidecar's offline acceptances, each ``confirmed``,
  ``conflict`` or ``rejected`` (:mod:`verifier.service.reconcile`).

The routes exist on the central service only: another runtime (a sidecar's) answers 404.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import orjson

from verifier import errors as E
from verifier.credentials import hash_secret, parse_gateway_bearer
from verifier.errors import RequestRefused, StoreUnavailable
from verifier.records import Gateway
from verifier.service.endpoint import Answer, Endpoint, Request
from verifier.service.pipeline import Pipeline
from verifier.service.reconcile import Reconciler
from verifier.service.requests import JSON, MAX_BATCH_ITEMS, loads

_SIGNED_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


class GatewayApi:
    def __init__(self, endpoint: Endpoint) -> None:
        self.ep = endpoint
        self.rt = endpoint.rt
        pipeline = self.rt.pipeline
        self.reconciler = (
            Reconciler(pipeline, self.rt.store.reconcile_window_ms / 1000)
            if isinstance(pipeline, Pipeline)
            else None
        )

    async def _admit(self, authorization: str | None) -> Gateway:
        """The gateway behind a bearer header; RequestRefused or StoreUnavailable."""
        parsed = parse_gateway_bearer(authorization)
        if parsed is None:
            raise RequestRefused(E.UNAUTHORIZED, "missing or malformed gateway credential")
        gateway = await self.rt.store.get_gateway(parsed[0])
        if gateway is None or not hmac.compare_digest(gateway.secret_hash, hash_secret(parsed[1])):
            raise RequestRefused(E.UNAUTHORIZED, "unknown gateway credential")
        if gateway.revoked:
            raise RequestRefused(E.GATEWAY_REVOKED, "this gateway credential has been revoked")
        return gateway

    def _fresh_trust(self) -> None:
        if not self.rt.trust.current.is_fresh(time.time()):
            raise RequestRefused(E.TRUST_LIST_EXPIRED, "the trust list has expired")

    async def scanners(self, req: Request) -> Answer:
        """``GET /v1/gateway/scanners``: ``{"institution": {...} | null, "scanners": [...]}``."""
        if self.reconciler is None:
            return self.ep.not_found()
        try:
            gateway = await self._admit(req.authorization)
            inst = await self.rt.store.get_institution(gateway.institution)
            scanners = await self.rt.store.scanners_of(gateway.institution)
        except (RequestRefused, StoreUnavailable) as err:
            return self.ep.refusal(err)
        body: dict[str, Any] = {
            "institution": None
            if inst is None
            else {
                "id": inst.id,
                "name": inst.name,
                "enabled": inst.enabled,
                "cards": sorted(inst.cards),
            },
            "scanners": [
                {"id": s.id, "secret_hash": s.secret_hash, "revoked": s.revoked} for s in scanners
            ],
        }
        return Answer(200, orjson.dumps(body))

    async def trust_list(self, req: Request) -> Answer:
        """``GET /v1/trust-list``: the signed list as loaded, ``text/plain``."""
        if self.reconciler is None:
            return self.ep.not_found()
        try:
            await self._admit(req.authorization)
            self._fresh_trust()
        except (RequestRefused, StoreUnavailable) as err:
            return self.ep.refusal(err)
        return Answer(200, self.rt.trust.signed, _SIGNED_TEXT)

    async def reconcile(self, req: Request) -> Answer:
        """``POST /v1/reconcile``: ``{"items": [1..256]}`` in, ``{"results": [...]}`` out,
        one result per item, in order."""
        if self.reconciler is None:
            return self.ep.not_found()
        limit = self.rt.max_batch_bytes
        try:
            if req.content_length is not None and req.content_length > limit:
                raise RequestRefused(E.BODY_TOO_LARGE, f"body over {limit} bytes")
            gateway = await self._admit(req.authorization)
            if req.content_type != JSON:
                raise RequestRefused(E.UNSUPPORTED_MEDIA_TYPE, "reconcile takes application/json")
            doc = loads(await req.read_body(limit))
            items = doc.get("items") if type(doc) is dict and len(doc) == 1 else None
            if type(items) is not list or not 1 <= len(items) <= MAX_BATCH_ITEMS:
                raise RequestRefused(
                    E.MALFORMED_REQUEST, f'body must be {{"items": [1..{MAX_BATCH_ITEMS} items]}}'
                )
            self._fresh_trust()
            inst = await self.rt.store.get_institution(gateway.institution)
            results = await self.reconciler.reconcile(gateway, inst, items, time.time())
        except (RequestRefused, StoreUnavailable) as err:
            return self.ep.refusal(err)
        return Answer(200, orjson.dumps({"results": results}))
