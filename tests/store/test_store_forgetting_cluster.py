"""Forgetting means reject on a Redis Cluster: a master SIGKILLed and failed over to its
replica (the session's 6-node cluster, no persistence) is detected before the promoted replica
acknowledges a claim."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from verifier.errors import StoreUnavailable
from verifier.store.cluster import ClusterStore
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
