"""The store contract: one protocol, two implementations (Redis, in-memory).

The hot path is a single call, :meth:`Store.claim`, which atomically records the token's
nonce and reads the holder in one round trip. Everything else is administration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from verifier.records import Holder, Institution, Scanner

NEW = "new"  # nonce was unused; it is now recorded for `claimant`
RETRY = "retry"  # nonce already claimed by the same claimant (same scanner + request id)
REPLAYED = "replayed"  # nonce already claimed by someone else (or without a request id)


@dataclass(frozen=True, slots=True)
class Claim:
    """Result of claiming a nonce.

    ``holder`` is the holder record as of the *first* claim when ``outcome`` is RETRY and
    the first claim carried a request id (so a retry gets the original verdict), the
    current record when NEW, and None when the holder is unknown or the outcome is REPLAYED.
    """

    outcome: str
    holder: Holder | None


class Store(Protocol):
    async def claim(
        self, sub: str, jti: str, claimant: str, request_id: str | None, ttl_ms: int
    ) -> Claim:
        """Atomically consume nonce ``jti`` of holder ``sub`` and read the holder.

        ``claimant`` identifies the scanner; a later claim is a RETRY only if both claimant and
        a non-empty ``request_id`` match the first one. The nonce must be kept for at least
        ``ttl_ms`` milliseconds. Raises StoreUnavailable on any timeout or connection error;
        it must never report NEW unless the nonce is durably recorded.

        An unknown holder still consumes the nonce (NEW, holder None): the token was used, and
        enrolling the holder later must not make it usable again. Raises ValueError for an
        empty ``sub``/``jti``/``claimant``, braces in ``sub``, a newline in ``claimant`` or
        ``request_id``, or ``ttl_ms`` <= 0 (see :mod:`verifier.store.keys`).
        """
        ...

    async def put_holder(self, holder: Holder) -> None: ...
    async def put_holders(
        self, holders: Iterable[Holder], on_progress: Callable[[int], None] | None = None
    ) -> int:
        """Store many holders (in chunks); ``on_progress(n_done)`` after each. Returns the count."""
        ...

    async def get_holder(self, sub: str) -> Holder | None: ...
    async def put_institution(self, inst: Institution) -> None: ...
    async def get_institution(self, inst_id: str) -> Institution | None: ...
    async def put_scanner(self, scanner: Scanner) -> None: ...
    async def get_scanner(self, scanner_id: str) -> Scanner | None: ...
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers now."""
        ...

    async def close(self) -> None: ...
