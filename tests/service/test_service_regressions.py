"""One test per defect found in the service's request path (like pyjwt's test_advisory.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from redis_server import RedisServer
from service_world import HOSPITAL, World, running
from test_service_fastpath import port_of, req, verify_req, whole_exchange

from verifier.service.pipeline import Pipeline
from verifier.store import MemoryStore
from verifier.store.keys import holder_key

# A holder record another tool wrote in a shape the records codec refuses.
BAD_RECORDS = {
    "unknown scheme": {"scheme": "nope"},
    "negative balance": {"balance_fen": -100},
    "unmasked ID number": {"id_masked": "11010519491231002X"},
}
GOOD = {
    "sub": "alice",
    "status": "active",
    "scheme": "employee",
    "region": "110101",
    "balance_fen": 120000,
    "physical_card": "active",
    "name_masked": "张*丰",
    "id_masked": "1101**********002X",
}


async def _unreadable_record_scenario(
    world: World, store_url: str, plant: Any, store: Any = None
) -> None:
    async with running(world, store_url, store) as svc:
        await plant(svc)
        token = world.token("alice")
        status, first = await svc.verify(token)
        assert status == 200
        assert (first["valid"], first["covered"], first["reason"]) == (
            True,
            False,
            "record_unreadable",
        )
        assert first["card"]["type"] == "mi-voucher" and "holder" not in first
        # The token was genuine and its nonce is spent: a rescan is a replay, not a 500.
        status, again = await svc.verify(token)
        assert (status, again["reason"]) == (200, "replayed")
        async with svc.http.get(svc.url + "/metrics") as resp:
            text = await resp.text()
        assert "verifier_records_unreadable_total 1" in text
        assert 'verifier_verdicts_total{reason="record_unreadable"} 1' in text


@pytest.mark.parametrize("change", BAD_RECORDS.values(), ids=list(BAD_RECORDS))
def test_unreadable_holder_record_on_redis_is_record_unreadable_not_500(
    tmp_path, redis_server: RedisServer, redis_url, caplog, change
):
    world = World(tmp_path)

    async def plant(svc: Any) -> None:
        client = redis_server.client()
        try:
            client.set(holder_key("alice"), orjson.dumps({**GOOD, **change}))
        finally:
            client.close()

    with caplog.at_level(logging.WARNING, logger="verifier.verify"):
        asyncio.run(_unreadable_record_scenario(world, redis_url, plant))
    logged = [r.getMessage() for r in caplog.records if r.name == "verifier.verify"]
    assert len(logged) == 1 and "alice" in logged[0]
    assert "v4.public." not in logged[0] and "11010519491231002X" not in logged[0]


def test_unreadable_holder_record_in_the_memory_store_is_record_unreadable(tmp_path):
    world = World(tmp_path)
    store = MemoryStore()

    async def plant(svc: Any) -> None:
        store.put_raw(holder_key("alice"), orjson.dumps({**GOOD, "scheme": "nope"}))

    asyncio.run(_unreadable_record_scenario(world, "memory://", plant, store))


def test_a_bug_is_the_same_json_500_on_both_framings(tmp_path, redis_url, monkeypatch, caplog):
    """An exception escaping the verdict is a bug: both framings answer it with one JSON 500,
    and the log has the traceback (the response never has internals)."""
    world = World(tmp_path)

    async def broken(self: Pipeline, *args: Any) -> dict[str, Any]:
        raise RuntimeError("internal detail /srv/secret-path")

    monkeypatch.setattr(Pipeline, "verify", broken)

    async def scenario() -> tuple[bytes, bytes, bytes]:
        async with running(world, redis_url, fast_path=False) as plain:
            async with running(world, redis_url) as fast:
                raw = verify_req(world, "alice", "Connection: close")
                via_aiohttp = await whole_exchange(port_of(plain), raw)
                via_fast_path = await whole_exchange(port_of(fast), raw)
                batch = req(
                    orjson.dumps({"items": [{"token": world.token("bob")}]}),
                    "Content-Type: application/json",
                    f"Authorization: Bearer {world.credentials[HOSPITAL]}",
                    "Connection: close",
                    line="POST /v1/verify/batch HTTP/1.1",
                )
                via_batch = await whole_exchange(port_of(fast), batch)
        return via_aiohttp, via_fast_path, via_batch

    with caplog.at_level(logging.ERROR, logger="verifier.http"):
        via_aiohttp, via_fast_path, via_batch = asyncio.run(scenario())
    assert via_fast_path == via_aiohttp
    for answer in (via_fast_path, via_batch):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 500 ")
        assert b"content-type: application/json" in head.lower()
        assert orjson.loads(body) == {
            "error": "internal_error",
            "message": "internal error; see the log",
        }
        assert b"secret-path" not in answer
    bugs = [r for r in caplog.records if r.name == "verifier.http" and r.exc_info]
    assert len(bugs) == 3  # each one logged with its traceback


def test_one_token_verifier_per_loaded_trust_list(tmp_path, redis_url):
    """The pipeline builds its TokenVerifier once per trust list, and a new one on reload."""
    world = World(tmp_path)

    async def scenario() -> None:
        async with running(world, redis_url) as svc:
            pipeline = svc.runtime.pipeline
            assert (await svc.verify(world.token("alice")))[1]["reason"] == "ok"
            first = pipeline.token_verifier(svc.runtime.trust.current)
            assert (await svc.verify(world.token("bob")))[1]["reason"] == "ok"
            assert pipeline.token_verifier(svc.runtime.trust.current) is first
            world.write_trust(version=2)
            assert svc.runtime.trust.reload()
            assert (await svc.verify(world.token("alice")))[1]["reason"] == "ok"
            second = pipeline.token_verifier(svc.runtime.trust.current)
            assert second is not first and second.trust.version == 2

    asyncio.run(scenario())
