"""The Redis Cluster store: each claim goes to its slot's master, fail closed on anything unsure.

``redis+cluster://[user:password@]host:port[,host:port…]`` (``rediss+cluster://`` for TLS):
the listed nodes are only seeds; the slot map comes from ``CLUSTER SLOTS``. A holder and its
nonces share a hash tag (:mod:`verifier.store.keys`), so the claim script stays one atomic call
on one node. Each node gets one auto-pipelined connection (:mod:`verifier.store.node`): claims
for one node issued in the same event-loop turn go out in one write, as on a single node.

Routing follows MOVED, ASK, TRYAGAIN and NOSCRIPT within the call's deadline and re-reads the
slot map after connection errors (:mod:`verifier.store.cluster_router`): that is how the
store finds the replica promoted after a failover, with no restart.

Failing closed. Every call has a deadline (``deadline_ms``, ``admin_deadline_ms`` for bulk
writes and checks). A claim that timed out or lost its connection may have run: it is never
sent again; the call raises StoreUnavailable, as it does for every error reply it cannot
follow. A client retrying with the same request id gets the original verdict (RETRY).

Replica confirmation (``min_replicas`` >= 1, the ``VERIFIER_MIN_REPLICAS`` setting). Redis
replicates asynchronously: a master killed just after acknowledging a claim can be replaced by
a replica that never saw it, and the token would be accepted again. With ``min_replicas`` a
claim that consumed its nonce (NEW) is only reported after ``WAIT`` says that many replicas
have it; one WAIT covers every claim of one event-loop turn on a connection (a group commit).
A RETRY is confirmed too (the first claim's confirmation may have failed): in this mode the
claim script also rewrites a retried nonce's expiry, a write that WAIT then covers. Not
confirmed within the deadline: StoreUnavailable, and a retry with the same request id gets
the original verdict.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from verifier import codec
from verifier.config import DEFAULT_RECONCILE_WINDOW_MS
from verifier.errors import ConfigError, StoreUnavailable
from verifier.records import Holder, Institution, Scanner
from verifier.store.base import REPLAYED, Claim, claim_result, read_record
from verifier.store.claim_script import (
    CLAIM_LUA,
    CLAIM_SHA,
    claim_args,
    claim_prefix,
    parse_claim_reply,
)
from verifier.store.cluster_checks import NodeReport, judge_cluster, replica_addresses
from verifier.store.cluster_identity import ClusterIdentity
from verifier.store.cluster_router import ClusterRouter, Confirm, Reply, describe
from verifier.store.identity import CHECK_INTERVAL_S, Forgetting
from verifier.store.keys import (
    check_claim_args,
    holder_key,
    institution_key,
    institution_scanners_key,
    scanner_key,
)
from verifier.store.redis_gateways import Command, GatewayRecords
from verifier.store.resp import ConnectionDown, RespError, pack, tls_context
from verifier.store.slots import Address, ClusterURL, key_slot, tag_slot

T = TypeVar("T")


def _confirmed_claim_lua() -> str:
    """The claim script, except that a retry also rewrites the nonce's expiry.

    WAIT is documented to cover the writes made on its own connection, and a retry writes
    nothing: a retry on another connection than the first claim (whose own WAIT may have
    failed) would be acknowledged with nothing confirmed. The rewrite is a write that the
    WAIT behind it covers, and the master has the nonce in its stream before it. (Redis 7.0
    records the offset after any command, so WAIT would hold there anyway; the documented
    contract is what this relies on.)"""
    retry = "    return {'retry'"
    touched = "    redis.call('PEXPIRE', KEYS[2], ARGV[3])\n" + retry
    if CLAIM_LUA.count(retry) != 2:
        raise RuntimeError("the claim script changed: revisit the confirmed claim")
    return CLAIM_LUA.replace(retry, touched)


CONFIRMED_CLAIM_LUA = _confirmed_claim_lua()
_CONFIRMED_SHA = hashlib.sha1(CONFIRMED_CLAIM_LUA.encode()).hexdigest()
# The packed EVALSHA and EVAL prefixes of the claim script, by whether claims are confirmed.
_SCRIPTS = {
    False: (claim_prefix("EVALSHA", CLAIM_SHA), claim_prefix("EVAL", CLAIM_LUA)),
    True: (claim_prefix("EVALSHA", _CONFIRMED_SHA), claim_prefix("EVAL", CONFIRMED_CLAIM_LUA)),
}


class ClusterStore(GatewayRecords):
    """A :class:`verifier.store.base.Store` on a Redis Cluster.

    ``tls`` is the context of a ``rediss+cluster://`` URL, used for every node; nodes are
    verified under the address the cluster announces for them (``cluster-announce-ip`` or
    ``cluster-announce-hostname`` with ``cluster-preferred-endpoint-type hostname``), so
    their certificates must name it. Creating one does no I/O; the slot map is read on first
    use. Call :meth:`check_cluster` once at startup (``open_store`` does).

    As :class:`verifier.store.redis.RedisStore`, each claim also keeps the token's use record
    for ``reconcile_window_ms``, and the gateway records (directories, reconcile claims,
    conflicts) are :class:`verifier.store.redis_gateways.GatewayRecords`, run over this
    store's routing: every key that one call touches atomically shares a hash tag.
    """

    def __init__(
        self,
        url: str,
        *,
        deadline_ms: int = 50,
        admin_deadline_ms: int = 2000,
        chunk_size: int = 1000,
        min_replicas: int = 0,
        tls: ssl.SSLContext | None = None,
        reconcile_window_ms: int = DEFAULT_RECONCILE_WINDOW_MS,
    ) -> None:
        self._url = ClusterURL.parse(url)
        # One TLS context for every node of a rediss+cluster:// URL (resp.tls_context's
        # default: the system's CAs, no client certificate).
        self._tls = (tls or tls_context()) if self._url.tls else None
        if deadline_ms <= 0 or admin_deadline_ms <= 0 or chunk_size <= 0:
            raise ValueError("deadlines and chunk size must be positive")
        if min_replicas < 0:
            raise ConfigError("VERIFIER_MIN_REPLICAS: must not be negative")
        self._deadline = deadline_ms / 1000
        # WAIT answers a little before the deadline, so that "not confirmed" is told apart from
        # "no reply" (both are StoreUnavailable; the logs say which).
        self._confirm_within = self._deadline - min(0.1 * self._deadline, 0.01)
        self._admin_deadline = admin_deadline_ms / 1000
        self._chunk_size = chunk_size
        self.min_replicas = min_replicas
        self.reconcile_window_ms = reconcile_window_ms
        self._keep = b"%d" % reconcile_window_ms
        self._router = ClusterRouter(
            self._url,
            deadline=self._deadline,
            admin_deadline=self._admin_deadline,
            min_replicas=min_replicas,
            tls=self._tls,
        )
        self._identity = ClusterIdentity(self._router, self._deadline, self._admin_deadline)

    @property
    def forgotten_before(self) -> float | None:
        """See :attr:`verifier.store.base.Store.forgotten_before`: a node restarted or
        flushed, or a master that was not one (a promoted replica)."""
        return self._router.watch.forgotten_before

    @property
    def redirects(self) -> dict[str, int]:
        """Redirections followed so far, by kind: ``moved``, ``ask``, ``tryagain``."""
        return dict(self._router.redirects)

    @property
    def forgettings(self) -> list[Forgetting]:
        """See :attr:`verifier.store.base.Store.forgettings`."""
        return list(self._router.watch.detections)

    # -- routing (the interface GatewayRecords relies on, as RedisStore's) -----------------

    async def _call(
        self,
        what: str,
        deadline: float,
        work: Callable[[], Awaitable[T]],
    ) -> T:
        """Run ``work`` within ``deadline`` seconds; every failure becomes StoreUnavailable."""
        if self._router.closed:
            raise StoreUnavailable("redis cluster store is closed")
        try:
            async with asyncio.timeout(deadline):
                return await work()
        except TimeoutError as err:
            self._router.refresh_soon()  # a master cut off (not refusing) shows as silence
            raise StoreUnavailable(
                f"redis cluster {what}: no reply within {deadline * 1000:g} ms"
            ) from err
        except (ConnectionDown, OSError, ssl.SSLError) as err:
            self._router.refresh_soon()
            raise StoreUnavailable(f"redis cluster {what}: {describe(err)}") from err

    # -- the hot path ----------------------------------------------------------------------

    async def claim(
        self, sub: str, jti: str, claimant: str, request_id: str | None, ttl_ms: int
    ) -> Claim:
        """See :meth:`verifier.store.base.Store.claim`: one EVALSHA on the slot's master."""
        check_claim_args(sub, jti, claimant, request_id, ttl_ms)
        if self._router.closed:
            raise StoreUnavailable("redis cluster store is closed")
        # The use record outlives the nonce: kept for the reconcile window, from now.
        keep = self._keep if ttl_ms <= self.reconcile_window_ms else b"%d" % ttl_ms
        args = claim_args(sub, jti, claimant, request_id, ttl_ms, keep)
        by_sha, by_script = _SCRIPTS[self.min_replicas > 0]
        packed = by_sha + args
        slot = tag_slot(sub.encode())
        node = self._router.slots[slot]
        first = None
        started = time.monotonic()
        if node is not None and started - node.checked_at > CHECK_INTERVAL_S:
            await self._identity.recheck(node)  # a claim waits for a due check, never passes it
        if node is not None and node.conn.connected:
            # The common case. No timer per call: the connection's sweeper keeps the deadline,
            # and one timer per WAIT group (min_replicas) keeps it for the confirmation.
            try:
                if self.min_replicas:
                    stream = node.conn.stream()
                    sent = node.conn.send_on(stream, packed)
                    wait = node.confirm(stream, started + self._confirm_within)
                    reply = await sent
                else:
                    reply = await node.conn.call(packed)
                if not isinstance(reply, RespError):
                    outcome, holder = parse_claim_reply(reply)
                    if self.min_replicas and outcome != REPLAYED:
                        await self._confirmed(wait)
                    return claim_result(outcome, holder)
            except TimeoutError as err:
                self._router.refresh_soon()
                raise StoreUnavailable(
                    f"redis cluster claim: no reply within {self._deadline * 1000:g} ms"
                ) from err
            except (ConnectionDown, OSError, ssl.SSLError) as err:
                self._router.failed(node)
                raise StoreUnavailable(f"redis cluster claim: {describe(err)}") from err
            first = (node, reply)  # did not run: follow it within what is left of the deadline

        async def routed() -> Claim:
            script = by_script + args
            confirm_by = started + self._confirm_within if self.min_replicas else None
            reply, wait = await self._router.execute(
                slot, packed, script=script, confirm_by=confirm_by, first=first
            )
            outcome, holder = parse_claim_reply(reply)
            if confirm_by is not None and outcome != REPLAYED:
                await self._confirmed(wait)
            return claim_result(outcome, holder)

        left = self._deadline - (time.monotonic() - started)
        return await self._call("claim", max(left, 0.0), routed)

    async def _confirmed(self, wait: Confirm) -> None:
        """Return once ``wait`` reports ``min_replicas``; StoreUnavailable if it does not."""
        assert wait is not None
        try:
            count = await asyncio.shield(wait)
        except TimeoutError as err:
            raise StoreUnavailable(
                f"redis cluster claim: not confirmed by {self.min_replicas} replicas "
                f"within {self._deadline * 1000:g} ms"
            ) from err
        if count < self.min_replicas:
            raise StoreUnavailable(
                f"redis cluster claim: {max(count, 0)} of {self.min_replicas} replicas "
                "confirmed it in time"
            )

    # -- records ---------------------------------------------------------------------------

    async def _command(self, what: str, key: str, *args: str | bytes | int) -> Reply:
        slot = key_slot(key.encode())
        packed = pack(what, key, *args)
        reply, _ = await self._call(
            what, self._deadline, lambda: self._router.execute(slot, packed)
        )
        return reply

    async def _send_and_read(
        self, commands: Sequence[Command], deadline: float | None = None
    ) -> list[object]:
        """Each command to the master of its key's slot (redirections followed); error replies
        come back as RespError values. Commands for one node keep their order (one pipeline);
        commands for different nodes run side by side."""

        async def one(command: Command) -> object:
            is_script = command[0] in ("EVAL", "EVALSHA")
            key = command[3] if is_script else command[1]
            slot = key_slot(key if isinstance(key, bytes) else str(key).encode())
            reply, _ = await self._router.execute(
                slot, pack(*command), errors=True, deadline=deadline
            )
            return reply

        return list(await asyncio.gather(*(one(c) for c in commands)))

    async def _put_listed(self, set_key: str, member: str, key: str, data: bytes) -> None:
        # The two keys live on different nodes: add to the directory first, then store, one
        # after the other (a single node's pipeline keeps that order by itself).
        await self._pipeline("SADD", [("SADD", set_key, member)])
        [reply] = await self._pipeline("SET", [("SET", key, data)])
        if reply != b"OK":
            raise StoreUnavailable(f"redis cluster SET {key}: unexpected reply {reply!r:.100}")

    async def _set(self, key: str, value: bytes) -> None:
        reply = await self._command("SET", key, value)
        if reply != b"OK":
            raise StoreUnavailable(f"redis cluster SET: unexpected reply {reply!r:.100}")

    async def _get(self, key: str, decode: Callable[[bytes], T]) -> T | None:
        reply = await self._command("GET", key)
        if reply is None:
            return None
        if not isinstance(reply, bytes):
            raise StoreUnavailable(f"redis cluster GET {key}: unexpected reply {reply!r:.100}")
        return read_record(key, reply, decode)

    async def put_holder(self, holder: Holder) -> None:
        await self._set(holder_key(holder.sub), codec.encode_holder(holder))

    async def put_holders(
        self, holders: Iterable[Holder], on_progress: Callable[[int], None] | None = None
    ) -> int:
        """SET ``holders`` in chunks of ``chunk_size``, each node's share in one pipeline.

        Each chunk has ``admin_deadline_ms``; ``on_progress(n_done)`` after each. A SET is
        idempotent, so a bulk write follows every redirection. A failure part way leaves the
        earlier chunks written.
        """
        done = 0
        it = iter(holders)
        while batch := list(itertools.islice(it, self._chunk_size)):
            writes = [(holder_key(h.sub), codec.encode_holder(h)) for h in batch]
            await self._call(
                "SET (bulk)", self._admin_deadline, functools.partial(self._set_many, writes)
            )
            done += len(batch)
            if on_progress is not None:
                on_progress(done)
        return done

    async def _set_many(self, writes: Sequence[tuple[str, bytes]]) -> None:
        # Every SET is queued in this turn, so each node gets its share in one write.
        replies = await asyncio.gather(
            *(
                self._router.execute(
                    key_slot(k.encode()), pack("SET", k, v), deadline=self._admin_deadline
                )
                for k, v in writes
            )
        )
        bad = next((r for r, _ in replies if r != b"OK"), None)
        if bad is not None:
            raise StoreUnavailable(f"redis cluster SET (bulk): unexpected reply {bad!r:.100}")

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

    # -- health ----------------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise StoreUnavailable unless every master answers PING now."""

        async def ping_all() -> None:
            if not self._router.ranges:
                await self._router.load_map()
            replies = await asyncio.gather(
                *(self._router.node(a).conn.call(pack("PING")) for a in self.masters())
            )
            if any(r != b"PONG" for r in replies):
                raise StoreUnavailable(f"redis cluster PING: {replies!r:.200}")

        await self._call("PING", self._deadline, ping_all)

    def masters(self) -> list[Address]:
        """Addresses of the masters in the current slot map (empty before the first use)."""
        return self._router.masters()

    async def check_cluster(self, allow_eviction: bool) -> None:
        """The start-up checks, against every node of a fresh slot map.

        Every slot served, ``cluster_state:ok`` on every master, and ``maxmemory-policy
        noeviction`` on masters and replicas alike (a replica is a master after a failover):
        see :func:`verifier.store.cluster_checks.judge_cluster`. ConfigError for an evicting or
        uncheckable policy unless ``allow_eviction``; StoreUnavailable for a cluster that is not
        whole or a master that does not answer.
        """

        async def gather_reports() -> list[NodeReport]:
            await self._router.load_map()
            masters = self.masters()
            reports = list(await asyncio.gather(*(self._report(a, True) for a in masters)))
            replicas = [a for r in reports for a in replica_addresses(r) if a not in masters]
            reports += await asyncio.gather(*(self._report(a, False) for a in replicas))
            return reports

        # Each node has the admin deadline; a replica that misses it is only logged.
        reports = await self._call("start-up check", 2 * self._admin_deadline, gather_reports)
        for report in reports:
            if not report.master:
                self._router.node(report.address).conn.close()  # only needed for the check
        judge_cluster(self._router.ranges, reports, allow_eviction, self.min_replicas)
        # Detections made before this process started.
        await self._call(
            "read of recorded detections", self._admin_deadline, self._identity.read_recorded
        )

    async def _report(self, address: Address, master: bool) -> NodeReport:
        conn = self._router.node(address).conn
        commands = [pack("CONFIG", "GET", "maxmemory-policy"), pack("CLUSTER", "INFO")]
        if master:
            commands.append(pack("INFO", "replication"))
        try:
            replies = await asyncio.gather(*(conn.call(c, self._admin_deadline) for c in commands))
        except (ConnectionDown, OSError, ssl.SSLError, TimeoutError) as err:
            if master:
                raise
            return NodeReport(address, master, error=describe(err))
        return NodeReport(address, master, replies=replies)

    async def close(self) -> None:
        """Close every connection; later calls raise StoreUnavailable."""
        self._router.close()
