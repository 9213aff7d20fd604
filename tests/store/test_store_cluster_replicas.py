"""VERIFIER_MIN_REPLICAS on a real cluster: a claim is acknowledged only once WAIT says enough
replicas have it; otherwise StoreUnavailable, and a retry with the same request id gets the
original verdict once it can be confirmed. (The failover it protects against is in
test_store_cluster_faults.py.)"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from verifier.errors import StoreUnavailable
from verifier.records import Holder
from verifier.store import NEW, REPLAYED, RETRY, Claim, ClusterStore, open_store
from verifier.store.keys import nonce_key

if TYPE_CHECKING:  # imported by pytest_plugins, so that pytest imports it first
    from redis_cluster import RedisCluster

pytest_plugins = ["redis_cluster"]

TTL_MS = 60_000


def holder(sub: str) -> Holder:
    return Holder(sub=sub, status="active", scheme="employee", region="110105")


def test_an_acknowledged_claim_is_already_on_the_replica(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    by_master = redis_cluster.subs_by_master(4)
    subs = [s for group in by_master.values() for s in group]

    async def body() -> None:
        store = await open_store(cluster_url, deadline_ms=2_000, min_replicas=1)
        try:
            await store.put_holders(holder(s) for s in subs)
            claims = await asyncio.gather(*(store.claim(s, "n1", "a", "r1", TTL_MS) for s in subs))
            assert [(c.outcome, c.holder) for c in claims] == [(NEW, holder(s)) for s in subs]
            # Read at once from each master's replica: WAIT has already seen it there.
            for port, group in by_master.items():
                with redis_cluster.node(redis_cluster.replica_of(port)).client() as replica:
                    replica.execute_command("READONLY")
                    assert all(replica.exists(nonce_key(s, "n1")) for s in group)
            again = await store.claim(subs[0], "n1", "b", "r2", TTL_MS)
            assert again.outcome == REPLAYED
            retry = await store.claim(subs[0], "n1", "a", "r1", TTL_MS)
            assert (retry.outcome, retry.holder) == (RETRY, holder(subs[0]))
        finally:
            await store.close()

    asyncio.run(body())


def test_more_replicas_than_there_are_is_unavailable_and_the_retry_waits_too(
    cluster_url: str,
) -> None:
    async def claim(min_replicas: int, claimant: str, request_id: str) -> Claim:
        # A store each: a WAIT that cannot be satisfied holds its connection until it times out.
        store = ClusterStore(cluster_url, deadline_ms=300, min_replicas=min_replicas)
        try:
            return await store.claim("h-greedy", "n1", claimant, request_id, TTL_MS)
        finally:
            await store.close()

    async def body() -> None:
        store = ClusterStore(cluster_url)
        try:
            await store.put_holder(holder("h-greedy"))
        finally:
            await store.close()
        with pytest.raises(StoreUnavailable, match="2 replicas"):  # there is one per master
            await claim(2, "a", "r1")
        # The claim ran: a second use is refused, without waiting for any replica ...
        assert (await claim(2, "b", "r9")).outcome == REPLAYED
        # ... its retry must be confirmed like a first claim, so it is refused here too ...
        with pytest.raises(StoreUnavailable, match="2 replicas"):
            await claim(2, "a", "r1")
        # ... and gets the original verdict where it can be confirmed.
        retry = await claim(1, "a", "r1")
        assert (retry.outcome, retry.holder) == (RETRY, holder("h-greedy"))

    asyncio.run(body())


def test_a_paused_replica_holds_back_the_claims_of_its_master_only(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    by_master = redis_cluster.subs_by_master(3)
    held = next(iter(by_master))
    subs = [s for group in by_master.values() for s in group]

    async def body() -> None:
        store = await open_store(cluster_url, deadline_ms=300, min_replicas=1)
        try:
            await store.put_holders(holder(s) for s in subs)
            replica = redis_cluster.replica_of(held)
            redis_cluster.pause(replica)
            try:
                results = await asyncio.gather(
                    *(store.claim(s, "n1", "a", f"r-{s}", TTL_MS) for s in subs),
                    return_exceptions=True,
                )
                # A retry on a fresh connection is not confirmed either. (WAIT is documented to
                # cover the writes of its own connection, so the retry writes; Redis 7.0 also
                # counts any command's offset, so this holds there even without that write.)
                sub = by_master[held][0]
                fresh = ClusterStore(cluster_url, deadline_ms=300, min_replicas=1)
                try:
                    with pytest.raises(StoreUnavailable, match="replicas"):
                        await fresh.claim(sub, "n1", "a", f"r-{sub}", TTL_MS)
                finally:
                    await fresh.close()
            finally:
                redis_cluster.resume(replica)
            for sub, result in zip(subs, results, strict=True):
                if sub in by_master[held]:
                    assert isinstance(result, StoreUnavailable), result
                else:
                    assert not isinstance(result, BaseException) and result.outcome == NEW
            # The replica caught up: the retries get the original verdict.
            for sub in by_master[held]:
                retry = await store.claim(sub, "n1", "a", f"r-{sub}", TTL_MS)
                assert (retry.outcome, retry.holder) == (RETRY, holder(sub))
        finally:
            await store.close()

    asyncio.run(body())
