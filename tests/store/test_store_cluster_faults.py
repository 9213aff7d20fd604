"""ClusterStore while the cluster changes under it: a slot moved (MOVED), a slot in migration
(ASK, TRYAGAIN), a resharding under load, and a master SIGKILLed (failover).

Each test opens its stores before the change, so what is tested is a running store following
the cluster, never a fresh one reading a fresh map. The fixture puts the cluster back together
afterwards (restarts a killed node, which rejoins as a replica).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import TYPE_CHECKING

from verifier.errors import StoreUnavailable
from verifier.records import Holder
from verifier.store import NEW, REPLAYED, RETRY, ClusterStore
from verifier.store.keys import holder_key, nonce_key, use_key
from verifier.store.slots import tag_slot

if TYPE_CHECKING:  # imported by pytest_plugins, so that pytest imports it first
    from redis_cluster import RedisCluster

pytest_plugins = ["redis_cluster"]

TTL_MS = 600_000


def holder(sub: str) -> Holder:
    return Holder(sub=sub, status="active", scheme="employee", region="110105")


def same_slot(sub: str, n: int) -> list[str]:
    """``sub`` and ``n - 1`` other holder ids in the same slot."""
    slot = tag_slot(sub.encode())
    others = (f"{sub}-{i}" for i in itertools.count())
    return [sub, *itertools.islice((s for s in others if tag_slot(s.encode()) == slot), n - 1)]


def other_master(cluster: RedisCluster, port: int) -> int:
    return next(p for p, _, _ in cluster.masters() if p != port)


def test_a_moved_slot_is_followed_and_remembered(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    sub = "h-moved"
    slot = tag_slot(sub.encode())
    source = redis_cluster.master_of(slot)
    target = other_master(redis_cluster, source)

    async def body() -> None:
        store = ClusterStore(cluster_url, deadline_ms=2_000)
        try:
            await store.put_holder(holder(sub))
            assert (await store.claim(sub, "n1", "a", "r1", TTL_MS)).outcome == NEW
            redis_cluster.migrate_slot(slot, target)  # the store still maps it to the source
            # MOVED: the nonce went with the slot, so a second use is still refused ...
            assert (await store.claim(sub, "n1", "b", "r2", TTL_MS)).outcome == REPLAYED
            retry = await store.claim(sub, "n1", "a", "r1", TTL_MS)
            assert (retry.outcome, retry.holder) == (RETRY, holder(sub))
            # ... and the next claim goes straight to the new master.
            assert (await store.claim(sub, "n2", "a", None, TTL_MS)).outcome == NEW
        finally:
            await store.close()

    asyncio.run(body())
    with redis_cluster.node(target).client() as c:
        assert c.exists(holder_key(sub), nonce_key(sub, "n1"), nonce_key(sub, "n2")) == 3


def test_a_slot_in_migration_is_followed_by_ask_and_tryagain(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    """Keys already moved are reached with ASK, keys not yet moved on the source; a claim of a
    new nonce (its keys split between the nodes, or on neither) gets TRYAGAIN until the slot
    settles, and is retried within its deadline."""
    moved, staying = same_slot("h-ask", 2)
    slot = tag_slot(moved.encode())
    source = redis_cluster.master_of(slot)
    target = other_master(redis_cluster, source)

    async def body() -> None:
        store = ClusterStore(cluster_url, deadline_ms=5_000)
        try:
            await store.put_holders([holder(moved), holder(staying)])
            for sub in (moved, staying):
                assert (await store.claim(sub, "used", "a", "r1", TTL_MS)).outcome == NEW
            redis_cluster.open_migration(slot, target)
            keys = [holder_key(moved), nonce_key(moved, "used"), use_key(moved, "used")]
            redis_cluster.move_keys(slot, target, keys)
            # ASK: records and nonces that already moved are found on the target ...
            assert await store.get_holder(moved) == holder(moved)
            assert (await store.claim(moved, "used", "b", "r2", TTL_MS)).outcome == REPLAYED
            retry = await store.claim(moved, "used", "a", "r1", TTL_MS)
            assert (retry.outcome, retry.holder) == (RETRY, holder(moved))
            # ... and keys that did not move are still served by the source.
            assert await store.get_holder(staying) == holder(staying)
            assert (await store.claim(staying, "used", "b", None, TTL_MS)).outcome == REPLAYED
            # A new nonce has its keys split (or on neither node): TRYAGAIN until the
            # migration ends, for the moved holder and the staying one alike.
            pending = [
                asyncio.ensure_future(store.claim(sub, "fresh", "a", "r3", TTL_MS))
                for sub in (moved, staying)
            ]
            await asyncio.sleep(0.2)
            assert not any(p.done() for p in pending)
            redis_cluster.move_keys(slot, target)
            redis_cluster.finish_migration(slot, target)
            for sub, fresh in zip((moved, staying), await asyncio.gather(*pending), strict=True):
                assert (fresh.outcome, fresh.holder) == (NEW, holder(sub))
                assert (await store.claim(sub, "fresh", "b", None, TTL_MS)).outcome == REPLAYED
        finally:
            await store.close()

    asyncio.run(body())


def test_a_paused_master_fails_its_claims_within_the_deadline_and_nothing_else(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    """SIGSTOP one master: its claims are StoreUnavailable after the deadline (never sent
    again), the other masters' claims are answered meanwhile, and once it resumes every
    connection is in step (no late reply reaches a later claim)."""
    by_master = redis_cluster.subs_by_master(3)
    paused = next(iter(by_master))
    subs = [s for group in by_master.values() for s in group]

    async def body() -> None:
        store = ClusterStore(cluster_url, deadline_ms=300)
        try:
            await store.put_holders(holder(s) for s in subs)
            warm = await asyncio.gather(*(store.claim(s, "warm", "a", None, TTL_MS) for s in subs))
            assert {c.outcome for c in warm} == {NEW}
            redis_cluster.pause(paused)
            try:
                results = await asyncio.gather(
                    *(store.claim(s, "lost", "a", f"r-{s}", TTL_MS) for s in subs),
                    return_exceptions=True,
                )
            finally:
                redis_cluster.resume(paused)
            for sub, result in zip(subs, results, strict=True):
                if sub in by_master[paused]:
                    assert isinstance(result, StoreUnavailable), result
                else:
                    assert not isinstance(result, BaseException) and result.outcome == NEW
            await asyncio.sleep(0.1)  # the late replies arrive now, for abandoned calls
            for round_ in range(3):
                claims = await asyncio.gather(
                    *(store.claim(s, f"n{round_}", "a", None, TTL_MS) for s in subs)
                )
                assert [(c.outcome, c.holder) for c in claims] == [(NEW, holder(s)) for s in subs]
            # A claim that timed out may have run: its retry tells, with the original verdict.
            for sub in by_master[paused]:
                retry = await store.claim(sub, "lost", "a", f"r-{sub}", TTL_MS)
                assert retry.outcome in (NEW, RETRY) and retry.holder == holder(sub)
        finally:
            await store.close()

    asyncio.run(body())


def test_resharding_under_load_never_accepts_a_nonce_twice(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    """Two stores (two verifier processes), four claimers each, all presenting the same
    series of new nonces while their slot moves holder by holder: every answer is a verdict or
    StoreUnavailable, no nonce is NEW twice, and none acknowledged is lost in the move."""
    subs = same_slot("h-reshard", 4)
    slot = tag_slot(subs[0].encode())
    target = other_master(redis_cluster, redis_cluster.master_of(slot))
    answers: list[tuple[str, str, str]] = []

    async def load(store: ClusterStore, name: str, stop: asyncio.Event) -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            sub, jti = subs[i % len(subs)], f"n{i}"
            try:
                claim = await store.claim(sub, jti, name, None, TTL_MS)
                answers.append((sub, jti, claim.outcome))
            except StoreUnavailable:
                answers.append((sub, jti, "unavailable"))
                await asyncio.sleep(0.001)  # a closed store raises at once: let others run

    async def body() -> None:
        stores = [ClusterStore(cluster_url, deadline_ms=500) for _ in range(2)]
        stop = asyncio.Event()
        await stores[0].put_holders(holder(s) for s in subs)
        workers = []
        try:
            workers = [
                asyncio.ensure_future(load(store, f"s{i}-{w}", stop))
                for i, store in enumerate(stores)
                for w in range(4)
            ]
            await asyncio.sleep(0.1)
            redis_cluster.open_migration(slot, target)
            for sub in subs:  # one holder (with its nonces so far) at a time
                keys = [k for k in redis_cluster.keys_in_slot(slot) if f"{{{sub}}}" in k]
                redis_cluster.move_keys(slot, target, keys)
                await asyncio.sleep(0.05)
            redis_cluster.move_keys(slot, target)
            redis_cluster.finish_migration(slot, target)
            await asyncio.sleep(0.2)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        try:
            # Every nonce acknowledged as NEW is still there, on the new master.
            acknowledged = {(sub, jti) for sub, jti, outcome in answers if outcome == NEW}
            checks = await asyncio.gather(
                *(stores[1].claim(sub, jti, "checker", None, TTL_MS) for sub, jti in acknowledged)
            )
            assert {c.outcome for c in checks} == {REPLAYED}
        finally:
            for store in stores:
                await store.close()

    asyncio.run(body())
    outcomes = Counter(outcome for _, _, outcome in answers)
    assert set(outcomes) <= {NEW, REPLAYED, "unavailable"}, outcomes
    new = Counter((sub, jti) for sub, jti, outcome in answers if outcome == NEW)
    assert max(new.values()) == 1, new.most_common(3)
    assert outcomes[NEW] > 0 and outcomes[REPLAYED] > 0, outcomes


def test_a_killed_master_fails_over_and_min_replicas_keeps_every_acknowledged_claim(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    """SIGKILL a master under load, right after its replica fell behind (paused, with 32 MB in
    the replication stream ahead of the claims). Two stores run throughout: ``safe`` with
    min_replicas=1, ``fast`` with 0. While the replica takes over, every answer is a verdict or
    StoreUnavailable; afterwards ``fast`` serves the victim's holders again without being
    reopened, and so does ``safe`` once the killed node is back as the new master's replica.
    Then every nonce either store acknowledged as NEW is presented again: none of ``safe``'s
    is NEW a second time, while ``fast`` lost the ones its master never passed on."""
    by_master = redis_cluster.subs_by_master(4)
    victim = next(iter(by_master))
    victim_subs = by_master[victim]
    subs = [s for group in by_master.values() for s in group]
    replica = redis_cluster.replica_of(victim)
    answers: list[tuple[str, str, str, str]] = []  # (store, sub, jti, outcome)

    async def claim(store: ClusterStore, name: str, sub: str, jti: str) -> str:
        try:
            outcome = (await store.claim(sub, jti, name, jti, TTL_MS)).outcome
        except StoreUnavailable:
            outcome = "unavailable"
        answers.append((name, sub, jti, outcome))
        return outcome

    async def load(store: ClusterStore, name: str, worker: int, stop: asyncio.Event) -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            jti = f"{name}-{worker}-{i}"
            if await claim(store, name, subs[i % len(subs)], jti) == "unavailable":
                await asyncio.sleep(0.01)

    async def recovered(store: ClusterStore, name: str) -> None:
        for i in itertools.count():
            if await claim(store, name, victim_subs[0], f"{name}-back-{i}") == NEW:
                return
            await asyncio.sleep(0.05)

    async def body() -> None:
        stores = {
            "safe": ClusterStore(cluster_url, deadline_ms=500, min_replicas=1),
            "fast": ClusterStore(cluster_url, deadline_ms=500),
        }
        await stores["fast"].put_holders(holder(s) for s in subs)
        stop = asyncio.Event()
        workers = [
            asyncio.ensure_future(load(store, name, worker, stop))
            for name, store in stores.items()
            for worker in range(8)
        ]
        try:
            await asyncio.sleep(0.3)
            redis_cluster.pause(replica)
            with redis_cluster.node(victim).client() as c:  # fills the replication pipe
                c.set(f"junk:{{{victim_subs[0]}}}", b"x" * (32 << 20))
            await asyncio.gather(
                *(
                    claim(store, name, sub, f"{name}-lag-{sub}")
                    for name, store in stores.items()
                    for sub in victim_subs
                )
            )
            redis_cluster.kill(victim)
            redis_cluster.resume(replica)
            async with asyncio.timeout(30):
                await recovered(stores["fast"], "fast")
            # The promoted replica has no replica of its own: safe's claims on it wait for the
            # killed node to come back (empty) and replicate it.
            assert (await claim(stores["safe"], "safe", victim_subs[0], "alone")) == "unavailable"
            redis_cluster.restart(victim)
            async with asyncio.timeout(30):
                await recovered(stores["safe"], "safe")
            await asyncio.sleep(0.2)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        checker = ClusterStore(cluster_url, deadline_ms=5_000)
        try:
            acknowledged = sorted(
                {(name, sub, jti) for name, sub, jti, outcome in answers if outcome == NEW}
            )
            again = []
            for start in range(0, len(acknowledged), 500):
                again += await asyncio.gather(
                    *(
                        checker.claim(sub, jti, "checker", None, TTL_MS)
                        for _, sub, jti in acknowledged[start : start + 500]
                    )
                )
            lost = Counter(
                name
                for (name, _, _), c in zip(acknowledged, again, strict=True)
                if c.outcome == NEW
            )
            assert lost["safe"] == 0, lost
            assert lost["fast"] >= len(victim_subs), lost  # at least the lagging claims
        finally:
            for store in [*stores.values(), checker]:
                await store.close()

    asyncio.run(body())
    assert redis_cluster.master_of(tag_slot(victim_subs[0].encode())) == replica
    outcomes = Counter(outcome for _, _, _, outcome in answers)
    # Fresh nonces only: REPLAYED would mean a claim ran twice.
    assert set(outcomes) <= {NEW, "unavailable"}, outcomes
    lagging = [o for name, _, jti, o in answers if "-lag-" in jti]
    assert lagging.count("unavailable") >= len(victim_subs)  # every one of safe's
