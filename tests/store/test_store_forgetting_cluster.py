"""Forgetting means reject on a Redis Cluster: a master SIGKILLed and failed over to its
replica (the session's 6-node cluster, no persistence) is detected before the promoted replica
acknowledges a claim; a master flushed under a live connection is detected at the next check and
recorded for verifier processes that start later."""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING

from verifier.errors import StoreUnavailable
from verifier.store.cluster import ClusterStore
from verifier.store.identity import CHECK_INTERVAL_S, FORGOTTEN_KEY
from verifier.store.slots import tag_slot

if TYPE_CHECKING:  # imported by pytest_plugins, so that pytest imports it first
    from redis_cluster import RedisCluster

pytest_plugins = ["redis_cluster"]


def test_cluster_master_killed_and_failed_over_is_detected(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    async def main() -> None:
        store = ClusterStore(cluster_url, deadline_ms=200)
        try:
            await store.check_cluster(allow_eviction=False)
            subs = redis_cluster.subs_by_master(1)
            for [sub] in subs.values():
                assert (await store.claim(sub, "a" * 16, "s1", None, 60_000)).outcome == "new"
            assert store.forgotten_before is None
            victim, [sub] = next(iter(subs.items()))
            redis_cluster.kill(victim)
            new_port = await asyncio.to_thread(
                redis_cluster.wait_for_master, tag_slot(sub.encode()), victim
            )
            deadline = time.monotonic() + 20
            while True:  # the store finds the promoted replica by itself
                try:
                    claim = await store.claim(sub, "b" * 16, "s1", None, 60_000)
                    break
                except StoreUnavailable:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
            # Detected before that claim was acknowledged by the promoted replica.
            assert claim.outcome == "new"
            assert store.forgotten_before is not None
            assert any(f.where.endswith(f":{new_port}") for f in store.forgettings)
        finally:
            await store.close()

    asyncio.run(main())


def test_cluster_master_flushed_is_detected_and_recorded_for_later_processes(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    """FLUSHALL on one master, its connections staying up: the next claim there after the
    check interval sees it; the detection is written to every master, so a verifier process
    that starts afterwards refuses the same tokens, even once the flushed master has
    forgotten the record too."""
    subs = redis_cluster.subs_by_master(1)
    victim, [sub] = next(iter(subs.items()))

    async def first_process() -> float:
        store = ClusterStore(cluster_url, deadline_ms=200)
        try:
            await store.check_cluster(allow_eviction=False)
            for [s] in subs.values():
                assert (await store.claim(s, "a" * 16, "s1", None, 60_000)).outcome == "new"
            with redis_cluster.node(victim).client() as c:
                c.flushall()
            flushed = time.time()
            await asyncio.sleep(CHECK_INTERVAL_S + 0.1)
            claim = await store.claim(sub, "b" * 16, "s1", None, 60_000)
            assert claim.outcome == "new"  # a fresh nonce; the verdict is the pipeline's
            at = store.forgotten_before
            assert at is not None and flushed <= at <= time.time()
            [found] = store.forgettings
            assert found.where.endswith(f":{victim}") and "flush" in found.why
            for _ in range(100):  # recorded on every master in the background
                if len(_recorded(redis_cluster)) == len(subs):
                    break
                await asyncio.sleep(0.02)
            return at
        finally:
            await store.close()

    at = asyncio.run(first_process())
    recorded = _recorded(redis_cluster)
    assert len(recorded) == len(subs) and all(v == math.ceil(at * 1000) for v in recorded)
    with redis_cluster.node(victim).client() as c:
        c.flushall()  # the victim forgets its copy; the others keep theirs

    async def later_process() -> float | None:
        store = ClusterStore(cluster_url, deadline_ms=200)
        try:
            await store.check_cluster(allow_eviction=False)
            return store.forgotten_before
        finally:
            await store.close()

    assert asyncio.run(later_process()) == math.ceil(at * 1000) / 1000


def test_cluster_without_a_flush_detects_nothing(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    """The periodic check of a cluster that keeps its data detects nothing."""
    subs = [s for [s] in redis_cluster.subs_by_master(1).values()]

    async def main() -> None:
        store = ClusterStore(cluster_url, deadline_ms=200)
        try:
            await store.check_cluster(allow_eviction=False)
            for round_ in range(3):
                for s in subs:
                    claim = await store.claim(s, f"{round_:016d}", "s1", None, 60_000)
                    assert claim.outcome == "new"
                await asyncio.sleep(CHECK_INTERVAL_S / 2 + 0.05)
            assert store.forgotten_before is None and store.forgettings == []
        finally:
            await store.close()

    asyncio.run(main())
    assert _recorded(redis_cluster) == []


def _recorded(cluster: RedisCluster) -> list[int]:
    """The detection times (ms) recorded on the masters."""
    found = []
    for port, _, _ in cluster.masters():
        with cluster.node(port).client() as c:
            for key in c.keys(f"{FORGOTTEN_KEY}:*"):
                found.append(int(c.get(key)))
    return found
