"""Scanner authentication: bearer credentials (see ``verifier.credentials``) checked against
the hashes in the store.

Scanner and institution records are cached in-process for ``ttl`` seconds so the hot path
makes exactly one store call (the nonce claim). A revocation therefore takes effect within
``ttl`` seconds (default 2 s; ``VERIFIER_AUTH_CACHE_SECONDS=0`` disables the cache).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from verifier.credentials import hash_secret, parse_bearer
from verifier.errors import SCANNER_REVOKED, UNAUTHORIZED, RequestRefused
from verifier.records import Institution, Scanner
from verifier.store.base import Store


class AuthError(RequestRefused):
    """Authentication failed: ``unauthorized`` (401: missing, unknown, bad) or
    ``scanner_revoked`` (403)."""


class ScannerCache:
    """Resolves a bearer header to (scanner, institution), caching store reads briefly."""

    def __init__(self, store: Store, ttl: float, clock: Callable[[], float] = time.monotonic):
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, Scanner | None, Institution | None]] = {}
        # Headers that passed the full check, by exact text: skips parsing and hashing on the
        # hot path; expires with the record cache, so a revocation is seen just as soon.
        self._accepted: dict[str, tuple[float, Scanner, Institution | None]] = {}

    def cached(self, header: str | None) -> tuple[Scanner, Institution | None] | None:
        """A header accepted less than ``ttl`` ago, without awaiting anything; else None."""
        if header is not None:
            hit = self._accepted.get(header)
            if hit is not None and self._clock() - hit[0] < self._ttl:
                return hit[1], hit[2]
        return None

    async def authenticate(self, header: str | None) -> tuple[Scanner, Institution | None]:
        """Raise AuthError, or StoreUnavailable when records cannot be read."""
        hit = self.cached(header)
        if hit is not None:
            return hit
        parsed = parse_bearer(header)
        if parsed is None:
            raise AuthError(UNAUTHORIZED, "missing or malformed bearer credential")
        scanner_id, secret = parsed
        now = self._clock()
        entry = self._entries.get(scanner_id)
        if entry is None or now - entry[0] >= self._ttl:
            scanner = await self._store.get_scanner(scanner_id)
            inst = await self._store.get_institution(scanner.institution) if scanner else None
            if len(self._entries) > 100_000:
                self._entries.clear()  # bound memory against credential spraying
            entry = (now, scanner, inst)
            self._entries[scanner_id] = entry
        scanner, inst = entry[1], entry[2]
        if scanner is None or not hmac.compare_digest(scanner.secret_hash, hash_secret(secret)):
            raise AuthError(UNAUTHORIZED, "unknown scanner credential")
        if scanner.revoked:
            raise AuthError(SCANNER_REVOKED, "this scanner credential has been revoked")
        if len(self._accepted) > 10_000:
            self._accepted.clear()
        assert header is not None  # parse_bearer accepted it
        self._accepted[header] = (entry[0], scanner, inst)
        return scanner, inst
