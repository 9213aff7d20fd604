"""The Redis store: one Lua round trip per claim, fail closed on anything unexpected.

Key layout: :mod:`verifier.store.keys`; the claim script: :mod:`verifier.store.claim_script`;
the connection: :mod:`verifier.store.resp` (one auto-pipelined connection: every claim issued
in the same event-loop turn goes out in one write, replies are matched in order).

Failure policy. Every call runs under its own deadline (``asyncio.timeout``): ``deadline_ms``
(default 50) for single commands, ``admin_deadline_ms`` for bulk writes and the startup check.
A timeout, a connection error, an error reply or a reply of the wrong shape raises
:class:`verifier.errors.StoreUnavailable`. Nothing is retried (a retried claim could turn our own
first attempt into a REPLAYED verdict). A call that gives up leaves its reply to its own
abandoned future, so a late reply is never read by a later call; a connection that stops
answering altogether is closed and the next call reconnects. After a server restart the script
is re-sent (NOSCRIPT -> EVAL): the store object carries on by itself.

Caveat of failing closed: a claim that timed out may still have run on the server. A client
that retries with the same claimant and request id then gets RETRY and the original verdict.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from verifier import codec
from verifier.config import DEFAULT_RECONCILE_WINDOW_MS
from verifier.errors import ConfigError, StoreAuthFailed, StoreUnavailable
from verifier.records import Holder, Institution, Scanner
from verifier.store.base import Claim, claim_result, read_record
from verifier.store.claim_script import (
    CLAIM_LUA,
    CLAIM_SHA,
    claim_args,
    claim_prefix,
    parse_claim_reply,
)
from verifier.store.eviction import (
    POLICY_COMMAND,
    PolicyWatch,
    eviction_problem,
    refuse_eviction,
)
from verifier.store.identity import (
    CHECK_INTERVAL_S,
    Forgetting,
    Watch,
    greeting,
    parse_greeting,
    raise_forgotten,
)
from verifier.store.keys import (
    check_claim_args,
    holder_key,
    institution_key,
    institution_scanners_key,
    scanner_key,
)
from verifier.store.redis_gateways import GatewayRecords
from verifier.store.resp import (
    AuthFailed,
    ConnectionDown,
    PipelinedConnection,
    RespError,
    auth_failure,
    client_certificate_refused,
    pack,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Command = tuple[str | bytes | int, ...]

# How often a running service reads maxmemory-policy again (at most; see eviction_problem).
EVICTION_RECHECK_SECONDS = 5.0


class RedisStore(GatewayRecords):
    """A :class:`verifier.store.base.Store` on Redis (``redis://`` or ``rediss://`` URL).

    Each claim also keeps the token's use record for ``reconcile_window_ms`` (the
    VERIFIER_RECONCILE_WINDOW setting; see :mod:`verifier.store.redis_gateways`).
    Creating one does no I/O; connections open on first use, at most ``max_connections``. Call
    :meth:`check_eviction_policy` once at startup (``open_store`` does).
    """

    def __init__(
        self,
        url: str,
        *,
        deadline_ms: int = 50,
        admin_deadline_ms: int = 2000,
        chunk_size: int = 1000,
        reconcile_window_ms: int = DEFAULT_RECONCILE_WINDOW_MS,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: the TLS context of a ``rediss://`` URL (CA file, client certificate), made
        by :func:`verifier.store.resp.tls_context`; default, the system's CAs."""
        if urlsplit(url).scheme not in ("redis", "rediss"):
            raise ConfigError("VERIFIER_STORE: a Redis store needs a redis:// or rediss:// URL")
        if deadline_ms <= 0 or admin_deadline_ms <= 0 or chunk_size <= 0:
            raise ValueError("deadlines and chunk size must be positive")
        self._deadline = deadline_ms / 1000
        self._admin_deadline = admin_deadline_ms / 1000
        self._chunk_size = chunk_size
        self.reconcile_window_ms = reconcile_window_ms
        self._keep = b"%d" % reconcile_window_ms
        self._closed = False
        # Started by check_eviction_policy: the policy read again while running.
        self._policy = PolicyWatch()
        # Forgetting means reject (verifier.store.identity): the node's identity is read on
        # every new connection before it carries a claim, and again every CHECK_INTERVAL_S.
        self._watch = Watch()
        self._checking: asyncio.Future[None] | None = None
        # Calls in flight together share one write and one read (auto-pipelining). A command
        # unanswered for 20 deadlines (paused server, dead network) closes the connection.
        self._conn = PipelinedConnection(
            url,
            deadline=self._deadline,
            connect_timeout=self._admin_deadline,
            stall_timeout=max(1.0, 20 * self._deadline, self._admin_deadline),
            tls=tls,
            greeting=greeting,
            on_greeting=self._greeted,
        )
        self._where = f"{self._conn.host}:{self._conn.port}"

    @property
    def forgotten_before(self) -> float | None:
        """See :attr:`verifier.store.base.Store.forgotten_before`."""
        return self._watch.forgotten_before

    @property
    def forgettings(self) -> list[Forgetting]:
        """See :attr:`verifier.store.base.Store.forgettings`."""
        return list(self._watch.detections)

    def _greeted(self, replies: list[object]) -> None:
        """The node's identity as a new connection (or a periodic check) read it."""
        identity, recorded = parse_greeting(replies)
        self._watch.recorded(recorded)
        found = self._watch.observe(self._where, identity, time.time())
        if found is not None:  # tell verifier processes that start later (best effort)
            asyncio.get_running_loop().call_soon(self._record, found.at)

    def _record(self, at: float) -> None:
        if not self._closed:
            task = asyncio.ensure_future(self._conn.call(raise_forgotten(at), self._admin_deadline))
            task.add_done_callback(_log_record_failure)

    async def _recheck(self) -> None:
        """Read the node's identity again (one check shared by every caller waiting for it)."""
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._check_identity())
            self._checking.add_done_callback(self._checked)
        await asyncio.shield(self._checking)

    def _checked(self, task: asyncio.Future[None]) -> None:
        self._checking = None
        if not task.cancelled():
            task.exception()  # retrieved here; the waiters get it too

    async def _check_identity(self) -> None:
        async def read() -> list[object]:
            return list(await asyncio.gather(*(self._conn.call(c) for c in greeting())))

        replies = await self._call("identity check", self._deadline, read)
        try:
            self._greeted(replies)
        except ConnectionDown as err:
            raise StoreUnavailable(f"redis identity check: {err}") from err

    async def _send_and_read(
        self, commands: Sequence[Command], deadline: float | None = None
    ) -> list[object]:
        """Send ``commands`` on the shared connection; error replies come back as RespError values.

        A caller that gives up (deadline, cancellation) leaves its replies to be consumed, in
        order, by its own abandoned futures: a late reply never reaches a later call.
        """
        if len(commands) == 1:
            return [await self._conn.call(pack(*commands[0]), deadline)]
        calls = (self._conn.call(pack(*c), deadline) for c in commands)
        return list(await asyncio.gather(*calls))

    async def _call(self, what: str, deadline: float, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` within ``deadline`` seconds; map every failure to StoreUnavailable."""
        if self._closed:
            raise StoreUnavailable("redis store is closed")
        try:
            async with asyncio.timeout(deadline):
                return await work()
        except TimeoutError as err:
            raise StoreUnavailable(f"redis {what}: no reply within {deadline * 1000:g} ms") from err
        except (RespError, OSError, ssl.SSLError) as err:  # OSError: ConnectionDown too
            raise _failure(what, err) from err

    async def _command(self, what: str, *command: str | bytes | int) -> object:
        [reply] = await self._call(what, self._deadline, lambda: self._send_and_read([command]))
        if isinstance(reply, RespError):
            raise _failure(what, reply)
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
        return read_record(key, reply, decode)

    async def claim(
        self, sub: str, jti: str, claimant: str, request_id: str | None, ttl_ms: int
    ) -> Claim:
        """See :meth:`verifier.store.base.Store.claim`: one EVALSHA (EVAL after NOSCRIPT).

        An unknown holder still consumes the nonce (NEW with holder None).
        """
        check_claim_args(sub, jti, claimant, request_id, ttl_ms)
        if self._closed:
            raise StoreUnavailable("redis store is closed")
        if time.monotonic() - self._watch.checked_at > CHECK_INTERVAL_S:
            await self._recheck()  # a claim waits for a due identity check, never passes it
        # The use record outlives the nonce: kept for the reconcile window, from now.
        keep = self._keep if ttl_ms <= self.reconcile_window_ms else b"%d" % ttl_ms
        args = claim_args(sub, jti, claimant, request_id, ttl_ms, keep)
        packed = _CLAIM_PREFIX + args
        try:
            if self._conn.connected:  # the hot path: the connection's sweeper keeps the deadline
                reply = await self._conn.call(packed)
            else:
                async with asyncio.timeout(self._deadline):
                    reply = await self._conn.call(packed)
        except TimeoutError as err:
            raise StoreUnavailable(
                f"redis claim: no reply within {self._deadline * 1000:g} ms"
            ) from err
        except (OSError, ssl.SSLError) as err:
            raise _failure("claim", err) from err
        if isinstance(reply, RespError):
            if reply.code != "NOSCRIPT":
                raise _failure("claim", reply)
            # Script cache empty (restart, failover): send the script itself once.
            script = _CLAIM_SCRIPT + args
            reply = await self._call("claim", self._deadline, lambda: self._conn.call(script))
            if isinstance(reply, RespError):
                raise StoreUnavailable(f"redis claim: {_describe(reply)}")
        return claim_result(*parse_claim_reply(reply))

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
            send = functools.partial(self._send_and_read, commands, self._admin_deadline)
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
        # Into the directory first: a member whose record is missing is skipped when listed.
        await self._put_listed(
            institution_scanners_key(scanner.institution),
            scanner.id,
            scanner_key(scanner.id),
            codec.encode_scanner(scanner),
        )

    async def get_scanner(self, scanner_id: str) -> Scanner | None:
        return await self._get(scanner_key(scanner_id), codec.decode_scanner)

    async def ping(self) -> None:
        reply = await self._command("PING", "PING")
        if reply != b"PONG":
            raise StoreUnavailable(f"redis PING: {_describe(reply)}")

    async def check_eviction_policy(self, allow_eviction: bool) -> None:
        """Refuse (ConfigError) a server whose ``maxmemory-policy`` is not ``noeviction`` or
        cannot be read; with ``allow_eviction`` a logged warning (:mod:`verifier.store.eviction`).
        StoreUnavailable if Redis does not answer.
        """
        [reply] = await self._call(
            "CONFIG GET",
            self._admin_deadline,
            lambda: self._send_and_read([POLICY_COMMAND], self._admin_deadline),
        )
        if isinstance(reply, RespError) and auth_failure(reply) is not None:
            raise _failure("CONFIG GET", reply)  # not a policy question: the URL is wrong
        problem = eviction_problem(reply)
        if problem is None:
            self._policy.started(allow_eviction)
        else:
            refuse_eviction(problem, allow_eviction)

    async def eviction_problem(self) -> str | None:
        """Why this Redis may now evict nonces, or None (the readiness probe asks).

        A policy found ``noeviction`` at start (without ``allow_eviction``) is read again at
        most every EVICTION_RECHECK_SECONDS; between reads, and when Redis does not answer,
        the last finding stands.
        """
        if not self._policy.due(EVICTION_RECHECK_SECONDS):
            return self._policy.problem
        try:
            [reply] = await self._call(
                "CONFIG GET",
                self._deadline,
                lambda: self._send_and_read([POLICY_COMMAND], self._deadline),
            )
        except StoreUnavailable:
            return self._policy.problem  # the readiness probe's PING reports the store
        return self._policy.update(reply)

    async def close(self) -> None:
        """Close all connections; later calls raise StoreUnavailable."""
        self._closed = True
        self._conn.close()


_CLAIM_PREFIX = claim_prefix("EVALSHA", CLAIM_SHA)
_CLAIM_SCRIPT = claim_prefix("EVAL", CLAIM_LUA)


def _failure(what: str, err: RespError | OSError | ssl.SSLError) -> StoreUnavailable:
    """The StoreUnavailable for a failed call: StoreAuthFailed when Redis refused our
    credentials (its message says how the URL carries them), a hint for TLS verification."""
    if isinstance(err, AuthFailed):
        return StoreAuthFailed(str(err))
    if isinstance(err, RespError):
        auth = auth_failure(err)
        return (
            StoreAuthFailed(auth) if auth else StoreUnavailable(f"redis {what}: {_describe(err)}")
        )
    refused = client_certificate_refused(err)
    if refused is not None:  # during the handshake (TLS 1.2)
        return StoreAuthFailed(refused)
    if isinstance(err, ssl.SSLCertVerificationError):
        return StoreUnavailable(
            f"redis {what}: TLS: {err.verify_message or err}; the server's certificate is not "
            "signed by a trusted CA: set VERIFIER_REDIS_CA_FILE to the CA that signed it"
        )
    return StoreUnavailable(f"redis {what}: {type(err).__name__}: {err}")


def _log_record_failure(task: asyncio.Future[object]) -> None:
    if not task.cancelled() and (err := task.exception()) is not None:
        log.warning("redis: could not record the detection on the node: %s", err)


def _describe(reply: object) -> str:
    if isinstance(reply, RespError):
        return f"error reply: {reply}"
    return f"unexpected reply {reply!r:.200}"
