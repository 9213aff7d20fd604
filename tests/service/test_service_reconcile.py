"""POST /v1/reconcile on a real service (Redis and the memory store): every outcome, the
conflicts kept for review, idempotence, and the refusals of a whole request."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from gateway_world import add_gateway, call, reconcile
from service_world import CLOSED, HOSPITAL, PHARMACY, Service, World, running

from verifier import rfc3339
from verifier.records import Use

HOUR = 3600.0


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


def _payload(token: str) -> bytes:
    body = token.split(".")[2]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _jti(token: str) -> str:
    return str(orjson.loads(_payload(token)[:-64])["jti"])


def forge(token: str) -> str:
    """The token with one bit of its signature flipped."""
    raw = bytearray(_payload(token))
    raw[-1] ^= 1
    parts = token.split(".")
    parts[2] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return ".".join(parts)


def item(world: World, token: str, inst: str = HOSPITAL, **extra: Any) -> dict[str, Any]:
    out = {
        "token": token,
        "request_id": extra.pop("request_id", "r-" + _jti(token)[:12]),
        "scanner": world.scanner_ids[inst],
        "accepted_at": rfc3339.format(time.time() - 5),
    }
    return {**out, **extra}


def test_an_unused_token_is_confirmed_with_coverage_as_of_now(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        gw, _ = await add_gateway(svc, HOSPITAL)
        # Accepted an hour ago: long expired now, valid then.
        then = time.time() - HOUR
        old = world.token("alice", iat=then - 10, ttl=60)
        fresh = world.token("bob")
        unknown = world.token("nobody")
        paid = {"service": "inpatient", "amount": "1000.00"}
        results = await reconcile(
            svc,
            gw,
            item(world, old, accepted_at=rfc3339.format(then), **paid),
            item(world, fresh, accepted_at=time.time() - 1.5),  # Unix seconds work too
            item(world, unknown),
        )
        a, b, c = results
        assert (a["outcome"], a["request_id"]) == ("confirmed", "r-" + _jti(old)[:12])
        v = a["verdict"]
        assert (v["valid"], v["reason"], v["covered"]) == (True, "ok", True)
        assert v["holder"]["id"] == "alice" and v["coverage"]["status"] == "active"
        assert v["settlement"]["fund"] == "900.00"
        assert (b["outcome"], b["verdict"]["reason"]) == ("confirmed", "ok")
        assert (c["outcome"], c["verdict"]["reason"], c["verdict"]["valid"]) == (
            "confirmed",
            "not_enrolled",
            True,
        )
        # The token is spent at the centre now.
        _, online = await svc.verify(fresh)
        assert online["reason"] == "replayed"

    run(world, store_url, scenario)


def test_a_token_used_at_the_centre_first_is_a_conflict_kept_for_review(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        gw, gateway = await add_gateway(svc, HOSPITAL)
        token = world.token("alice")
        before = time.time()
        _, online = await svc.verify(json={"token": token, "request_id": "on-1"}, inst=PHARMACY)
        assert online["reason"] == "ok"
        offline = item(world, token, request_id="off-1")
        [result] = await reconcile(svc, gw, offline)
        assert result == {"request_id": "off-1", "outcome": "conflict"}
        [again] = await reconcile(svc, gw, offline)  # the same item: the same outcome
        assert again == result
        [conflict] = await svc.runtime.store.conflicts()
        assert (conflict.holder, conflict.nonce) == ("alice", _jti(token))
        first = conflict.first
        assert (first.institution, first.gateway, first.scanner, first.request_id) == (
            PHARMACY,
            None,
            world.scanner_ids[PHARMACY],
            "on-1",
        )
        assert first.at is not None and before - 1 <= first.at <= time.time() + 1
        accepted_at = rfc3339.parse(offline["accepted_at"])
        assert conflict.second == Use(
            world.scanner_ids[HOSPITAL], HOSPITAL, gateway.id, "off-1", accepted_at
        )

    run(world, store_url, scenario)


def test_a_token_reconciled_through_another_gateway_first_is_a_conflict(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        pharmacy_gw, pharmacy = await add_gateway(svc, PHARMACY)
        hospital_gw, hospital = await add_gateway(svc, HOSPITAL)
        token = world.token("bob", iat=time.time() - 2 * HOUR)  # expired by now
        at = time.time() - 2 * HOUR + 5
        [first] = await reconcile(svc, pharmacy_gw, item(world, token, PHARMACY, accepted_at=at))
        [second] = await reconcile(svc, hospital_gw, item(world, token, accepted_at=at + 60))
        assert (first["outcome"], second["outcome"]) == ("confirmed", "conflict")
        [conflict] = await svc.runtime.store.conflicts()
        assert (conflict.first.gateway, conflict.first.institution) == (pharmacy.id, PHARMACY)
        assert conflict.first.at == pytest.approx(at, abs=0.001)
        assert (conflict.second.gateway, conflict.second.institution) == (hospital.id, HOSPITAL)
        # The first gateway sending its item again is still confirmed.
        [repeat] = await reconcile(svc, pharmacy_gw, item(world, token, PHARMACY, accepted_at=at))
        assert repeat["outcome"] == "confirmed"
        assert len(await svc.runtime.store.conflicts()) == 1

    run(world, store_url, scenario)


def test_a_forward_that_timed_out_then_accepted_offline_is_confirmed(tmp_path, store_url):
    """The centre claimed the nonce for the forward, whose answer the gateway never saw; the
    gateway accepted the scan offline with the same scanner and request id."""
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        gw, _ = await add_gateway(svc, HOSPITAL)
        token = world.token("alice")
        await svc.verify(json={"token": token, "request_id": "fwd-1"})
        [result] = await reconcile(svc, gw, item(world, token, request_id="fwd-1"))
        assert (result["outcome"], result["verdict"]["reason"]) == ("confirmed", "ok")
        assert await svc.runtime.store.conflicts() == []

    run(world, store_url, scenario)


def test_rejections(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        gw, _ = await add_gateway(svc, HOSPITAL)
        now = time.time()
        good = world.token("alice")
        stale = world.token("bob", iat=now - HOUR, ttl=60)
        ancient = world.token("bob", iat=now - 73 * HOUR)
        rows = [
            # (item, reason)
            (item(world, forge(good)), "bad_signature"),
            (item(world, stale, accepted_at=now - HOUR + 200), "expired"),  # after exp + leeway
            (item(world, good, accepted_at=now + 60), "accepted_in_future"),
            (item(world, ancient, accepted_at=now - 73 * HOUR + 5), "outside_reconcile_window"),
            (item(world, good, PHARMACY), "foreign_scanner"),  # another institution's
            ({**item(world, good), "scanner": "s-000000000000"}, "foreign_scanner"),  # unknown
            (item(world, world.token("bob", card="ss-ecard", iss="nhsa")), "card_not_allowed"),
            ({**item(world, good), "extra": 1}, "malformed_item"),
            ({"token": good, "scanner": "x", "accepted_at": now}, "malformed_item"),
            ({**item(world, good), "accepted_at": "yesterday"}, "malformed_item"),
            ({**item(world, good), "scanner": "s-0\nx"}, "malformed_item"),
            ("not an object", "malformed_item"),
        ]
        results = await reconcile(svc, gw, *(row for row, _ in rows))
        assert [(r["outcome"], r["reason"]) for r in results] == [
            ("rejected", reason) for _, reason in rows
        ]
        assert results[0]["request_id"] == rows[0][0]["request_id"]
        assert "message" in results[-3] and results[-1]["request_id"] is None
        # Nothing rejected was claimed: the good token still works at the centre.
        _, online = await svc.verify(good)
        assert online["reason"] == "ok"

    run(world, store_url, scenario)


def test_a_disabled_institution_cannot_confirm(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        gw, _ = await add_gateway(svc, CLOSED)
        [result] = await reconcile(svc, gw, item(world, world.token("alice"), CLOSED))
        assert (result["outcome"], result["reason"]) == ("rejected", "institution_not_enabled")

    run(world, store_url, scenario)


def test_whole_requests_refused(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        gw, _ = await add_gateway(svc, HOSPITAL)
        one = item(world, world.token("alice"))
        for body in ({"items": []}, {"items": [one] * 257}, {"items": [one], "more": 1}, [one]):
            status, doc, _ = await call(svc, "POST", "/v1/reconcile", gw, json=body)
            assert (status, doc["error"]) == (400, "malformed_request")
        status, doc, _ = await call(
            svc, "POST", "/v1/reconcile", gw, data=b"{}", headers={"Content-Type": "text/plain"}
        )
        assert (status, doc["error"]) == (415, "unsupported_media_type")
        big = b'{"items": ["' + b"x" * 1_048_576 + b'"]}'
        status, doc, _ = await call(
            svc, "POST", "/v1/reconcile", gw, data=big, headers={"Content-Type": "application/json"}
        )
        assert (status, doc["error"]) == (413, "body_too_large")

    run(world, store_url, scenario)


def test_outcomes_are_counted_in_metrics(tmp_path):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        gw, _ = await add_gateway(svc, HOSPITAL)
        used = world.token("bob")
        await svc.verify(used)
        await reconcile(
            svc,
            gw,
            item(world, world.token("alice")),
            item(world, used),
            item(world, world.token("alice"), PHARMACY),
            item(world, world.token("carol"), PHARMACY),
        )
        async with svc.http.get(svc.url + "/metrics") as resp:
            text = await resp.text()
        assert 'verifier_reconcile_total{outcome="confirmed"} 1' in text
        assert 'verifier_reconcile_total{outcome="conflict"} 1' in text
        assert 'verifier_reconcile_total{outcome="rejected"} 2' in text

    run(world, "memory://", scenario)
