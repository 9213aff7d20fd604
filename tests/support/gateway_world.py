"""Gateways in a service world: credentials issued on the running service's store, and calls
to the gateway routes (``/v1/gateway/scanners``, ``/v1/trust-list``, ``/v1/reconcile``)."""

from __future__ import annotations

from typing import Any

import orjson
from service_world import Service

from verifier.credentials import new_gateway_credential
from verifier.records import Gateway


async def add_gateway(svc: Service, institution: str) -> tuple[str, Gateway]:
    """A new gateway of ``institution``: (credential, record)."""
    credential, gateway = new_gateway_credential(institution)
    await svc.runtime.store.put_gateway(gateway)
    return credential, gateway


async def call(
    svc: Service,
    method: str,
    path: str,
    credential: str | None,
    json: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """(status, body as JSON if it is JSON else bytes, headers)."""
    h = {"Authorization": f"Bearer {credential}"} if credential else {}
    h.update(headers or {})
    async with svc.http.request(method, svc.url + path, json=json, data=data, headers=h) as resp:
        raw = await resp.read()
        body: Any = raw
        if resp.content_type == "application/json":
            body = orjson.loads(raw)
        return resp.status, body, dict(resp.headers)


async def reconcile(svc: Service, credential: str, *items: dict[str, Any]) -> list[dict[str, Any]]:
    """The results of ``POST /v1/reconcile`` for ``items`` (asserting a 200)."""
    status, body, _ = await call(svc, "POST", "/v1/reconcile", credential, {"items": list(items)})
    assert status == 200, body
    results = body["results"]
    assert isinstance(results, list) and len(results) == len(items)
    return results
