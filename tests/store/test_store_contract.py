"""One contract, two stores: every test here runs against MemoryStore and a real Redis.

Tests are plain functions that hand an ``async def body(store)`` to ``harness.run``, which opens
the store inside a fresh event loop and closes it afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest
from redis_server import RedisServer

from verifier import codec
from verifier.errors import RecordError, StoreUnavailable
from verifier.records import Holder, Institution, Scanner
from verifier.store import NEW, REPLAYED, RETRY, MemoryStore, RedisStore, Store
from verifier.store.keys import holder_key, institution_key, scanner_key

TTL_MS = 60_000
ALICE = Holder(
    sub="h-alice",
    status="active",
    scheme="employee",
    region="110105",
    balance_fen=12_345,
    physical_card="active",
    name_masked="张*明",
    id_masked="1101**********123X",
)
BOB = Holder(sub="h-bob", status="suspended", scheme="resident", region="310101")


class Harness:
    """Opens one kind of store and moves its time forward (a fake clock, or real sleep)."""

    def __init__(self, kind: str, redis_url: str | None = None) -> None:
        self.kind = kind
        self.redis_url = redis_url
        self.now = 1_000.0

    def open(self) -> Store:
        if self.kind == "memory":
            return MemoryStore(clock=lambda: self.now)
        assert self.redis_url is not None
        # A generous deadline: this suite is about semantics; deadlines are tested separately.
        return RedisStore(self.redis_url, deadline_ms=2_000)

    def put_raw(self, store: Store, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` as it is: a record another tool wrote."""
        if isinstance(store, MemoryStore):
            store.put_raw(key, data)
            return
        assert self.redis_url is not None
        client = RedisServer.client_for(self.redis_url)
        try:
            client.set(key, data)
        finally:
            client.close()

    async def advance(self, ms: int) -> None:
        if self.kind == "memory":
            self.now += ms / 1000
        else:
            await asyncio.sleep(ms / 1000)

    def run(self, body: Callable[[Store], Awaitable[None]]) -> None:
        async def main() -> None:
            store = self.open()
            try:
                await body(store)
            finally:
                await store.close()

        asyncio.run(main())


@pytest.fixture(params=["memory", "redis"])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "memory":
        return Harness("memory")
    return Harness("redis", request.getfixturevalue("redis_url"))


def test_first_claim_is_new_and_reads_the_holder(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        claim = await store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS)
        assert (claim.outcome, claim.holder) == (NEW, ALICE)

    harness.run(body)


def test_second_claim_by_another_scanner_is_replayed(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        await store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS)
        claim = await store.claim(ALICE.sub, "n1", "scanner-b", "req-1", TTL_MS)
        assert (claim.outcome, claim.holder) == (REPLAYED, None)

    harness.run(body)


# (first claimant, first request id, second claimant, second request id, outcome of the second)
RETRY_TABLE = [
    ("a", "r1", "a", "r1", RETRY),  # same scanner, same request: a network retry
    ("a", "r1", "a", "r2", REPLAYED),  # same scanner, new request: a second use
    ("a", "r1", "b", "r1", REPLAYED),  # request id alone proves nothing
    ("a", None, "a", None, REPLAYED),  # no request id: never a retry
    ("a", None, "a", "r1", REPLAYED),  # first claim had none, so nothing can match it
    ("a", "r1", "a", None, REPLAYED),  # the retry must carry the request id again
    ("a", "", "a", "", REPLAYED),  # an empty request id counts as none
    ("a", "r1", "ab", "r1", REPLAYED),  # claimant compared whole, not as a prefix
    ("a", "r", "a", "r1", REPLAYED),  # request id compared whole, not as a prefix
    ("a", "r1", "a", "r", REPLAYED),  # ... in both directions
]


@pytest.mark.parametrize(("c1", "r1", "c2", "r2", "expected"), RETRY_TABLE)
def test_retry_needs_same_claimant_and_same_nonempty_request_id(
    harness: Harness, c1: str, r1: str | None, c2: str, r2: str | None, expected: str
) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        first = await store.claim(ALICE.sub, "n1", c1, r1, TTL_MS)
        second = await store.claim(ALICE.sub, "n1", c2, r2, TTL_MS)
        assert first.outcome == NEW
        assert second.outcome == expected
        assert second.holder == (ALICE if expected == RETRY else None)

    harness.run(body)


def test_retry_returns_the_holder_as_of_the_first_claim(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        await store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS)
        suspended = ALICE._replace(status="suspended")
        await store.put_holder(suspended)
        retry = await store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS)
        assert (retry.outcome, retry.holder) == (RETRY, ALICE)
        fresh = await store.claim(ALICE.sub, "n2", "scanner-a", "req-2", TTL_MS)
        assert (fresh.outcome, fresh.holder) == (NEW, suspended)

    harness.run(body)


def test_each_claim_reads_the_record_as_it_is_now(harness: Harness) -> None:
    """Changed and changed back: every claim sees the current record (a decode cache keyed by
    the record's bytes must never serve an older one)."""

    async def body(store: Store) -> None:
        versions = [ALICE, ALICE._replace(status="suspended"), ALICE, ALICE._replace(balance_fen=1)]
        for i, version in enumerate(versions):
            await store.put_holder(version)
            claim = await store.claim(ALICE.sub, f"n{i}", "scanner-a", None, TTL_MS)
            assert (claim.outcome, claim.holder) == (NEW, version)

    harness.run(body)


def test_unknown_holder_still_consumes_the_nonce(harness: Harness) -> None:
    async def body(store: Store) -> None:
        first = await store.claim("h-nobody", "n1", "scanner-a", "req-1", TTL_MS)
        assert (first.outcome, first.holder) == (NEW, None)
        # Enrolling the holder afterwards does not make the used token usable again.
        await store.put_holder(
            Holder(sub="h-nobody", status="active", scheme="retiree", region="110105")
        )
        again = await store.claim("h-nobody", "n1", "scanner-b", "req-9", TTL_MS)
        assert (again.outcome, again.holder) == (REPLAYED, None)
        retry = await store.claim("h-nobody", "n1", "scanner-a", "req-1", TTL_MS)
        assert (retry.outcome, retry.holder) == (RETRY, None)  # the original verdict: unknown

    harness.run(body)


def test_nonces_belong_to_their_holder(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        await store.put_holder(BOB)
        a = await store.claim(ALICE.sub, "same-jti", "scanner-a", None, TTL_MS)
        b = await store.claim(BOB.sub, "same-jti", "scanner-a", None, TTL_MS)
        assert (a.outcome, a.holder, b.outcome, b.holder) == (NEW, ALICE, NEW, BOB)

    harness.run(body)


def test_nonce_is_forgotten_after_its_ttl(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        assert (await store.claim(ALICE.sub, "n1", "a", None, 300)).outcome == NEW
        assert (await store.claim(ALICE.sub, "n1", "a", None, 300)).outcome == REPLAYED
        await harness.advance(500)
        assert (await store.claim(ALICE.sub, "n1", "b", None, 300)).outcome == NEW

    harness.run(body)


def test_records_round_trip(harness: Harness) -> None:
    inst = Institution(id="H001", name="协和医院", cards=frozenset({"mi-voucher", "ss-ecard"}))
    off = Institution(id="P002", name="Pharmacy", cards=frozenset(), enabled=False)
    scanner = Scanner(id="S1", institution="H001", secret_hash="ab" * 32)
    revoked = Scanner(id="S2", institution="P002", secret_hash="cd" * 32, revoked=True)

    async def body(store: Store) -> None:
        assert await store.get_holder(ALICE.sub) is None
        assert await store.get_institution(inst.id) is None
        assert await store.get_scanner(scanner.id) is None
        for holder in (ALICE, BOB):
            await store.put_holder(holder)
            assert await store.get_holder(holder.sub) == holder
        for institution in (inst, off):
            await store.put_institution(institution)
            assert await store.get_institution(institution.id) == institution
        for s in (scanner, revoked):
            await store.put_scanner(s)
            assert await store.get_scanner(s.id) == s
        moved = BOB._replace(region="440305")
        await store.put_holder(moved)  # a put replaces the record
        assert await store.get_holder(BOB.sub) == moved

    harness.run(body)


def test_bulk_put_counts_and_reports_progress(harness: Harness) -> None:
    holders = (
        Holder(sub=f"h{i}", status="active", scheme="flexible", region="110105")
        for i in range(2500)
    )
    progress: list[int] = []

    async def body(store: Store) -> None:
        assert await store.put_holders(holders, on_progress=progress.append) == 2500
        assert progress == [1000, 2000, 2500]
        for i in (0, 999, 1000, 2499):
            holder = await store.get_holder(f"h{i}")
            assert holder is not None and holder.sub == f"h{i}"
        assert await store.put_holders([]) == 0

    harness.run(body)


def test_concurrent_claims_of_one_nonce_give_exactly_one_new(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        claims = await asyncio.gather(
            *(store.claim(ALICE.sub, "n1", f"scanner-{i}", f"req-{i}", TTL_MS) for i in range(200))
        )
        outcomes = [c.outcome for c in claims]
        assert outcomes.count(NEW) == 1
        assert outcomes.count(REPLAYED) == 199

    harness.run(body)


def test_concurrent_retries_of_one_request_give_one_new_and_the_rest_retry(
    harness: Harness,
) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        claims = await asyncio.gather(
            *(store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS) for _ in range(200))
        )
        assert [c.outcome for c in claims].count(NEW) == 1
        assert [c.outcome for c in claims].count(RETRY) == 199
        assert all(c.holder == ALICE for c in claims)

    harness.run(body)


# Arguments a store cannot record unambiguously, as (sub, jti, claimant, request id, ttl_ms).
BAD_CLAIMS = [
    ("", "n1", "a", None, TTL_MS),  # no holder id
    ("h{1}", "n1", "a", None, TTL_MS),  # braces would break the Redis hash tag
    ("h1", "", "a", None, TTL_MS),  # no nonce
    ("h1", "n1", "", None, TTL_MS),  # no claimant
    ("h1", "n1", "a\nb", None, TTL_MS),  # newline separates claimant from request id
    ("h1", "n1", "a", "r\n1", TTL_MS),  # ... and request id from the holder snapshot
    ("h1", "n1", "a", None, 0),  # a nonce must live for some time
    ("h1", "n1", "a", None, -5),
]


@pytest.mark.parametrize("args", BAD_CLAIMS)
def test_bad_claim_arguments_raise_value_error(
    harness: Harness, args: tuple[str, str, str, str | None, int]
) -> None:
    async def body(store: Store) -> None:
        with pytest.raises(ValueError):
            await store.claim(*args)

    harness.run(body)


def test_ping_and_closed_store(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.ping()
        await store.close()
        with pytest.raises(StoreUnavailable):
            await store.claim(ALICE.sub, "n1", "a", None, TTL_MS)
        with pytest.raises(StoreUnavailable):
            await store.ping()

    harness.run(body)


# -- records the codec refuses ----------------------------------------------------------------

ID_NUMBER = "11010519491231002X"


def _alice_with(**change: object) -> bytes:
    return orjson.dumps({**codec.holder_to_json(ALICE), **change})


# Holder records as another tool might have written them, each with why the codec refuses it.
UNREADABLE_HOLDERS = [
    b'{"scheme": "nope"}',  # no sub, status, region; and no such scheme
    _alice_with(scheme="nope"),  # an unknown enumeration value
    _alice_with(balance_fen=-100),  # a negative balance
    _alice_with(id_masked=ID_NUMBER),  # an unmasked ID number
    _alice_with(balance_fen="12.34"),  # a balance as a string
    b"\x00\xffnot JSON at all",
    b"[]",  # JSON, not an object
]


@pytest.mark.parametrize("data", UNREADABLE_HOLDERS)
def test_unreadable_holder_record_still_consumes_the_nonce(harness: Harness, data: bytes) -> None:
    """Regression: a holder record the codec refuses made the claim raise (a 503 on Redis, a
    500 from decide on anything the codec let through) after the nonce was spent, so the
    patient's rescan was replayed. The claim answers, saying the record was unreadable."""

    async def body(store: Store) -> None:
        harness.put_raw(store, holder_key(ALICE.sub), data)
        first = await store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS)
        assert (first.outcome, first.holder) == (NEW, None)
        assert first.record_error
        assert ID_NUMBER not in first.record_error  # safe to log
        again = await store.claim(ALICE.sub, "n1", "scanner-b", None, TTL_MS)
        assert (again.outcome, again.holder, again.record_error) == (REPLAYED, None, None)
        # The retry reads the snapshot kept with the nonce: unreadable too, the same verdict.
        retry = await store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS)
        assert (retry.outcome, retry.holder, retry.record_error) == (
            RETRY,
            None,
            first.record_error,
        )
        with pytest.raises(RecordError, match="unreadable record"):
            await store.get_holder(ALICE.sub)
        # Repaired, the record reads again; the spent nonce stays spent.
        await store.put_holder(ALICE)
        fixed = await store.claim(ALICE.sub, "n2", "scanner-a", None, TTL_MS)
        assert (fixed.outcome, fixed.holder, fixed.record_error) == (NEW, ALICE, None)
        assert (await store.claim(ALICE.sub, "n1", "scanner-c", None, TTL_MS)).outcome == REPLAYED

    harness.run(body)


def test_readable_claims_carry_no_record_error(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        known = await store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS)
        unknown = await store.claim("h-nobody", "n1", "scanner-a", "req-1", TTL_MS)
        assert known.record_error is None and unknown.record_error is None

    harness.run(body)


def test_snapshot_taken_before_the_record_went_bad_still_reads(harness: Harness) -> None:
    async def body(store: Store) -> None:
        await store.put_holder(ALICE)
        await store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS)
        harness.put_raw(store, holder_key(ALICE.sub), _alice_with(scheme="nope"))
        retry = await store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS)
        assert (retry.outcome, retry.holder, retry.record_error) == (RETRY, ALICE, None)
        fresh = await store.claim(ALICE.sub, "n2", "scanner-a", "req-2", TTL_MS)
        assert (fresh.outcome, fresh.holder) == (NEW, None)
        assert fresh.record_error is not None and "scheme" in fresh.record_error

    harness.run(body)


def test_unreadable_institution_and_scanner_records_raise_on_reading(harness: Harness) -> None:
    """An admin sees a RecordError; the service, which cannot authenticate on a record it
    cannot read, sees StoreUnavailable (a 503): the error is both."""
    bad_inst = b'{"id": "H001", "name": "X", "cards": ["paper"]}'
    bad_scanner = b'{"id": "S1", "institution": "H001", "secret_hash": "not a hash"}'

    async def body(store: Store) -> None:
        harness.put_raw(store, institution_key("H001"), bad_inst)
        harness.put_raw(store, scanner_key("S1"), bad_scanner)
        with pytest.raises(RecordError, match="vi:H001: unreadable record: institution: cards"):
            await store.get_institution("H001")
        with pytest.raises(
            StoreUnavailable, match="vs:S1: unreadable record: scanner: secret_hash"
        ):
            await store.get_scanner("S1")

    harness.run(body)


def test_records_the_codec_would_refuse_are_not_written(harness: Harness) -> None:
    async def body(store: Store) -> None:
        with pytest.raises(RecordError, match="balance_fen"):
            await store.put_holder(ALICE._replace(balance_fen=-1))
        with pytest.raises(RecordError, match="id_masked"):
            await store.put_holders([BOB, ALICE._replace(id_masked=ID_NUMBER)])
        with pytest.raises(RecordError, match="secret_hash"):
            await store.put_scanner(Scanner(id="S1", institution="H001", secret_hash="ab"))
        assert await store.get_holder(ALICE.sub) is None
        assert await store.get_holder(BOB.sub) is None  # a chunk with a bad record: none of it
        assert await store.get_scanner("S1") is None

    harness.run(body)
