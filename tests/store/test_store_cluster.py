"""ClusterStore on a real local cluster (3 masters + 3 replicas): routing, bulk writes, start-up
checks and per-node AUTH. Resharding, replica confirmation and failover are in
test_store_cluster_faults.py; the store contract runs in test_store_contract_cluster.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from verifier.errors import ConfigError, StoreUnavailable
from verifier.records import Holder
from verifier.store import NEW, REPLAYED, ClusterStore, open_store
from verifier.store.keys import holder_key, nonce_key

if TYPE_CHECKING:  # imported by pytest_plugins, so that pytest imports it first
    from redis_cluster import RedisCluster

pytest_plugins = ["redis_cluster"]

TTL_MS = 60_000


def holder(sub: str) -> Holder:
    return Holder(sub=sub, status="active", scheme="resident", region="110105")


def test_claims_for_holders_on_every_master(redis_cluster: RedisCluster, cluster_url: str) -> None:
    by_master = redis_cluster.subs_by_master(5)
    subs = [sub for group in by_master.values() for sub in group]

    async def body() -> None:
        store = await open_store(cluster_url, deadline_ms=2_000)
        try:
            await store.put_holders(holder(s) for s in subs)
            first = await asyncio.gather(*(store.claim(s, "n1", "a", "r1", TTL_MS) for s in subs))
            assert [(c.outcome, c.holder) for c in first] == [(NEW, holder(s)) for s in subs]
            again = await asyncio.gather(*(store.claim(s, "n1", "b", "r2", TTL_MS) for s in subs))
            assert {c.outcome for c in again} == {REPLAYED}
        finally:
            await store.close()

    asyncio.run(body())
    for port, group in by_master.items():  # each nonce sits on its holder's master
        with redis_cluster.node(port).client() as c:
            for sub in group:
                assert c.exists(holder_key(sub), nonce_key(sub, "n1")) == 2


@pytest.mark.parametrize("min_replicas", [0, 1])
def test_an_empty_script_cache_sends_the_script_itself(
    redis_cluster: RedisCluster, cluster_url: str, min_replicas: int
) -> None:
    """After SCRIPT FLUSH (a restart, a failover) the claim's EVALSHA gets NOSCRIPT and the
    store sends the script with EVAL, on every master."""
    subs = [s for [s] in redis_cluster.subs_by_master(1).values()]
    redis_cluster.on_every_node("SCRIPT", "FLUSH")

    async def body() -> None:
        store = ClusterStore(cluster_url, deadline_ms=2_000, min_replicas=min_replicas)
        try:
            for s in subs:
                assert (await store.claim(s, "n1", "a", "r1", TTL_MS)).outcome == NEW
                assert (await store.claim(s, "n1", "b", "r2", TTL_MS)).outcome == REPLAYED
        finally:
            await store.close()

    asyncio.run(body())
    for port, _, _ in redis_cluster.masters():
        with redis_cluster.node(port).client() as c:
            assert c.info("commandstats")["cmdstat_eval"]["calls"] >= 1


def test_bulk_writes_reach_every_master(redis_cluster: RedisCluster, cluster_url: str) -> None:
    progress: list[int] = []

    async def body() -> None:
        store = ClusterStore(cluster_url, chunk_size=1000)
        try:
            holders = (holder(f"bulk-{i}") for i in range(2_500))
            assert await store.put_holders(holders, on_progress=progress.append) == 2_500
        finally:
            await store.close()

    asyncio.run(body())
    assert progress == [1000, 2000, 2500]
    sizes = []
    for port, _, _ in redis_cluster.masters():
        with redis_cluster.node(port).client() as c:
            sizes.append(c.dbsize())
    assert sum(sizes) == 2_500 and min(sizes) > 0


def test_bulk_writes_wait_the_admin_deadline_not_the_per_claim_one(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    """A master slow to answer a bulk write (paused 0.3 s here) costs time, not the import:
    each reply may take up to the admin deadline, far beyond the 1 ms a claim gets."""
    port = redis_cluster.masters()[0][0]

    async def body() -> None:
        store = ClusterStore(cluster_url, deadline_ms=1, admin_deadline_ms=5_000)
        try:
            assert await store.put_holders(holder(f"slow-{i}") for i in range(10)) == 10
            redis_cluster.pause(port)
            asyncio.get_running_loop().call_later(0.3, redis_cluster.resume, port)
            holders = (holder(f"bulk-{i}") for i in range(300))
            assert await store.put_holders(holders) == 300
        finally:
            if redis_cluster.node(port).paused:
                redis_cluster.resume(port)
            await store.close()

    asyncio.run(body())
    total = 0
    for master, _, _ in redis_cluster.masters():
        with redis_cluster.node(master).client() as c:
            total += c.dbsize()
    assert total == 310


def test_seeds_that_are_down_are_skipped(redis_cluster: RedisCluster, cluster_url: str) -> None:
    """Only one listed node needs to answer; the rest of the cluster comes from it."""
    alive = redis_cluster.nodes[2].port
    url = f"redis+cluster://127.0.0.1:1,127.0.0.1:{alive}"

    async def body() -> None:
        store = await open_store(url, deadline_ms=2_000)
        try:
            assert len(store.masters()) == 3  # type: ignore[attr-defined]
            await store.put_holder(holder("h-seed"))
            assert (await store.claim("h-seed", "n1", "a", None, TTL_MS)).holder == holder("h-seed")
        finally:
            await store.close()

    asyncio.run(body())


def test_no_reachable_seed_is_unavailable(redis_cluster: RedisCluster) -> None:
    with pytest.raises(StoreUnavailable, match="no node gave a slot map"):
        asyncio.run(open_store("redis+cluster://127.0.0.1:1,127.0.0.1:2", deadline_ms=200))


# -- start-up checks ------------------------------------------------------------------------


def test_an_evicting_replica_is_refused_unless_allowed(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    replica = redis_cluster.replica_of(redis_cluster.masters()[0][0])
    with redis_cluster.node(replica).client() as c:
        c.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(ConfigError, match=f"replica 127.0.0.1:{replica}.*'allkeys-lru'"):
        asyncio.run(open_store(cluster_url))

    async def allowed() -> None:
        store = await open_store(cluster_url, allow_eviction=True)
        await store.close()

    asyncio.run(allowed())


def test_a_slot_without_a_master_is_refused(redis_cluster: RedisCluster, cluster_url: str) -> None:
    owner = redis_cluster.master_of(100)
    redis_cluster.on_every_node("CLUSTER", "DELSLOTS", 100)
    try:
        with pytest.raises(StoreUnavailable, match="1 of 16384 slots have no master"):
            asyncio.run(open_store(cluster_url))
    finally:
        with redis_cluster.node(owner).client() as c:
            c.execute_command("CLUSTER", "ADDSLOTS", 100)
        redis_cluster.ensure_healthy()


def test_a_plain_redis_url_cannot_ask_for_replica_confirmation() -> None:
    with pytest.raises(ConfigError, match="VERIFIER_MIN_REPLICAS"):
        asyncio.run(open_store("redis://127.0.0.1:1/0", min_replicas=1))


# -- AUTH on every node ---------------------------------------------------------------------


@pytest.fixture
def acl_user(redis_cluster: RedisCluster, cluster_url: str) -> Iterator[str]:
    """A user ``verifier`` (password ``s3cret/pw``) on every node, and a default user that may
    not run scripts, so claims work only when logged in. Gives the URL's hosts part."""
    redis_cluster.on_every_node("ACL", "SETUSER", "verifier", "on", ">s3cret/pw", "~*", "+@all")
    redis_cluster.on_every_node("ACL", "SETUSER", "default", "-@scripting")
    try:
        yield cluster_url.removeprefix("redis+cluster://")
    finally:
        redis_cluster.on_every_node("ACL", "SETUSER", "default", "+@all")
        redis_cluster.on_every_node("ACL", "DELUSER", "verifier")


def test_every_node_is_logged_into_with_the_url_credentials(acl_user: str) -> None:
    async def body() -> None:
        anonymous = await open_store(f"redis+cluster://{acl_user}")
        try:
            with pytest.raises(StoreUnavailable, match="NOPERM"):
                await anonymous.claim("h-auth", "n", "a", None, TTL_MS)
        finally:
            await anonymous.close()
        store = await open_store(f"redis+cluster://verifier:s3cret%2Fpw@{acl_user}")
        try:
            await store.put_holder(holder("h-auth"))
            subs = [f"h-auth-{i}" for i in range(30)]  # spread over every master
            claims = await asyncio.gather(*(store.claim(s, "n", "a", None, TTL_MS) for s in subs))
            assert {c.outcome for c in claims} == {NEW}
        finally:
            await store.close()

    asyncio.run(body())


def test_a_wrong_password_is_unavailable_and_not_repeated(acl_user: str) -> None:
    with pytest.raises(StoreUnavailable) as info:
        asyncio.run(open_store(f"redis+cluster://verifier:wrong-pw@{acl_user}", deadline_ms=500))
    assert "wrong-pw" not in str(info.value)
