"""End-to-end: the real HTTP app against a real redis-server (and the embedded store)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from service_world import CLOSED, HOSPITAL, PHARMACY, Service, World, running

from verifier.records import Scanner


@pytest.fixture(params=["redis", "memory"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("redis_url")


def run(
    world: World, url: str, scenario: Callable[[Service], Awaitable[None]], **extra: Any
) -> None:
    async def main() -> None:
        async with running(world, url, **extra) as svc:
            await scenario(svc)

    asyncio.run(main())


def test_valid_then_replayed_with_masked_holder(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        token = world.token("alice")
        status, v = await svc.verify(token)
        assert status == 200
        assert (v["valid"], v["reason"], v["covered"]) == (True, "ok", True)
        assert v["card"]["type"] == "mi-voucher" and v["card"]["issuer"] == "nhsa"
        assert v["holder"] == {"id": "alice", "name": "张*丰", "id_number": "1101**********002X"}
        assert v["coverage"]["status"] == "active" and v["coverage"]["account_balance"] == "1200.00"
        assert v["coverage"]["benefit_ratios"]["inpatient"] == "90%"
        assert "verify;dur=" in v["_headers"]["Server-Timing"]
        status, again = await svc.verify(token)
        assert (status, again["valid"], again["reason"], again["covered"]) == (
            200,
            False,
            "replayed",
            False,
        )
        assert "holder" not in again and "coverage" not in again  # a replay learns nothing
        # The same token from another scanner is just as replayed.
        _, other = await svc.verify(token, inst=PHARMACY)
        assert other["reason"] == "replayed"

    run(world, store_url, scenario)


def test_retry_with_same_request_id_gets_original_verdict(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        token = world.token("alice")
        body = {"token": token, "request_id": "r-1", "service": "inpatient", "amount": "1000.00"}
        _, first = await svc.verify(json=body)
        _, retry = await svc.verify(json=body)
        strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_")}  # noqa: E731
        assert first["valid"] and first["settlement"]["fund"] == "900.00"
        assert strip(retry) == strip(first)
        # Another request id, or no request id, is a second presentation: replayed.
        _, other = await svc.verify(json={**body, "request_id": "r-2"})
        assert other["reason"] == "replayed"
        _, bare = await svc.verify(token)
        assert bare["reason"] == "replayed"
        # Same request id from another scanner: replayed too.
        _, foreign = await svc.verify(json=body, inst=PHARMACY)
        assert foreign["reason"] == "replayed"
        # The Idempotency-Key header works like request_id.
        t2 = world.token("bob")
        _, a = await svc.verify(
            data=t2, headers={"Content-Type": "text/plain", "Idempotency-Key": "k-9"}
        )
        _, b = await svc.verify(
            data=t2, headers={"Content-Type": "text/plain", "Idempotency-Key": "k-9"}
        )
        assert a["reason"] == b["reason"] == "ok" and b["request_id"] == "k-9"

    run(world, store_url, scenario)


@pytest.mark.parametrize(
    ("sub", "card", "reason", "has_holder"),
    [
        ("carol", "mi-voucher", "coverage_suspended", True),
        ("dave", "mi-voucher", "coverage_terminated", True),
        ("nobody", "mi-voucher", "not_enrolled", False),
        ("erin", "ss-ecard", "physical_card_inactive", True),  # lost physical card
        ("erin", "mi-voucher", "ok", True),  # the voucher needs no physical card
        ("alice", "ss-ecard", "ok", True),
    ],
)
def test_coverage_states(tmp_path, store_url, sub, card, reason, has_holder):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        _, v = await svc.verify(world.token(sub, card=card))
        assert v["valid"] is True and v["reason"] == reason
        assert v["covered"] is (reason == "ok")
        assert ("holder" in v) is has_holder
        _, again = await svc.verify(world.token(sub, card=card, jti=None))
        assert again["reason"] == reason  # fresh token, same decision

    run(world, store_url, scenario)


def test_institution_not_enabled_does_not_consume_the_nonce(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        token = world.token("alice", card="ss-ecard")
        _, v = await svc.verify(token, inst=PHARMACY)  # pharmacy: vouchers only
        assert (v["valid"], v["reason"]) == (False, "institution_not_enabled")
        _, closed = await svc.verify(world.token("alice"), inst=CLOSED)
        assert closed["reason"] == "institution_not_enabled"
        _, ok = await svc.verify(token, inst=HOSPITAL)  # still unused
        assert ok["reason"] == "ok"

    run(world, store_url, scenario)


def test_scanner_credentials(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        token = world.token("alice")
        status, v = await svc.verify(token, inst="")
        assert (
            status == 401
            and v["error"] == "unauthorized"
            and "Bearer" in v["_headers"]["WWW-Authenticate"]
        )
        good = world.credentials[HOSPITAL]
        wrong = good[:-1] + ("A" if good[-1] != "A" else "B")
        for bad in (wrong, "s-000000000000." + "x" * 43, "garbage", good + "x"):
            status, v = await svc.verify(token, inst="", headers={"Authorization": f"Bearer {bad}"})
            assert status == 401 and v["error"] == "unauthorized", bad
        status, v = await svc.verify(token, inst="", headers={"Authorization": f"Basic {good}"})
        assert status == 401
        sid = world.scanner_ids[HOSPITAL]
        old = await svc.runtime.store.get_scanner(sid)
        await svc.runtime.store.put_scanner(
            Scanner(old.id, old.institution, old.secret_hash, revoked=True)
        )
        status, v = await svc.verify(token)
        assert status == 403 and v["error"] == "scanner_revoked"
        # None of the refused requests consumed the nonce.
        _, ok = await svc.verify(token, inst=PHARMACY)
        assert ok["reason"] == "ok"

    run(world, store_url, scenario)


def test_settlement_and_batch(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        items = [
            {"token": world.token("bob"), "service": "inpatient", "amount": "2000.00"},
            {"token": world.token("alice"), "service": "large-equipment", "amount": "500.00"},
            {"token": "v4.public.nope"},
            {"tok": "x"},
        ]
        items.append(dict(items[0]))  # the same token twice in one batch: one of them replayed
        status, doc = await svc.verify(json={"items": items}, path="/v1/verify/batch")
        assert status == 200
        r = doc["results"]
        assert len(r) == 5
        # Retiree inpatient: fund 95% = 1900, personal 100 of which the balance covers 50.
        reasons = sorted([r[0]["reason"], r[4]["reason"]])
        assert reasons == ["ok", "replayed"]
        paid = r[0] if r[0]["reason"] == "ok" else r[4]
        assert paid["settlement"] == {
            "service": "inpatient",
            "amount": "2000.00",
            "fund": "1900.00",
            "personal_account": "50.00",
            "out_of_pocket": "50.00",
        }
        assert r[1]["settlement"]["fund"] == "400.00"
        assert r[2]["reason"] == "malformed"
        assert r[3]["error"] == "malformed_request"
        status, doc = await svc.verify(json={"items": []}, path="/v1/verify/batch")
        assert status == 400
        status, doc = await svc.verify(
            json={"items": [{"token": "x"}] * 257}, path="/v1/verify/batch"
        )
        assert status == 400

    run(world, store_url, scenario)


def test_health_ready_metrics_openapi(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        await svc.verify(world.token("alice"))
        await svc.verify(world.token("alice", iat=time.time() - 1000))
        async with svc.http.get(svc.url + "/healthz") as r:
            assert r.status == 200
        async with svc.http.get(svc.url + "/readyz") as r:
            assert r.status == 200 and (await r.json())["ready"] is True
        async with svc.http.get(svc.url + "/metrics") as r:
            text = await r.text()
        assert 'verifier_verdicts_total{reason="ok"} 1' in text
        assert 'verifier_verdicts_total{reason="expired"} 1' in text
        assert "verifier_request_seconds_bucket" in text
        assert "verifier_trust_list_version 1" in text
        assert f'verifier_token_age_seconds_count{{institution="{HOSPITAL}"}} 1' in text
        async with svc.http.get(svc.url + "/openapi.json") as r:
            assert r.status == 200 and (await r.json())["openapi"].startswith("3.")
        async with svc.http.get(svc.url + "/nope") as r:
            assert r.status == 404 and (await r.json())["error"] == "not_found"
        async with svc.http.get(svc.url + "/v1/verify") as r:
            assert r.status == 405 and (await r.json())["error"] == "method_not_allowed"

    run(world, store_url, scenario)


def test_trust_list_reload_and_expiry(tmp_path, store_url):
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        watch = svc.runtime.trust
        # Rotation: a new list without the nhsa key. Until reloaded, nhsa tokens still verify.
        keys = world.issuer_keys()
        del keys[world.nhsa.kid]
        world.write_trust(version=2, keys=keys)
        assert watch.changed_on_disk()
        assert watch.reload() is True and watch.current.version == 2
        _, v = await svc.verify(world.token("alice"))
        assert v["reason"] == "unknown_key"
        # A downgrade (older version) and a badly signed file are refused; v2 stays.
        world.write_trust(version=1)
        assert watch.reload() is False and watch.current.version == 2
        (tmp_path / "trust.paseto").write_text("v4.public.garbage")
        assert watch.reload() is False and watch.current.version == 2
        # An expired list in force makes the service unready and verification fail closed.
        world.write_trust(version=3, ttl=2)  # times are whole seconds: expires in 1-2 s
        assert watch.reload() is True
        await asyncio.sleep(max(0.0, watch.current.exp - time.time()) + 0.05)
        status, v = await svc.verify(world.token("alice", card="ss-ecard"))
        assert status == 503 and v["error"] == "trust_list_expired" and v["_headers"]["Retry-After"]
        async with svc.http.get(svc.url + "/readyz") as r:
            assert r.status == 503

    run(world, store_url, scenario)


def test_answers_follow_the_holder_record_and_never_leak_into_each_other(tmp_path, store_url):
    """The coverage views are computed once per holder record and shared: a changed record
    gives new views, and one answer's request_id or settlement never shows up in another."""
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        store = svc.runtime.store
        _, first = await svc.verify(world.token("alice"))
        assert first["coverage"]["account_balance"] == "1200.00"
        body = {
            "token": world.token("alice"),
            "request_id": "r-9",
            "service": "inpatient",
            "amount": "100.00",
        }
        _, settled = await svc.verify(json=body)
        assert settled["request_id"] == "r-9" and settled["settlement"]["fund"] == "90.00"
        _, plain = await svc.verify(world.token("alice"))
        assert "request_id" not in plain and "settlement" not in plain
        assert plain["coverage"] == first["coverage"] and plain["holder"] == first["holder"]
        alice = await store.get_holder("alice")
        await store.put_holder(alice._replace(balance_fen=5, status="suspended"))
        _, changed = await svc.verify(world.token("alice"))
        assert changed["reason"] == "coverage_suspended"
        assert changed["coverage"]["account_balance"] == "0.05"
        assert changed["coverage"]["status"] == "suspended"
        await store.put_holder(alice)
        _, back = await svc.verify(world.token("alice"))
        assert back["reason"] == "ok" and back["coverage"] == first["coverage"]

    run(world, store_url, scenario)
