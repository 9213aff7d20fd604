"""MemoryStore only: exact expiry edges on a fake clock, bounded memory, open_store("memory://")."""

from __future__ import annotations

import asyncio

import pytest

from verifier import codec
from verifier.records import Holder
from verifier.store import NEW, REPLAYED, MemoryStore, open_store

ALICE = Holder(sub="h-alice", status="active", scheme="employee", region="110105")


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms / 1000


# (milliseconds after the first claim, outcome of a second claim by another scanner)
EXPIRY_EDGES = [
    (0, REPLAYED),  # at once
    (999, REPLAYED),  # one millisecond before the ttl runs out
    (1000, REPLAYED),  # exactly at the ttl: "kept for at least ttl_ms"
    (1001, NEW),  # one millisecond after: forgotten, the token may be used again
]


@pytest.mark.parametrize(("after_ms", "expected"), EXPIRY_EDGES)
def test_nonce_expiry_edges(after_ms: int, expected: str) -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)

    async def body() -> None:
        await store.claim(ALICE.sub, "n1", "a", None, 1000)
        clock.advance(after_ms)
        assert (await store.claim(ALICE.sub, "n1", "b", None, 1000)).outcome == expected

    asyncio.run(body())


def test_expired_nonces_are_dropped_so_memory_stays_bounded() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)

    async def body() -> None:
        for i in range(5000):
            await store.claim(ALICE.sub, f"n{i}", "a", None, 1000)
        assert store.nonce_count == 5000
        clock.advance(1001)
        await store.claim(ALICE.sub, "late", "a", None, 1000)  # any claim purges
        assert store.nonce_count == 1

    asyncio.run(body())


def test_purging_an_old_expiry_keeps_a_nonce_claimed_again() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)

    async def body() -> None:
        await store.claim(ALICE.sub, "n1", "a", None, 100)
        clock.advance(200)
        assert (await store.claim(ALICE.sub, "n1", "b", None, 10_000)).outcome == NEW
        clock.advance(50)
        await store.claim(ALICE.sub, "other", "a", None, 100)  # pops the first expiry
        assert (await store.claim(ALICE.sub, "n1", "c", None, 10_000)).outcome == REPLAYED

    asyncio.run(body())


def test_default_clock_is_monotonic_time() -> None:
    async def body() -> None:
        store = MemoryStore()
        assert (await store.claim(ALICE.sub, "n1", "a", None, 60_000)).outcome == NEW
        assert (await store.claim(ALICE.sub, "n1", "a", None, 60_000)).outcome == REPLAYED

    asyncio.run(body())


def test_open_store_memory_url() -> None:
    async def body() -> None:
        store = await open_store("memory://", deadline_ms=10, allow_eviction=False)
        assert isinstance(store, MemoryStore)
        await store.close()

    asyncio.run(body())


def test_records_are_kept_as_the_codecs_bytes_under_the_redis_keys() -> None:
    async def body() -> None:
        store = MemoryStore()
        store.put_raw("vh:{h-alice}", codec.encode_holder(ALICE))
        assert await store.get_holder(ALICE.sub) == ALICE
        with pytest.raises(ValueError, match="not a record key"):
            store.put_raw("vn:{h-alice}:n1", b"a\n")  # nonces are not records

    asyncio.run(body())
