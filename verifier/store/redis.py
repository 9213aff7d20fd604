"""The Redis store: one Lua round trip per claim, fail closed on anything unexpected.

Key layout: :mod:`verifier.store.keys`; the claim script: :mod:`verifier.store.claim_script`;
connections: :mod:`verifier.store.pool`.

Failure policy. Every call runs under its own deadline (``asyncio.timeout``): ``deadline_ms``
(default 50) for single commands, ``admin_deadline_ms`` for bulk writes and the startup check;
new connections get ``admin_deadline_ms`` too, in the background. A timeout, a connection error,
an error reply or a reply of the wrong shape raises :class:`verifier.errors.StoreUnavailable`.
Nothing is retried: redis-py's retries are off (``Retry(NoBackoff(), 0)``; its default retries
10 times with backoff), because a retried claim could turn our own first attempt into a REPLAYED
verdict. A connection whose call failed or was cancelled half way is closed before it goes back
to the pool, so a late reply is never read by a later call. After a server restart, dead pooled
connections are found on checkout and reconnected, and the script is re-sent (NOSCRIPT -> EVAL):
the store object carries on by itself.

Caveat of failing closed: a claim that timed out may still have run on the server. A client
that retries with the same claimant and request id then gets RETRY and the original verdict.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from redis.exceptions import NoScriptError, RedisError, ResponseError

from verifier.errors import ConfigError, RecordError, StoreUnavailable
from verifier.records import Holder, Institution, Scanner
from verifier.store import codec
from verifier.store.base import Claim
from verifier.store.claim_script import CLAIM_LUA, CLAIM_SHA, parse_claim_reply
from verifier.store.keys import (
    check_claim_args,
    holder_key,
    institution_key,
    nonce_key,
    scanner_key,
)
from verifier.store.pool import Pool

log = logging.getLogger(__name__)

T = TypeVar("T")
Command = tuple[str | bytes | int, ...]

# The setting an operator flips to run on an evicting Redis anyway.
ALLOW_EVICTION_SETTING = "VERIFIER_ALLOW_EVICTION"


class RedisStore:
    """A :class:`verifier.store.base.Store` on Redis (``redis://`` or ``rediss://`` URL).

    Creating one does no I/O; connections open on first use, at most ``max_connections``. Call
    :meth:`check_eviction_policy` once at startup (``open_store`` does).
    """

    def __init__(
        self,
        url: str,
        *,
        deadline_ms: int = 50,
        admin_deadline_ms: int = 2000,
        max_connections: int = 64,
        chunk_size: int = 1000,
    ) -> None:
        if urlsplit(url).scheme not in ("redis", "rediss"):
            raise ConfigError("VERIFIER_STORE: a Redis store needs a redis:// or rediss:// URL")
        if deadline_ms <= 0 or admin_deadline_ms <= 0 or chunk_size <= 0:
            raise ValueError("deadlines and chunk size must be positive")
        self._deadline = deadline_ms / 1000
        self._admin_deadline = admin_deadline_ms / 1000
        self._chunk_size = chunk_size
        self._closed = False
        self._pool = Pool(url, size=max_connections, connect_timeout=self._admin_deadline)

    async def _send_and_read(self, commands: Sequence[Command]) -> list[object]:
        """Pipeline ``commands`` on one pooled connection; error replies come back as values."""
        conn = await self._pool.acquire()
        in_step = False
        try:
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            replies: list[object] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as err:  # a whole reply: the stream is still in step
                    replies.append(err)
            in_step = True
            return replies
        finally:
            # Out of step (failed, timed out, cancelled): the pool closes the socket, so a late
            # reply can never be read by another call.
            await self._pool.release(conn, in_step=in_step)

    async def _call(self, what: str, deadline: float, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` within ``deadline`` seconds; map every failure to StoreUnavailable."""
        if self._closed:
            raise StoreUnavailable("redis store is closed")
        try:
            async with asyncio.timeout(deadline):
                return await work()
        except TimeoutError as err:
            raise StoreUnavailable(f"redis {what}: no reply within {deadline * 1000:g} ms") from err
        except (RedisError, OSError) as err:
            raise StoreUnavailable(f"redis {what}: {type(err).__name__}: {err}") from err

    async def _command(self, what: str, *command: str | bytes | int) -> object:
        [reply] = await self._call(what, self._deadline, lambda: self._send_and_read([command]))
        if isinstance(reply, ResponseError):
            raise StoreUnavailable(f"redis {what}: {_describe(reply)}")
        return reply

    async def _set(self, key: str, value: bytes) -> None:
        reply = await self._command("SET", "SET", key, value)
        if reply != b"OK":
            raise StoreUnavailable(f"redis SET: {_describe(reply)}")

    async def _get(self, key: str, decode: Callable[[bytes], T]) -> T | None:
        reply = await self._command("GET", "GET", key)
        if reply is None:
            return None
        if not isinstance(reply, bytes):
            raise StoreUnavailable(f"redis GET {key}: {_describe(reply)}")
        return _decode(key, reply, decode)

    async def claim(
        self, sub: str, jti: str, claimant: str, request_id: str | None, ttl_ms: int
    ) -> Claim:
        """See :meth:`verifier.store.base.Store.claim`: one EVALSHA (EVAL after NOSCRIPT).

        An unknown holder still consumes the nonce (NEW with holder None).
        """
        check_claim_args(sub, jti, claimant, request_id, ttl_ms)
        args = (2, holder_key(sub), nonce_key(sub, jti), claimant, request_id or "", ttl_ms)

        async def run_script() -> object:
            [reply] = await self._send_and_read([("EVALSHA", CLAIM_SHA, *args)])
            if isinstance(reply, NoScriptError):  # script cache empty (restart, failover)
                [reply] = await self._send_and_read([("EVAL", CLAIM_LUA, *args)])
            return reply

        reply = await self._call("claim", self._deadline, run_script)
        if isinstance(reply, ResponseError):
            raise StoreUnavailable(f"redis claim: {_describe(reply)}")
        outcome, holder = parse_claim_reply(reply)
        if holder is None:
            return Claim(outcome, None)
        return Claim(outcome, _decode(holder_key(sub), holder, codec.decode_holder))

    async def put_holder(self, holder: Holder) -> None:
        await self._set(holder_key(holder.sub), codec.encode_holder(holder))

    async def put_holders(
        self, holders: Iterable[Holder], on_progress: Callable[[int], None] | None = None
    ) -> int:
        """SET ``holders`` in pipelined chunks of ``chunk_size``; return how many were written.

        Each chunk has ``admin_deadline_ms``; ``on_progress(n_done)`` is called after each one.
        A failure part way leaves the earlier chunks written.
        """
        done = 0
        it = iter(holders)
        while batch := list(itertools.islice(it, self._chunk_size)):
            commands = [("SET", holder_key(h.sub), codec.encode_holder(h)) for h in batch]
            send = functools.partial(self._send_and_read, commands)
            replies = await self._call("SET (bulk)", self._admin_deadline, send)
            bad = next((r for r in replies if r != b"OK"), None)
            if bad is not None:
                raise StoreUnavailable(f"redis SET (bulk) after {done} holders: {_describe(bad)}")
            done += len(batch)
            if on_progress is not None:
                on_progress(done)
        return done

    async def get_holder(self, sub: str) -> Holder | None:
        return await self._get(holder_key(sub), codec.decode_holder)

    async def put_institution(self, inst: Institution) -> None:
        await self._set(institution_key(inst.id), codec.encode_institution(inst))

    async def get_institution(self, inst_id: str) -> Institution | None:
        return await self._get(institution_key(inst_id), codec.decode_institution)

    async def put_scanner(self, scanner: Scanner) -> None:
        await self._set(scanner_key(scanner.id), codec.encode_scanner(scanner))

    async def get_scanner(self, scanner_id: str) -> Scanner | None:
        return await self._get(scanner_key(scanner_id), codec.decode_scanner)

    async def ping(self) -> None:
        reply = await self._command("PING", "PING")
        if reply != b"PONG":
            raise StoreUnavailable(f"redis PING: {_describe(reply)}")

    async def check_eviction_policy(self, allow_eviction: bool) -> None:
        """Refuse (ConfigError) a server whose ``maxmemory-policy`` is not ``noeviction``.

        An evicted nonce lets its token be accepted again; under ``noeviction`` a full Redis
        refuses writes instead, and claims fail closed. Where CONFIG is not permitted (managed
        Redis, ACLs) the policy cannot be checked, which is refused the same way. With
        ``allow_eviction`` both become a logged warning. StoreUnavailable if Redis does not answer.
        """
        command = ("CONFIG", "GET", "maxmemory-policy")
        [reply] = await self._call(
            "CONFIG GET", self._admin_deadline, lambda: self._send_and_read([command])
        )
        if isinstance(reply, dict):  # RESP3
            reply = [item for pair in reply.items() for item in pair]
        if isinstance(reply, ResponseError):
            problem = (
                f"CONFIG GET is not permitted on this Redis ({reply}), so its "
                "maxmemory-policy cannot be checked"
            )
        elif isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes):
            policy = reply[1].decode(errors="replace")
            if policy == "noeviction":
                return
            problem = f"Redis maxmemory-policy is {policy!r}"
        else:
            problem = f"unexpected reply to CONFIG GET maxmemory-policy: {reply!r:.100}"
        message = (
            f"{problem}; the verifier needs 'noeviction', because an evicted nonce would let "
            f"its token be accepted twice. Set {ALLOW_EVICTION_SETTING} to run anyway."
        )
        if not allow_eviction:
            raise ConfigError(message)
        log.warning("%s (allowed by %s)", message, ALLOW_EVICTION_SETTING)

    async def close(self) -> None:
        """Close all connections; later calls raise StoreUnavailable."""
        self._closed = True
        try:
            await self._pool.close()
        except (RedisError, OSError) as err:
            log.warning("closing the redis store: %s", err)


def _describe(reply: object) -> str:
    if isinstance(reply, ResponseError):
        return f"{type(reply).__name__}: {reply}"
    return f"unexpected reply {reply!r:.200}"


def _decode(key: str, data: bytes, decode: Callable[[bytes], T]) -> T:
    try:
        return decode(data)
    except RecordError as err:
        raise StoreUnavailable(f"redis {key}: unreadable record: {err}") from err
