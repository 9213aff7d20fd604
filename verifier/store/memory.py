"""In-process store: the same contract as Redis, for one process only (tests, demos, a laptop).

Nothing is shared between processes, so two verifier processes on a MemoryStore would each
accept the same token once: never run more than one process on it.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from verifier.errors import StoreUnavailable
from verifier.records import Holder, Institution, Scanner
from verifier.store.base import NEW, REPLAYED, RETRY, Claim
from verifier.store.keys import check_claim_args, check_sub

PROGRESS_EVERY = 1000


@dataclass(frozen=True, slots=True)
class _Nonce:
    claimant: str
    request_id: str  # "" when the first claim carried none
    holder: Holder | None  # snapshot at first claim, kept only with a request id
    expires_at: float  # clock seconds; the nonce lives while clock() <= expires_at


class MemoryStore:
    """A :class:`verifier.store.base.Store` held in dictionaries.

    ``clock`` returns seconds on a monotonic scale (default :func:`time.monotonic`); tests
    inject a fake one. Expired nonces are forgotten when next looked at, and every claim also
    drops those whose time has come (a heap ordered by expiry), so memory stays bounded by the
    nonces claimed within the last ``ttl_ms``. Every call runs without yielding to the event
    loop, which is what makes :meth:`claim` atomic.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._holders: dict[str, Holder] = {}
        self._institutions: dict[str, Institution] = {}
        self._scanners: dict[str, Scanner] = {}
        self._nonces: dict[tuple[str, str], _Nonce] = {}
        self._expiry: list[tuple[float, tuple[str, str]]] = []
        self._closed = False

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
            holder = self._holders.get(sub)
            expires_at = now + ttl_ms / 1000
            self._nonces[key] = _Nonce(claimant, rid, holder if rid else None, expires_at)
            heapq.heappush(self._expiry, (expires_at, key))
            return Claim(NEW, holder)
        if rid and entry.claimant == claimant and entry.request_id == rid:
            return Claim(RETRY, entry.holder)
        return Claim(REPLAYED, None)

    async def put_holder(self, holder: Holder) -> None:
        check_sub(holder.sub)
        self._check_open()
        self._holders[holder.sub] = holder

    async def put_holders(
        self, holders: Iterable[Holder], on_progress: Callable[[int], None] | None = None
    ) -> int:
        """Store all ``holders``; call ``on_progress(n_done)`` every 1000 and at the end."""
        self._check_open()
        done = 0
        it = iter(holders)
        while batch := list(itertools.islice(it, PROGRESS_EVERY)):
            for holder in batch:
                check_sub(holder.sub)
                self._holders[holder.sub] = holder
            done += len(batch)
            if on_progress is not None:
                on_progress(done)
        return done

    async def get_holder(self, sub: str) -> Holder | None:
        self._check_open()
        return self._holders.get(sub)

    async def put_institution(self, inst: Institution) -> None:
        self._check_open()
        self._institutions[inst.id] = inst

    async def get_institution(self, inst_id: str) -> Institution | None:
        self._check_open()
        return self._institutions.get(inst_id)

    async def put_scanner(self, scanner: Scanner) -> None:
        self._check_open()
        self._scanners[scanner.id] = scanner

    async def get_scanner(self, scanner_id: str) -> Scanner | None:
        self._check_open()
        return self._scanners.get(scanner_id)

    async def ping(self) -> None:
        self._check_open()

    async def close(self) -> None:
        """Forget everything; later calls raise StoreUnavailable."""
        self._closed = True
        self._nonces.clear()
        self._expiry.clear()
