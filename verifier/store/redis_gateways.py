"""What :class:`verifier.store.redis.RedisStore` keeps for gateway sidecars: institution
directories, gateway credentials, reconcile claims and conflicts.

A mixin: it runs on the store's own connection, deadlines and failure policy. Key layout in
:mod:`verifier.store.keys`. A record is put into its institution's set first and stored
second, so a member whose record is missing (a put cut short) is skipped when listed. The
reconcile claim is one Lua call (:data:`verifier.store.claim_script.RECONCILE_LUA`) on the
holder's slot; a conflict goes to one sorted set (``ZADD NX``: found again, kept once, at the
time it was first found), trimmed to the newest :data:`MAX_CONFLICTS`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from verifier import codec
from verifier.errors import StoreUnavailable
from verifier.records import Conflict, Gateway, Scanner
from verifier.store.base import Reconciled, claim_result, parse_use, read_record
from verifier.store.claim_script import RECONCILE_LUA, RECONCILE_SHA, parse_reconcile_reply
from verifier.store.keys import (
    CONFLICTS_KEY,
    check_reconcile_args,
    gateway_key,
    holder_key,
    institution_gateways_key,
    institution_scanners_key,
    nonce_key,
    scanner_key,
    use_key,
)
from verifier.store.resp import RespError

T = TypeVar("T")
Command = tuple[str | bytes | int, ...]

MAX_CONFLICTS = 100_000  # the newest are kept; each is a few hundred bytes


class GatewayRecords:
    """Mixed into RedisStore, which provides the attributes and methods declared first."""

    reconcile_window_ms: int
    _deadline: float
    _admin_deadline: float

    async def _call(self, what: str, deadline: float, work: Callable[[], Awaitable[T]]) -> T:
        raise NotImplementedError  # RedisStore's

    async def _send_and_read(
        self, commands: Sequence[Command], deadline: float | None = None
    ) -> list[object]:
        raise NotImplementedError  # RedisStore's

    async def _get(self, key: str, decode: Callable[[bytes], T]) -> T | None:
        raise NotImplementedError  # RedisStore's

    async def _pipeline(self, what: str, commands: Sequence[Command]) -> list[object]:
        """Replies to ``commands`` sent together within the admin deadline; an error reply
        raises StoreUnavailable."""
        deadline = self._admin_deadline
        replies = await self._call(what, deadline, lambda: self._send_and_read(commands, deadline))
        bad = next((r for r in replies if isinstance(r, RespError)), None)
        if bad is not None:
            raise StoreUnavailable(f"redis {what}: error reply: {bad}")
        return replies

    async def _put_listed(self, set_key: str, member: str, key: str, data: bytes) -> None:
        replies = await self._pipeline("SADD+SET", [("SADD", set_key, member), ("SET", key, data)])
        if replies[1] != b"OK":
            raise StoreUnavailable(f"redis SET {key}: unexpected reply {replies[1]!r:.100}")

    async def _listed(
        self, set_key: str, key_of: Callable[[str], str], decode: Callable[[bytes], T]
    ) -> list[T]:
        [members] = await self._pipeline("SMEMBERS", [("SMEMBERS", set_key)])
        if isinstance(members, set | frozenset):  # RESP3
            members = list(members)
        if not isinstance(members, list) or not all(isinstance(m, bytes) for m in members):
            raise StoreUnavailable(f"redis SMEMBERS {set_key}: unexpected reply {members!r:.100}")
        keys = [key_of(m.decode()) for m in sorted(members)]
        if not keys:
            return []
        values = await self._pipeline("GET (directory)", [("GET", k) for k in keys])
        found = []
        for key, value in zip(keys, values, strict=True):
            if isinstance(value, bytes):
                found.append(read_record(key, value, decode))
            elif value is not None:
                raise StoreUnavailable(f"redis GET {key}: unexpected reply {value!r:.100}")
        return found

    async def scanners_of(self, inst_id: str) -> list[Scanner]:
        scanners = await self._listed(
            institution_scanners_key(inst_id), scanner_key, codec.decode_scanner
        )
        return [s for s in scanners if s.institution == inst_id]

    async def put_gateway(self, gateway: Gateway) -> None:
        await self._put_listed(
            institution_gateways_key(gateway.institution),
            gateway.id,
            gateway_key(gateway.id),
            codec.encode_gateway(gateway),
        )

    async def get_gateway(self, gateway_id: str) -> Gateway | None:
        return await self._get(gateway_key(gateway_id), codec.decode_gateway)

    async def gateways_of(self, inst_id: str) -> list[Gateway]:
        gateways = await self._listed(
            institution_gateways_key(inst_id), gateway_key, codec.decode_gateway
        )
        return [g for g in gateways if g.institution == inst_id]

    async def reconcile_claim(
        self,
        sub: str,
        jti: str,
        claimant: str,
        request_id: str,
        via: str,
        used_at: float,
        ttl_ms: int,
    ) -> Reconciled:
        """See :meth:`verifier.store.base.Store.reconcile_claim`: one EVALSHA."""
        check_reconcile_args(sub, jti, claimant, request_id, via, ttl_ms)
        keys = (holder_key(sub), nonce_key(sub, jti), use_key(sub, jti))
        keep = max(self.reconcile_window_ms, ttl_ms)
        args = (claimant, request_id, ttl_ms, keep, round(used_at * 1000), via)
        deadline = self._admin_deadline
        evalsha = ("EVALSHA", RECONCILE_SHA, 3, *keys, *args)
        [reply] = await self._call(
            "reconcile", deadline, lambda: self._send_and_read([evalsha], deadline)
        )
        if isinstance(reply, RespError) and reply.code == "NOSCRIPT":
            [reply] = await self._pipeline("reconcile", [("EVAL", RECONCILE_LUA, 3, *keys, *args)])
        elif isinstance(reply, RespError):
            raise StoreUnavailable(f"redis reconcile: error reply: {reply}")
        outcome, holder, first = parse_reconcile_reply(reply)
        return Reconciled(
            claim_result(outcome, holder), None if first is None else parse_use(first)
        )

    async def add_conflict(self, conflict: Conflict) -> None:
        member = codec.encode_conflict(conflict)
        score = round(conflict.detected_at * 1000)
        await self._pipeline(
            "ZADD",
            [
                ("ZADD", CONFLICTS_KEY, "NX", score, member),
                ("ZREMRANGEBYRANK", CONFLICTS_KEY, 0, -(MAX_CONFLICTS + 1)),
            ],
        )

    async def conflicts(self, since: float = 0.0) -> list[Conflict]:
        command = ("ZRANGEBYSCORE", CONFLICTS_KEY, round(since * 1000), "+inf", "WITHSCORES")
        [reply] = await self._pipeline("ZRANGEBYSCORE", [command])
        pairs = _score_pairs(reply)
        return [
            read_record(CONFLICTS_KEY, member, functools.partial(_decode_conflict, at))
            for member, at in pairs
        ]


def _decode_conflict(detected_at: float, data: bytes) -> Conflict:
    return codec.decode_conflict(data, detected_at)


def _score_pairs(reply: object) -> list[tuple[bytes, float]]:
    """(member, score in seconds) from a WITHSCORES reply: flat (RESP2) or pairs (RESP3)."""
    if isinstance(reply, list):
        if all(isinstance(p, list) and len(p) == 2 for p in reply):
            flat = [x for p in reply for x in p]
        else:
            flat = reply
        members, scores = flat[::2], flat[1::2]
        if len(members) == len(scores) and all(isinstance(m, bytes) for m in members):
            try:
                return [(m, float(s) / 1000) for m, s in zip(members, scores, strict=True)]
            except (TypeError, ValueError):
                pass  # a score that is not a number: reported below
    raise StoreUnavailable(f"redis ZRANGEBYSCORE: unexpected reply {reply!r:.100}")
