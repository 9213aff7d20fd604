"""In-process store: the same contract as Redis, for one process only (tests, demos, a laptop).

Nothing is shared between processes, so two verifier processes on a MemoryStore would each
accept the same token once: never run more than one process on it.

Records are kept as Redis keeps them: the codec's bytes under the keys of
:mod:`verifier.store.keys`, read back through the codec on every claim and get, so a record
the codec refuses behaves here exactly as it does on Redis. :meth:`MemoryStore.put_raw` plants
such bytes (on Redis, tests SET them). Use records, directories and conflicts are kept as the
values they stand for.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from verifier import codec
from verifier.config import DEFAULT_RECONCILE_WINDOW_MS
from verifier.errors import StoreUnavailable
from verifier.records import Conflict, Gateway, Holder, Institution, Scanner
from verifier.store.base import (
    NEW,
    REPLAYED,
    RETRY,
    Claim,
    PriorUse,
    Reconciled,
    claim_result,
    read_record,
)
from verifier.store.identity import Forgetting
from verifier.store.keys import (
    GATEWAY_PREFIX,
    HOLDER_PREFIX,
    INSTITUTION_PREFIX,
    SCANNER_PREFIX,
    check_claim_args,
    check_reconcile_args,
    gateway_key,
    holder_key,
    institution_gateways_key,
    institution_key,
    institution_scanners_key,
    scanner_key,
)

PROGRESS_EVERY = 1000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Nonce:
    claimant: str
    request_id: str  # "" when the first claim carried none
    holder: bytes | None  # the record's bytes at first claim, kept only with a request id
    expires_at: float  # clock seconds; the nonce lives while clock() <= expires_at


class MemoryStore:
    """A :class:`verifier.store.base.Store` held in dictionaries.

    ``clock`` returns seconds on a monotonic scale (default :func:`time.monotonic`); tests
    inject a fake one. Expired nonces are forgotten when next looked at, and every claim also
    drops those whose time has come (a heap ordered by expiry), so memory stays bounded by the
    nonces claimed within the last ``ttl_ms``. Every call runs without yielding to the event
    loop, which is what makes :meth:`claim` atomic. Use records live ``reconcile_window_ms``
    on the same clock and are dropped the same way; ``wall`` (default :func:`time.time`) says
    when a use happened.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall: Callable[[], float] = time.time,
        reconcile_window_ms: int = DEFAULT_RECONCILE_WINDOW_MS,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self.reconcile_window_ms = reconcile_window_ms
        self._uses: dict[tuple[str, str], tuple[PriorUse, float]] = {}  # use, expires_at
        self._use_expiry: list[tuple[float, tuple[str, str]]] = []
        self._sets: dict[str, set[str]] = {}  # an institution's scanners, gateways
        self._conflicts: dict[bytes, float] = {}  # codec bytes -> when found
        self._records: dict[str, bytes] = {}  # holders, institutions, scanners by Redis key
        self._nonces: dict[tuple[str, str], _Nonce] = {}
        self._expiry: list[tuple[float, tuple[str, str]]] = []
        self._closed = False
        # It never forgets while it lives, and what it forgets when it ends goes with the
        # process that answered from it: nothing to detect.
        self.forgotten_before: float | None = None
        self.forgettings: list[Forgetting] = []

    @property
    def nonce_count(self) -> int:
        """Nonces held right now, including expired ones not yet dropped (for tests, metrics)."""
        return len(self._nonces)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("memory store is closed")

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] < now:
            expires_at, key = heapq.heappop(self._expiry)
            entry = self._nonces.get(key)
            # The key may have expired and been claimed again since: keep the newer entry.
            if entry is not None and entry.expires_at == expires_at:
                del self._nonces[key]
        while self._use_expiry and self._use_expiry[0][0] < now:
            expires_at, key = heapq.heappop(self._use_expiry)
            use = self._uses.get(key)
            if use is not None and use[1] == expires_at:
                del self._uses[key]

    async def claim(
        self, sub: str, jti: str, claimant: str, request_id: str | None, ttl_ms: int
    ) -> Claim:
        """See :meth:`verifier.store.base.Store.claim`.

        An unknown holder still consumes the nonce (the outcome is NEW with holder None).
        """
        check_claim_args(sub, jti, claimant, request_id, ttl_ms)
        self._check_open()
        now = self._clock()
        self._purge(now)
        rid = request_id or ""
        key = (sub, jti)
        entry = self._nonces.get(key)
        if entry is None or entry.expires_at < now:
            holder = self._records.get(holder_key(sub))
            expires_at = now + ttl_ms / 1000
            self._nonces[key] = _Nonce(claimant, rid, holder if rid else None, expires_at)
            heapq.heappush(self._expiry, (expires_at, key))
            if key not in self._uses:
                keep = max(self.reconcile_window_ms, ttl_ms)
                self._keep_use(key, PriorUse(claimant, rid, self._wall(), ""), now, keep)
            return claim_result(NEW, holder)
        if rid and entry.claimant == claimant and entry.request_id == rid:
            return claim_result(RETRY, entry.holder)
        return Claim(REPLAYED, None)

    async def put_holder(self, holder: Holder) -> None:
        key, data = holder_key(holder.sub), codec.encode_holder(holder)
        self._check_open()
        self._records[key] = data

    async def put_holders(
        self, holders: Iterable[Holder], on_progress: Callable[[int], None] | None = None
    ) -> int:
        """Store all ``holders``; call ``on_progress(n_done)`` every 1000 and at the end."""
        self._check_open()
        done = 0
        it = iter(holders)
        while batch := list(itertools.islice(it, PROGRESS_EVERY)):
            # Encoded before any is kept: a chunk with a bad record stores nothing (as on Redis).
            self._records.update([(holder_key(h.sub), codec.encode_holder(h)) for h in batch])
            done += len(batch)
            if on_progress is not None:
                on_progress(done)
        return done

    async def get_holder(self, sub: str) -> Holder | None:
        return self._get(holder_key(sub), codec.decode_holder)

    async def put_institution(self, inst: Institution) -> None:
        key, data = institution_key(inst.id), codec.encode_institution(inst)
        self._check_open()
        self._records[key] = data

    async def get_institution(self, inst_id: str) -> Institution | None:
        return self._get(institution_key(inst_id), codec.decode_institution)

    async def put_scanner(self, scanner: Scanner) -> None:
        key, data = scanner_key(scanner.id), codec.encode_scanner(scanner)
        self._check_open()
        self._sets.setdefault(institution_scanners_key(scanner.institution), set()).add(scanner.id)
        self._records[key] = data

    async def get_scanner(self, scanner_id: str) -> Scanner | None:
        return self._get(scanner_key(scanner_id), codec.decode_scanner)

    def _get(self, key: str, decode: Callable[[bytes], T]) -> T | None:
        self._check_open()
        data = self._records.get(key)
        return None if data is None else read_record(key, data, decode)

    def put_raw(self, key: str, data: bytes) -> None:
        """Keep ``data`` under the record key ``key`` (``vh:{sub}``, ``vi:<id>``, ``vs:<id>``)
        as it is, without the codec: for tests, a record as another tool might have written it."""
        if not key.startswith((HOLDER_PREFIX, INSTITUTION_PREFIX, SCANNER_PREFIX, GATEWAY_PREFIX)):
            raise ValueError(f"not a record key: {key!r}")
        self._check_open()
        self._records[key] = data

    # -- for gateway sidecars ----------------------------------------------------------------

    def _keep_use(self, key: tuple[str, str], use: PriorUse, now: float, keep_ms: int) -> None:
        expires_at = now + keep_ms / 1000
        self._uses[key] = (use, expires_at)
        heapq.heappush(self._use_expiry, (expires_at, key))

    def _listed(
        self, set_key: str, key_of: Callable[[str], str], decode: Callable[[bytes], T]
    ) -> list[T]:
        self._check_open()
        found = []
        for member in sorted(self._sets.get(set_key, ())):
            record = self._get(key_of(member), decode)
            if record is not None:
                found.append(record)
        return found

    async def scanners_of(self, inst_id: str) -> list[Scanner]:
        scanners = self._listed(
            institution_scanners_key(inst_id), scanner_key, codec.decode_scanner
        )
        return [s for s in scanners if s.institution == inst_id]

    async def put_gateway(self, gateway: Gateway) -> None:
        key, data = gateway_key(gateway.id), codec.encode_gateway(gateway)
        self._check_open()
        self._sets.setdefault(institution_gateways_key(gateway.institution), set()).add(gateway.id)
        self._records[key] = data

    async def get_gateway(self, gateway_id: str) -> Gateway | None:
        return self._get(gateway_key(gateway_id), codec.decode_gateway)

    async def gateways_of(self, inst_id: str) -> list[Gateway]:
        gateways = self._listed(
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
        """See :meth:`verifier.store.base.Store.reconcile_claim`."""
        check_reconcile_args(sub, jti, claimant, request_id, via, ttl_ms)
        self._check_open()
        now = self._clock()
        self._purge(now)
        key = (sub, jti)
        holder = self._records.get(holder_key(sub))
        use = self._uses.get(key)
        first = use[0] if use is not None and use[1] >= now else None
        nonce = self._nonces.get(key)
        if first is None and nonce is not None and nonce.expires_at >= now:
            first = PriorUse(nonce.claimant, nonce.request_id, None, "")
        if first is not None:
            if first.claimant == claimant and first.request_id == request_id:
                return Reconciled(claim_result(RETRY, holder))
            return Reconciled(Claim(REPLAYED, None), first)
        keep = max(self.reconcile_window_ms, ttl_ms)
        self._keep_use(key, PriorUse(claimant, request_id, used_at, via), now, keep)
        if ttl_ms > 0:
            expires_at = now + ttl_ms / 1000
            self._nonces[key] = _Nonce(claimant, request_id, holder, expires_at)
            heapq.heappush(self._expiry, (expires_at, key))
        return Reconciled(claim_result(NEW, holder))

    async def add_conflict(self, conflict: Conflict) -> None:
        data = codec.encode_conflict(conflict)
        self._check_open()
        self._conflicts.setdefault(data, conflict.detected_at)

    async def conflicts(self, since: float = 0.0) -> list[Conflict]:
        self._check_open()
        found = sorted((at, data) for data, at in self._conflicts.items() if at >= since)
        return [codec.decode_conflict(data, at) for at, data in found]

    async def ping(self) -> None:
        self._check_open()

    async def close(self) -> None:
        """Forget everything; later calls raise StoreUnavailable."""
        self._closed = True
        self._nonces.clear()
        self._expiry.clear()
        self._uses.clear()
        self._use_expiry.clear()
