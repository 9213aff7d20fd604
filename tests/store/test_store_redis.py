"""Redis-only behaviour: key layout, TTLs, eviction policy, failing closed (the codec: test_codec.py).

Fault-injection tests get a server of their own (``private_server``) to pause, kill and restart.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from redis.crc import key_slot
from redis_server import RedisServer

from verifier import codec
from verifier.errors import ConfigError, StoreUnavailable
from verifier.records import Holder
from verifier.store import NEW, REPLAYED, RETRY, RedisStore, open_store
from verifier.store.keys import holder_key, nonce_key

TTL_MS = 60_000
ALICE = Holder(sub="h-alice", status="active", scheme="employee", region="110105")


@pytest.fixture
def private_server(redis_server: RedisServer) -> Iterator[RedisServer]:
    """A server of this test's own (``redis_server`` only to fail clearly if none is installed)."""
    with RedisServer() as server:
        yield server


def holders(n: int) -> list[Holder]:
    return [
        Holder(sub=f"h{i}", status="active", scheme="resident", region="110105") for i in range(n)
    ]


# -- key layout -----------------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["h-alice", "1234567890", "张三", "a:b", "x" * 200])
def test_holder_and_nonce_keys_share_a_hash_slot(sub: str) -> None:
    assert holder_key(sub) == f"vh:{{{sub}}}"
    assert nonce_key(sub, "n:1") == f"vn:{{{sub}}}:n:1"
    assert key_slot(holder_key(sub).encode()) == key_slot(nonce_key(sub, "n:1").encode())


def test_claim_writes_the_documented_keys_and_values(redis_url: str) -> None:
    async def body() -> None:
        store = RedisStore(redis_url)
        try:
            await store.put_holder(ALICE)
            await store.claim(ALICE.sub, "n1", "scanner-a", "req-1", TTL_MS)
            await store.claim(ALICE.sub, "n2", "scanner-a", None, TTL_MS)
            await store.claim("h-nobody", "n3", "scanner-b", "req-3", TTL_MS)
        finally:
            await store.close()

    asyncio.run(body())
    client = RedisServer.client_for(redis_url)
    try:
        assert client.get("vn:{h-alice}:n1") == b"scanner-a\nreq-1\n" + codec.encode_holder(ALICE)
        assert client.get("vn:{h-alice}:n2") == b"scanner-a\n"  # no request id: no snapshot
        assert client.get("vn:{h-nobody}:n3") == b"scanner-b\nreq-3"  # unknown holder
        # Each use, kept for the reconcile window: claimant, request id, Unix ms, no gateway.
        for key, head in (
            ("vu:{h-alice}:n1", b"scanner-a\nreq-1\n"),
            ("vu:{h-alice}:n2", b"scanner-a\n\n"),
            ("vu:{h-nobody}:n3", b"scanner-b\nreq-3\n"),
        ):
            value = client.get(key)
            assert isinstance(value, bytes) and value.startswith(head) and value.endswith(b"\n")
            used_at_ms = int(value[len(head) : -1])
            assert abs(used_at_ms / 1000 - time.time()) < 60
            window_ms = 72 * 3_600_000
            assert window_ms - 60_000 < client.pttl(key) <= window_ms
        assert set(client.keys("*")) == {
            b"vh:{h-alice}",
            b"vn:{h-alice}:n1",
            b"vn:{h-alice}:n2",
            b"vn:{h-nobody}:n3",
            b"vu:{h-alice}:n1",
            b"vu:{h-alice}:n2",
            b"vu:{h-nobody}:n3",
            b"vf:marker",  # the node's marker (verifier.store.identity): a flush removes it
        }
    finally:
        client.close()


def test_nonce_lives_at_least_ttl_ms(redis_url: str) -> None:
    client = RedisServer.client_for(redis_url)
    seconds, micros = client.time()
    before_ms = seconds * 1000 + micros // 1000

    async def body() -> None:
        store = RedisStore(redis_url)
        try:
            await store.claim(ALICE.sub, "n1", "a", None, TTL_MS)
        finally:
            await store.close()

    try:
        asyncio.run(body())
        assert client.pexpiretime(nonce_key(ALICE.sub, "n1")) >= before_ms + TTL_MS
        assert 0 < client.pttl(nonce_key(ALICE.sub, "n1")) <= TTL_MS
    finally:
        client.close()


# -- eviction policy ------------------------------------------------------------------------


def _check_policy(url: str, allow: bool) -> None:
    async def body() -> None:
        store = RedisStore(url)
        try:
            await store.check_eviction_policy(allow)
        finally:
            await store.close()

    asyncio.run(body())


def test_noeviction_is_accepted(redis_url: str) -> None:
    _check_policy(redis_url, allow=False)


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "volatile-ttl", "allkeys-lfu"])
def test_evicting_policy_is_refused_unless_allowed(
    redis_url: str, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = RedisServer.client_for(redis_url)
    client.config_set("maxmemory-policy", policy)
    client.close()
    with pytest.raises(ConfigError, match=f"maxmemory-policy is '{policy}'.*noeviction"):
        _check_policy(redis_url, allow=False)
    with pytest.raises(ConfigError, match=policy):
        asyncio.run(open_store(redis_url))
    with caplog.at_level(logging.WARNING, logger="verifier.store.redis"):
        _check_policy(redis_url, allow=True)
    assert policy in caplog.text


def test_config_not_permitted_is_refused_unless_allowed(
    redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = RedisServer.client_for(redis_url)
    client.acl_setuser(
        "limited", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-config"]
    )
    url = f"redis://limited:pw@{redis_server.host}:{redis_server.port}/0"
    try:
        with pytest.raises(ConfigError, match="not permitted") as info:
            _check_policy(url, allow=False)
        assert "pw@" not in str(info.value)
        with caplog.at_level(logging.WARNING, logger="verifier.store.redis"):
            _check_policy(url, allow=True)
        assert "not permitted" in caplog.text
    finally:
        client.acl_deluser("limited")
        client.close()


# -- failing closed -------------------------------------------------------------------------


def test_paused_server_fails_within_the_deadline_then_answers_without_stale_replies(
    private_server: RedisServer,
) -> None:
    people = holders(8)

    async def body() -> None:
        # Two connections for eight callers: a socket that kept a late reply would be reused.
        store = RedisStore(private_server.url, deadline_ms=200)
        try:
            await store.put_holders(people)
            await asyncio.gather(*(store.claim(f"h{i}", "warm", "a", None, TTL_MS) for i in (0, 1)))
            private_server.pause()
            started = time.monotonic()
            lost = await asyncio.gather(
                *(store.claim(f"h{i}", "lost", "a", f"r{i}", TTL_MS) for i in range(8)),
                store.ping(),
                return_exceptions=True,
            )
            assert all(isinstance(result, StoreUnavailable) for result in lost), lost
            assert time.monotonic() - started < 1.0  # about the 200 ms deadline, never retried

            private_server.resume()
            await asyncio.sleep(0.1)  # the server now answers sockets we gave up on
            for round_ in range(3):
                claims = await asyncio.gather(
                    *(store.claim(f"h{i}", f"n{round_}", "a", None, TTL_MS) for i in range(8))
                )
                assert [(c.outcome, c.holder) for c in claims] == [(NEW, h) for h in people]
            for i, holder in enumerate(people):
                assert await store.get_holder(f"h{i}") == holder
            # A lost claim may have run after all; its retry tells, with the original verdict.
            for i, holder in enumerate(people):
                claim = await store.claim(f"h{i}", "lost", "a", f"r{i}", TTL_MS)
                assert claim.outcome in (NEW, RETRY) and claim.holder == holder
        finally:
            await store.close()

    asyncio.run(body())


def test_a_timed_out_connection_never_serves_a_later_call(private_server: RedisServer) -> None:
    """The risky order: the next call is sent while the late reply is still to come."""
    people = holders(2)

    async def body() -> None:
        store = RedisStore(private_server.url, deadline_ms=300)
        try:
            await store.put_holders(people)
            await store.claim("h0", "warm", "a", None, TTL_MS)
            private_server.pause()
            with pytest.raises(StoreUnavailable):
                await store.claim("h0", "first", "a", None, TTL_MS)
            second = asyncio.create_task(store.claim("h1", "second", "a", None, TTL_MS))
            await asyncio.sleep(0.05)
            private_server.resume()  # the reply to "first" goes out now
            claim = await second
            assert (claim.outcome, claim.holder) == (NEW, people[1])
        finally:
            await store.close()

    asyncio.run(body())


def test_a_cancelled_call_neither_leaks_its_connection_nor_its_reply(
    private_server: RedisServer,
) -> None:
    """A caller cancelled from outside (say, the HTTP client went away) mid-claim."""
    people = holders(2)

    async def body() -> None:
        store = RedisStore(private_server.url, deadline_ms=1000)
        try:
            await store.put_holders(people)
            await store.claim("h0", "warm", "a", None, TTL_MS)  # loads the script
            private_server.pause()
            task = asyncio.create_task(store.claim("h0", "n1", "a", None, TTL_MS))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Only one connection: if the cancelled call had leaked it, this one would starve.
            second = asyncio.create_task(store.claim("h1", "n1", "a", None, TTL_MS))
            await asyncio.sleep(0.05)
            private_server.resume()
            claim = await second
            assert (claim.outcome, claim.holder) == (NEW, people[1])
        finally:
            await store.close()

    asyncio.run(body())


def test_a_burst_of_timeouts_does_not_multiply_connections(
    private_server: RedisServer,
) -> None:
    """Calls that time out together share the one pipelined connection: no reconnect storm."""
    client = private_server.client()

    async def body() -> None:
        store = RedisStore(private_server.url, deadline_ms=200)
        try:
            private_server.pause()  # connects get through to the kernel; the handshake waits
            results = await asyncio.gather(
                *(store.claim("h0", f"n{i}", "a", None, TTL_MS) for i in range(20)),
                return_exceptions=True,
            )
            assert all(isinstance(result, StoreUnavailable) for result in results), results
            private_server.resume()
            for _ in range(100):
                if client.info("clients")["connected_clients"] == 1 + 1:  # + our client
                    break
                await asyncio.sleep(0.01)
            assert client.info("clients")["connected_clients"] == 1 + 1
            made = client.info("stats")["total_connections_received"]
            claims = await asyncio.gather(
                *(store.claim("h0", f"m{i}", "a", None, TTL_MS) for i in range(8))
            )
            assert [c.outcome for c in claims] == [NEW] * 8
            assert client.info("stats")["total_connections_received"] == made  # none new
        finally:
            await store.close()

    try:
        asyncio.run(body())
    finally:
        client.close()


def test_no_client_side_retry_after_a_timeout(private_server: RedisServer) -> None:
    client = private_server.client()

    async def body() -> None:
        store = RedisStore(private_server.url, deadline_ms=50)
        try:
            await store.claim(ALICE.sub, "warm", "a", None, TTL_MS)  # loads the script
            client.config_resetstat()
            private_server.pause()
            with pytest.raises(StoreUnavailable, match="no reply within 50 ms"):
                await store.claim(ALICE.sub, "n1", "a", "r1", TTL_MS)
            private_server.resume()
            await asyncio.sleep(0.2)
        finally:
            await store.close()

    try:
        asyncio.run(body())
        stats = client.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] == 1  # sent once, run once (late)
        assert "cmdstat_eval" not in stats
    finally:
        client.close()


def test_killed_server_fails_fast_and_a_restart_recovers_by_itself(
    private_server: RedisServer,
) -> None:
    async def body() -> None:
        store = RedisStore(private_server.url, deadline_ms=1000)
        try:
            await store.put_holder(ALICE)
            await asyncio.gather(
                *(store.claim(ALICE.sub, f"w{i}", "a", None, TTL_MS) for i in range(4))
            )
            # In threads, so the event loop runs on meanwhile, as it would in the service.
            await asyncio.to_thread(private_server.kill)
            for call in (store.claim(ALICE.sub, "n1", "a", None, TTL_MS), store.ping()):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await call
                assert time.monotonic() - started < 0.5  # refused at once: no deadline, no backoff
            await asyncio.to_thread(private_server.restart)  # empty: no data, no script cache
            await store.put_holder(ALICE)
            claims = await asyncio.gather(
                *(store.claim(ALICE.sub, f"n{i}", "a", None, TTL_MS) for i in range(4))
            )
            assert [(c.outcome, c.holder) for c in claims] == [(NEW, ALICE)] * 4
        finally:
            await store.close()

    asyncio.run(body())
    client = private_server.client()
    try:
        assert client.info("commandstats")["cmdstat_eval"]["calls"] >= 1  # NOSCRIPT -> EVAL
    finally:
        client.close()


def test_full_server_fails_closed_and_records_nothing(redis_url: str) -> None:
    client = RedisServer.client_for(redis_url)

    async def body() -> None:
        store = RedisStore(redis_url)
        try:
            await store.put_holder(ALICE)
            client.config_set("maxmemory", 1)
            with pytest.raises(StoreUnavailable, match="maxmemory"):
                await store.claim(ALICE.sub, "n1", "a", None, TTL_MS)
            with pytest.raises(StoreUnavailable, match="maxmemory"):
                await store.put_holders(holders(3))
        finally:
            client.config_set("maxmemory", 0)
            await store.close()

    try:
        asyncio.run(body())
        assert client.exists(nonce_key(ALICE.sub, "n1")) == 0
    finally:
        client.close()


def test_unreadable_data_is_a_verdict_and_a_taken_nonce_key_is_unavailable(
    redis_url: str,
) -> None:
    """A record the codec refuses is the claim's to report (the nonce is spent: the token was
    genuine); a nonce key holding something that is not a string at all is a store problem."""
    client = RedisServer.client_for(redis_url)
    client.set(holder_key("h-bad"), b"{not json")
    client.set(
        holder_key("h-bool"),
        b'{"sub":"h-bool","status":"active","scheme":"x","region":"1","balance_fen":true}',
    )
    client.lpush(nonce_key(ALICE.sub, "n-list"), b"x")
    # A snapshot kept with a nonce by an older or foreign writer.
    client.set(nonce_key(ALICE.sub, "n-old"), b'a\nr1\n{"sub":"h-alice","balance_fen":-1}')
    client.close()

    async def body() -> None:
        store = RedisStore(redis_url)
        try:
            for sub in ("h-bad", "h-bool"):
                claim = await store.claim(sub, "n1", "a", None, TTL_MS)
                assert (claim.outcome, claim.holder) == (NEW, None) and claim.record_error
                assert (await store.claim(sub, "n1", "b", None, TTL_MS)).outcome == REPLAYED
                with pytest.raises(StoreUnavailable, match="unreadable record"):
                    await store.get_holder(sub)
            retry = await store.claim(ALICE.sub, "n-old", "a", "r1", TTL_MS)
            assert (retry.outcome, retry.holder) == (RETRY, None) and retry.record_error
            # Taken by something else: replayed without a request id, unreadable with one.
            assert (await store.claim(ALICE.sub, "n-list", "a", None, TTL_MS)).outcome == REPLAYED
            with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
                await store.claim(ALICE.sub, "n-list", "a", "r1", TTL_MS)
        finally:
            await store.close()

    asyncio.run(body())


# Run with redis-py made unimportable: the store's runtime needs hiredis alone.
_WITHOUT_REDIS_PY = """
import asyncio, sys
sys.modules["redis"] = None
from verifier.records import Holder
from verifier.store import RedisStore
from verifier.store.resp import RespError

async def main():
    store = RedisStore(sys.argv[1])
    try:
        await store.put_holder(Holder("h1", "active", "resident", "110105"))
        claims = [await store.claim("h1", "n1", c, None, 60000) for c in ("a", "b")]
        print(*(c.outcome for c in claims))
    finally:
        await store.close()

asyncio.run(main())
assert RespError("NOSCRIPT No matching script").code == "NOSCRIPT"
"""


def test_the_store_runs_without_redis_py(redis_url: str) -> None:
    """Regression: store/redis.py imported redis-py for three exception classes alone, so
    redis-py was a runtime dependency; error replies are now resp.RespError values."""
    client = RedisServer.client_for(redis_url)
    client.script_flush()  # the first claim goes NOSCRIPT -> EVAL
    client.close()
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_REDIS_PY, redis_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [NEW, REPLAYED]


# -- open_store -----------------------------------------------------------------------------


def test_open_store_picks_redis_by_url(redis_url: str) -> None:
    async def body() -> None:
        store = await open_store(redis_url, deadline_ms=1000)
        try:
            assert isinstance(store, RedisStore)
            await store.ping()
        finally:
            await store.close()

    asyncio.run(body())


@pytest.mark.parametrize(
    "url", ["postgres://user:secret@db/x", "redis-cluster://h:1", "", "localhost:6379"]
)
def test_open_store_refuses_other_schemes_naming_the_setting(url: str) -> None:
    with pytest.raises(ConfigError, match="VERIFIER_STORE") as info:
        asyncio.run(open_store(url))
    assert "secret" not in str(info.value)


def test_open_store_on_a_dead_server_is_unavailable(private_server: RedisServer) -> None:
    private_server.kill()
    with pytest.raises(StoreUnavailable):
        asyncio.run(open_store(private_server.url))


def test_rediss_url_is_accepted_without_io() -> None:
    store = RedisStore("rediss://user:pw@redis.example:6380/2")
    asyncio.run(store.close())
