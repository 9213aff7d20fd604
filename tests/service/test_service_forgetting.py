"""Forgetting means reject: after a Redis node may have lost claims, tokens issued before the
detection are ``reissue_required`` (none accepted twice), fresh ones are served at once.

Real servers only: the session's redis-server, restarted empty and flushed (the cluster's
failover: tests/store/test_store_forgetting_cluster.py).
"""

from __future__ import annotations

import asyncio
import math
import time

import orjson
from redis_server import RedisServer
from service_world import Service, World, running

from verifier.store.identity import CHECK_INTERVAL_S
from verifier.store.redis import RedisStore

LIFETIME = 3  # VERIFIER_MAX_LIFETIME of these services: the refusal lasts this long (+ leeway)


async def decided(svc: Service, token: str, timeout: float = 10.0) -> str:
    """The verdict's reason, presenting again while the service answers 503 (store coming back)."""
    deadline = time.monotonic() + timeout
    while True:
        status, doc = await svc.verify(token)
        if status != 503 or time.monotonic() > deadline:
            assert status == 200, doc
            return str(doc["reason"])
        await asyncio.sleep(0.05)


async def metrics_text(svc: Service) -> str:
    async with svc.http.get(svc.url + "/metrics") as resp:
        return await resp.text()


def test_redis_restarted_empty_refuses_earlier_tokens_until_they_expire(
    tmp_path, redis_server: RedisServer, redis_url: str
) -> None:
    world = World(tmp_path)

    async def main() -> None:
        async with running(world, redis_url, max_lifetime=LIFETIME, exp_leeway=0) as svc:
            used = world.token("alice", ttl=LIFETIME)
            unused = world.token("bob", ttl=LIFETIME)
            assert await decided(svc, used) == "ok"
            assert await decided(svc, used) == "replayed"
            assert svc.runtime.store.forgotten_before is None

            await asyncio.to_thread(redis_server.restart)  # no persistence: empty
            loader = RedisStore(redis_server.url)
            try:
                await world.seed(loader)  # an operator re-loads the records
            finally:
                await loader.close()

            # Both were issued before the loss: neither is accepted, the used one not again.
            assert await decided(svc, used) == "reissue_required"
            assert await decided(svc, unused) == "reissue_required"
            assert await decided(svc, used) == "reissue_required"
            detected = svc.runtime.store.forgotten_before
            assert detected is not None and detected <= time.time()
            # A fresh code is served at once, and only once. (iat is in whole seconds: a code
            # issued in the second of the detection could be older than it, so it is refused.)
            await asyncio.sleep(math.floor(detected) + 1 - time.time())
            fresh = world.token("alice", ttl=LIFETIME)
            assert await decided(svc, fresh) == "ok"
            assert await decided(svc, fresh) == "replayed"
            text = await metrics_text(svc)
            assert "verifier_store_forgot_at_seconds{node=" in text
            assert 'why="restarted (run_id changed)"' in text
            assert 'verifier_verdicts_total{reason="reissue_required"} 3' in text

            # Once a lifetime has passed, the old tokens are simply expired; service is normal.
            await asyncio.sleep(max(0.0, detected + LIFETIME + 1 - time.time()))
            assert await decided(svc, used) == "expired"
            late = world.token("bob", ttl=LIFETIME)
            assert await decided(svc, late) == "ok"

    asyncio.run(main())


def test_flushall_is_detected_at_the_next_check(
    tmp_path, redis_server: RedisServer, redis_url: str
) -> None:
    world = World(tmp_path)

    async def main() -> None:
        async with running(world, redis_url, max_lifetime=LIFETIME, exp_leeway=0) as svc:
            used = world.token("alice", ttl=LIFETIME)
            assert await decided(svc, used) == "ok"
            client = redis_server.client()
            try:
                client.flushall()
            finally:
                client.close()
            await world.seed(svc.runtime.store)
            await asyncio.sleep(CHECK_INTERVAL_S + 0.2)
            assert await decided(svc, used) == "reissue_required"
            [found] = svc.runtime.store.forgettings
            assert found.why == "flushed (marker key gone)"
            await asyncio.sleep(math.floor(found.at) + 1 - time.time())
            assert await decided(svc, world.token("alice", ttl=LIFETIME)) == "ok"

    asyncio.run(main())


def test_a_verifier_started_after_a_detection_learns_it_from_redis(redis_url: str) -> None:
    async def main() -> None:
        first = RedisStore(redis_url)
        later = RedisStore(redis_url)
        try:
            await first.ping()
            client_flush = RedisStore(redis_url)
            await client_flush._command("FLUSHALL", "FLUSHALL")  # as an operator would
            await client_flush.close()
            await asyncio.sleep(CHECK_INTERVAL_S + 0.1)
            await first.claim("alice", "j" * 16, "s1", None, 10_000)  # runs the due check
            assert first.forgotten_before is not None
            await asyncio.sleep(0.1)  # the detection is written to the node
            await later.ping()
            assert later.forgotten_before is not None
            assert 0 <= later.forgotten_before - first.forgotten_before < 0.001
        finally:
            await first.close()
            await later.close()

    asyncio.run(main())


def test_memory_store_never_forgets(tmp_path) -> None:
    world = World(tmp_path)

    async def main() -> None:
        async with running(world, "memory://") as svc:
            assert svc.runtime.store.forgotten_before is None
            assert orjson.dumps(svc.runtime.store.forgettings) == b"[]"

    asyncio.run(main())
