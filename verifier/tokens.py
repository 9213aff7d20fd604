"""Minting QR tokens (what an issuer's app does; used by the CLI, the demo and the bench)."""

from __future__ import annotations

import secrets

import orjson

from verifier import paserk, paseto, rfc3339


def new_jti() -> str:
    """A fresh single-use nonce: 16 random bytes as 22 base64url characters."""
    return secrets.token_urlsafe(16)


def mint(
    secret_key: bytes,
    *,
    iss: str,
    sub: str,
    card: str,
    region: str,
    iat: float,
    ttl: int = 60,
    jti: str | None = None,
    nbf: float | None = None,
    implicit: bytes = b"",
    extra: dict[str, object] | None = None,
) -> str:
    """Sign an insurance token with an issuer key; the footer carries the key's k4.pid."""
    claims: dict[str, object] = {
        "iss": iss,
        "sub": sub,
        "jti": jti or new_jti(),
        "iat": rfc3339.format(iat),
        "exp": rfc3339.format(iat + ttl),
        "card": card,
        "region": region,
    }
    if nbf is not None:
        claims["nbf"] = rfc3339.format(nbf)
    if extra:
        claims.update(extra)
    footer = orjson.dumps({"kid": paserk.pid(secret_key[32:])})
    return paseto.sign(secret_key, orjson.dumps(claims), footer, implicit)
