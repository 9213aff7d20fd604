"""Scanner and gateway credentials: ``<id>.<secret>``; only SHA-256 of the secret is stored.

A scanner's id is ``s-`` and 12 hex digits, a gateway sidecar's ``g-`` and 12 hex digits. The
credential is shown once when it is made; the service checks a bearer header against the
stored hash (see ``verifier.service.auth`` and ``verifier.service.gateway_api``).
"""

from __future__ import annotations

import hashlib
import re
import secrets

from verifier.records import Gateway, Scanner

_CREDENTIAL = re.compile(r"(s-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})", re.ASCII)
_GATEWAY_CREDENTIAL = re.compile(r"(g-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})", re.ASCII)


def is_gateway_credential(text: str) -> bool:
    """Whether ``text`` has the shape of a gateway credential (what ``gateways add`` prints)."""
    return _GATEWAY_CREDENTIAL.fullmatch(text) is not None


def new_credential(institution: str) -> tuple[str, Scanner]:
    """A fresh credential (shown once) and the record to store (hash only)."""
    scanner_id = "s-" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{scanner_id}.{secret}", Scanner(scanner_id, institution, hash_secret(secret))


def hash_secret(secret: str) -> str:
    """What the store keeps of a credential's secret: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_bearer(header: str | None) -> tuple[str, str] | None:
    """(scanner id, secret) from an ``Authorization: Bearer`` header, or None."""
    # The scheme name is case-insensitive (RFC 9110 §11.1).
    if not header or header[:7].lower() != "bearer ":
        return None
    m = _CREDENTIAL.fullmatch(header, 7)
    return (m[1], m[2]) if m else None


def new_gateway_credential(institution: str) -> tuple[str, Gateway]:
    """A fresh gateway credential (shown once) and the record to store (hash only)."""
    gateway_id = "g-" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{gateway_id}.{secret}", Gateway(gateway_id, institution, hash_secret(secret))


def parse_gateway_bearer(header: str | None) -> tuple[str, str] | None:
    """(gateway id, secret) from an ``Authorization: Bearer`` header, or None."""
    if not header or header[:7].lower() != "bearer ":
        return None
    m = _GATEWAY_CREDENTIAL.fullmatch(header, 7)
    return (m[1], m[2]) if m else None
