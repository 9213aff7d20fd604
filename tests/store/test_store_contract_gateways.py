"""The store contract for gateway sidecars, against MemoryStore and a real Redis: institution
directories, gateway records, reconcile claims (and the use records every claim leaves behind),
conflicts.

Same harness as test_store_contract.py; each store is opened with a reconcile window chosen by
the test (default: the setting's, 72 h).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import test_store_contract as contract
from redis.crc import key_slot

from verifier.config import DEFAULT_RECONCILE_WINDOW_MS
from verifier.errors import RecordError
from verifier.records import Conflict, Gateway, Scanner, Use
from verifier.store import NEW, REPLAYED, RETRY, MemoryStore, RedisStore, Store
from verifier.store.base import PriorUse, UnreadableRecord
from verifier.store.keys import (
    gateway_key,
    holder_key,
    institution_gateways_key,
    institution_scanners_key,
    nonce_key,
    use_key,
)

ALICE = contract.ALICE
TTL_MS = contract.TTL_MS
HASH = "ab" * 32


class Harness(contract.Harness):
    window_ms = DEFAULT_RECONCILE_WINDOW_MS

    def open(self) -> Store:
        if self.kind == "memory":
            return MemoryStore(clock=lambda: self.now, reconcile_window_ms=self.window_ms)
        assert self.redis_url is not None
        return RedisStore(self.redis_url, deadline_ms=2_000, reconcile_window_ms=self.window_ms)

    def run_with_window(self, window_ms: int, body: Callable[[Store], Awaitable[None]]) -> None:
        self.window_ms = window_ms
        self.run(body)


@pytest.fixture(params=["memory", "redis"])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "memory":
        return Harness("memory")
    return Harness("redis", request.getfixturevalue("redis_url"))


# -- directories and gateways -----------------------------------------------------------------


def test_an_institutions_scanners_are_listed_revoked_ones_too(harness: Harness) -> None:
    async def body(store: Store) -> None:
        assert await store.scanners_of("H1") == []
        b = Scanner("s-b", "H1", HASH)
        a = Scanner("s-a", "H1", "cd" * 32)
        other = Scanner("s-c", "H2", HASH)
        for scanner in (b, a, other):
            await store.put_scanner(scanner)
        revoked = Scanner("s-b", "H1", HASH, revoked=True)
        await store.put_scanner(revoked)  # a revocation is a put: still listed
        assert await store.scanners_of("H1") == [a, revoked]  # ordered by id
        assert await store.scanners_of("H2") == [other]
        assert await store.get_scanner("s-b") == revoked

    harness.run(body)


def test_gateways_round_trip_and_are_listed_by_institution(harness: Harness) -> None:
    g1, g2 = Gateway("g-2", "H1", HASH), Gateway("g-1", "H1", "cd" * 32)
    elsewhere = Gateway("g-3", "H2", HASH)

    async def body(store: Store) -> None:
        assert await store.get_gateway("g-1") is None
        assert await store.gateways_of("H1") == []
        for gateway in (g1, g2, elsewhere):
            await store.put_gateway(gateway)
            assert await store.get_gateway(gateway.id) == gateway
        revoked = Gateway("g-2", "H1", HASH, revoked=True)
        await store.put_gateway(revoked)
        assert await store.get_gateway("g-2") == revoked
        assert await store.gateways_of("H1") == [g2, revoked]
        assert await store.gateways_of("H2") == [elsewhere]

    harness.run(body)


def test_gateway_records_are_checked_both_ways(harness: Harness) -> None:
    async def body(store: Store) -> None:
        with pytest.raises(RecordError, match="secret_hash"):
            await store.put_gateway(Gateway("g-1", "H1", "not a hash"))
        assert await store.get_gateway("g-1") is None
        assert await store.gateways_of("H1") == []
        harness.put_raw(store, gateway_key("g-2"), b'{"id": "g-2", "institution": "H1"}')
        with pytest.raises(UnreadableRecord, match="vg:g-2: unreadable record: gateway"):
            await store.get_gateway("g-2")

    harness.run(body)


# -- reconcile claims -------------------------------------------------------------------------


def test_an_unused_nonce_is_claimed_for_the_offline_use(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        done = await store.reconcile_claim(ALICE.sub, "n1", "s-a", "r1", "g-1", 1000.0, TTL_MS)
        assert (done.claim.outcome, done.claim.holder, done.first) == (NEW, ALICE, None)
        # The token can still be presented: at the centre it is now replayed.
        online = await store.claim(ALICE.sub, "n1", "s-b", "r9", TTL_MS)
        assert online.outcome == REPLAYED
        # ... unless it is the same scanner retrying the same request (the original verdict).
        retry = await store.claim(ALICE.sub, "n1", "s-a", "r1", TTL_MS)
        assert (retry.outcome, retry.holder) == (RETRY, ALICE)

    harness.run(body)


def test_the_same_item_again_is_a_retry_with_the_holder_as_of_now(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        await store.reconcile_claim(ALICE.sub, "n1", "s-a", "r1", "g-1", 1000.0, TTL_MS)
        suspended = ALICE._replace(status="suspended")
        await store.put_holder(suspended)
        again = await store.reconcile_claim(ALICE.sub, "n1", "s-a", "r1", "g-1", 1000.0, TTL_MS)
        assert (again.claim.outcome, again.claim.holder, again.first) == (RETRY, suspended, None)

    harness.run(body)


def test_a_use_by_anyone_else_is_reported_with_that_use(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        await store.reconcile_claim(ALICE.sub, "n1", "s-a", "r1", "g-1", 1000.25, TTL_MS)
        for claimant, rid, via in (
            ("s-b", "r2", "g-2"),
            ("s-a", "r2", "g-1"),
            ("s-b", "r1", "g-1"),
        ):
            other = await store.reconcile_claim(ALICE.sub, "n1", claimant, rid, via, 1001.0, 0)
            assert (other.claim.outcome, other.claim.holder) == (REPLAYED, None)
            assert other.first == PriorUse("s-a", "r1", 1000.25, "g-1")

    harness.run(body)


def test_an_online_claim_leaves_a_use_that_reconciliation_sees(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        before = time.time()
        await store.claim(ALICE.sub, "n1", "s-a", "r1", TTL_MS)
        other = await store.reconcile_claim(ALICE.sub, "n1", "s-b", "r2", "g-1", 1000.0, TTL_MS)
        assert other.claim.outcome == REPLAYED and other.first is not None
        first = other.first
        assert (first.claimant, first.request_id, first.via) == ("s-a", "r1", "")
        assert first.used_at is not None and before - 1 <= first.used_at <= time.time() + 1
        # A forward that timed out, accepted offline with the same scanner and request id.
        same = await store.reconcile_claim(ALICE.sub, "n1", "s-a", "r1", "g-1", 1000.0, TTL_MS)
        assert (same.claim.outcome, same.claim.holder) == (RETRY, ALICE)
        # Without a request id online there is nothing to match: a second use.
        await store.claim(ALICE.sub, "n2", "s-a", None, TTL_MS)
        bare = await store.reconcile_claim(ALICE.sub, "n2", "s-a", "r1", "g-1", 1000.0, TTL_MS)
        assert bare.claim.outcome == REPLAYED

    harness.run(body)


def test_the_use_outlives_the_nonce(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.claim(ALICE.sub, "n1", "s-a", "r1", 300)
        await harness.advance(500)  # the nonce is gone; its token could not pass any more
        late = await store.reconcile_claim(ALICE.sub, "n1", "s-b", "r2", "g-1", 1000.0, 0)
        assert late.claim.outcome == REPLAYED
        assert late.first is not None and late.first.claimant == "s-a"

    harness.run(body)


def test_a_use_is_forgotten_after_the_reconcile_window(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.claim(ALICE.sub, "n1", "s-a", "r1", 100)
        await store.reconcile_claim(ALICE.sub, "n2", "s-a", "r1", "g-1", 1000.0, 0)
        await harness.advance(700)
        for jti in ("n1", "n2"):
            late = await store.reconcile_claim(ALICE.sub, jti, "s-b", "r2", "g-2", 1000.0, 0)
            assert (late.claim.outcome, late.first) == (NEW, None)

    harness.run_with_window(400, body)


def test_an_expired_token_claimed_offline_leaves_no_nonce(harness: Harness) -> None:
    async def body(store: Store) -> None:
        done = await store.reconcile_claim("h-nobody", "n1", "s-a", "r1", "g-1", 1000.0, 0)
        assert (done.claim.outcome, done.claim.holder) == (NEW, None)  # unknown holder
        again = await store.reconcile_claim("h-nobody", "n1", "s-b", "r2", "g-2", 1000.0, 0)
        assert again.claim.outcome == REPLAYED

    harness.run(body)


# (sub, jti, claimant, request id, gateway, ttl_ms)
BAD_RECONCILE = [
    ("h1", "n1", "s-a", "", "g-1", 0),  # a reconciled use needs its request id
    ("h1", "n1", "s-a", "r\n1", "g-1", 0),  # newline separates the fields
    ("h1", "n1", "s-a", "r1", "g\n1", 0),
    ("h1", "n1", "s-a\n", "r1", "g-1", 0),
    ("h{1}", "n1", "s-a", "r1", "g-1", 0),
    ("h1", "", "s-a", "r1", "g-1", 0),
    ("h1", "n1", "s-a", "r1", "g-1", -1),
]


@pytest.mark.parametrize("args", BAD_RECONCILE)
def test_bad_reconcile_arguments_raise_value_error(
    harness: Harness, args: tuple[str, str, str, str, str, int]
) -> None:
    sub, jti, claimant, rid, via, ttl = args

    async def body(store: Store) -> None:
        with pytest.raises(ValueError):
            await store.reconcile_claim(sub, jti, claimant, rid, via, 1000.0, ttl)

    harness.run(body)


# -- conflicts --------------------------------------------------------------------------------


def _conflict(nonce: str, detected_at: float) -> Conflict:
    return Conflict(
        holder=ALICE.sub,
        nonce=nonce,
        first=Use("s-a", "H1", None, "r1", 1000.5),
        second=Use("s-b", "H2", "g-2", "r2", 1001.0),
        detected_at=detected_at,
    )


def test_conflicts_are_kept_once_and_listed_since_a_time(harness: Harness) -> None:
    async def body(store: Store) -> None:
        assert await store.conflicts() == []
        await store.add_conflict(_conflict("nonce-0000000002", 2000.0))
        await store.add_conflict(_conflict("nonce-0000000001", 1500.0))
        await store.add_conflict(_conflict("nonce-0000000002", 2500.0))  # found again: kept once
        unknown = Conflict(
            ALICE.sub,
            "nonce-0000000003",
            Use("s-x", None, None, None, None),
            Use("s-b", "H2", "g-2", "r2", 1001.0),
            3000.0,
        )
        await store.add_conflict(unknown)
        assert await store.conflicts() == [
            _conflict("nonce-0000000001", 1500.0),
            _conflict("nonce-0000000002", 2000.0),
            unknown,
        ]
        assert await store.conflicts(since=2000.0) == [
            _conflict("nonce-0000000002", 2000.0),
            unknown,
        ]
        assert await store.conflicts(since=3000.5) == []

    harness.run(body)


# -- key layout (Redis Cluster: one slot per holder, one per institution) ---------------------


@pytest.mark.parametrize("sub", ["h-alice", "1234567890", "a:b"])
def test_a_tokens_use_record_shares_its_holders_slot(sub: str) -> None:
    assert use_key(sub, "n1") == f"vu:{{{sub}}}:n1"
    assert key_slot(use_key(sub, "n1").encode()) == key_slot(holder_key(sub).encode())
    assert key_slot(use_key(sub, "n1").encode()) == key_slot(nonce_key(sub, "n1").encode())


def test_an_institutions_sets_share_a_slot() -> None:
    assert institution_scanners_key("H1") == "vx:{H1}"
    assert institution_gateways_key("H1") == "vgx:{H1}"
    assert key_slot(b"vx:{H1}") == key_slot(b"vgx:{H1}")


def test_memory_store_forgets_uses_it_no_longer_needs() -> None:
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0], reconcile_window_ms=1_000)

    async def body() -> None:
        for i in range(100):
            await store.claim("h1", f"n{i}", "s-a", None, 500)
        now[0] = 2.0
        await store.claim("h1", "last", "s-a", None, 500)
        assert store.nonce_count == 1

    asyncio.run(body())
    assert len(store._uses) == 1  # noqa: SLF001 - the bound is the point of the test
