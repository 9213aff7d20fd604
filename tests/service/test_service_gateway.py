"""The gateway routes' admission, the scanner directory and the trust list, on a real service
(Redis and the memory store)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from gateway_world import add_gateway, call
from service_world import HOSPITAL, PHARMACY, Service, World, running

from verifier import paserk, trust
from verifier.records import Scanner
from verifier.sidecar.directory import Directory

ROUTES = [
    ("GET", "/v1/gateway/scanners"),
    ("GET", "/v1/trust-list"),
    ("POST", "/v1/reconcile"),
]


@pytest.fixture(params=["redis", "memory"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("redis_url")


def run(world: World, url: str, scenario: Callable[[Service], Awaitable[None]]) -> None:
    async def main() -> None:
        async with running(world, url) as svc:
            await scenario(svc)

    asyncio.run(main())


def test_the_directory_lists_the_gateways_institution_only(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        credential, _ = await add_gateway(svc, HOSPITAL)
        store = svc.runtime.store
        status, doc, headers = await call(svc, "GET", "/v1/gateway/scanners", credential)
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        assert doc["institution"] == {
            "id": HOSPITAL,
            "name": "City Hospital",
            "enabled": True,
            "cards": ["mi-voucher", "ss-ecard"],
        }
        own = await store.get_scanner(world.scanner_ids[HOSPITAL])
        assert doc["scanners"] == [{"id": own.id, "secret_hash": own.secret_hash, "revoked": False}]
        # A scanner revoked (and one added) at the centre is in the next answer.
        await store.put_scanner(Scanner(own.id, HOSPITAL, own.secret_hash, revoked=True))
        await store.put_scanner(Scanner("s-000000000001", HOSPITAL, "ab" * 32))
        _, doc, _ = await call(svc, "GET", "/v1/gateway/scanners", credential)
        assert {s["id"]: s["revoked"] for s in doc["scanners"]} == {
            own.id: True,
            "s-000000000001": False,
        }
        assert world.scanner_ids[PHARMACY] not in str(doc)
        # What a sidecar reads it with.
        directory = Directory.from_json(doc)
        assert directory.institution is not None and directory.institution.id == HOSPITAL
        assert set(directory.scanners) == {own.id, "s-000000000001"}

    run(world, store_url, scenario)


def test_the_trust_list_is_served_byte_for_byte(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        credential, _ = await add_gateway(svc, PHARMACY)
        status, body, headers = await call(svc, "GET", "/v1/trust-list", credential)
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert body == (world.dir / "trust.paseto").read_bytes()
        root = paserk.public_from_paserk((world.dir / "root.public").read_text())
        assert trust.load(body.decode(), root, time.time()).version == 1
        # A newer list, once the service has loaded it, is what gateways get.
        world.write_trust(version=2)
        assert svc.runtime.trust.reload()
        _, body, _ = await call(svc, "GET", "/v1/trust-list", credential)
        assert trust.load(body.decode(), root, time.time()).version == 2

    run(world, store_url, scenario)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_gateway_routes_need_a_gateway_credential(tmp_path, store_url, method, path):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        credential, gateway = await add_gateway(svc, HOSPITAL)
        gateway_id = credential.split(".")[0]
        wrong = f"{gateway_id}.{'A' * 43}"
        body = {"items": [{"token": "x"}]}
        for bad in (
            None,
            "garbage",
            world.credentials[HOSPITAL],
            wrong,
            "g-000000000000." + "A" * 43,
        ):
            status, doc, headers = await call(svc, method, path, bad, json=body)
            assert (status, doc["error"]) == (401, "unauthorized"), bad
            assert headers["WWW-Authenticate"] == 'Bearer realm="verifier"'
        # Revoked: refused on every route.
        await svc.runtime.store.put_gateway(
            type(gateway)(gateway.id, gateway.institution, gateway.secret_hash, revoked=True)
        )
        status, doc, _ = await call(svc, method, path, credential, json=body)
        assert (status, doc["error"]) == (403, "gateway_revoked")
        other = "PUT" if method == "GET" else "GET"
        status, doc, _ = await call(svc, other, path, credential)
        assert (status, doc["error"]) == (405, "method_not_allowed")

    run(world, store_url, scenario)


def test_the_store_failing_is_a_503_and_one_outage_in_the_log(tmp_path, caplog):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        credential, _ = await add_gateway(svc, HOSPITAL)
        await svc.runtime.store.close()
        for method, path in ROUTES:
            status, doc, headers = await call(svc, method, path, credential, json={"items": []})
            assert (status, doc["error"]) == (503, "store_unavailable")
            assert headers["Retry-After"] == "1"
        assert svc.runtime.metrics.store_errors == len(ROUTES)

    with caplog.at_level(logging.INFO, logger="verifier.store"):
        run(world, "memory://", scenario)
    # Only the gateway routes met the outage; it is logged all the same, once.
    events = [getattr(r, "event_fields", {}).get("event") for r in caplog.records]
    assert events.count("store_down") == 1, events
