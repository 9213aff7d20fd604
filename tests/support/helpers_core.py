"""Small fixtures for the token-core tests: fixed keys, one signed trust list, fixed times,
and token builders that can sign *any* payload or footer bytes (valid signature, bad content).

Everything here is deterministic: keys come from fixed seeds and ``NOW`` is a constant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from verifier import b64url, core, paserk, paseto, rfc3339, trust
from verifier.errors import TokenError
from verifier.policy import ClaimPolicy

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "paseto"
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def load_vectors(name: str) -> list[dict[str, Any]]:
    """The ``tests`` list of one official vector file, e.g. ``load_vectors("v4.json")``."""
    tests: list[dict[str, Any]] = json.loads((VECTORS / name).read_text("utf-8"))["tests"]
    return tests


NOW = rfc3339.parse("2026-11-22T14:00:00Z")


def fixed_key(n: int) -> paserk.KeyPair:
    return paserk.from_seed(bytes([n]) * 32)


ROOT = fixed_key(1)
NHSA = fixed_key(2)  # issuer "nhsa", may sign mi-voucher only
MOHRSS = fixed_key(3)  # issuer "mohrss", may sign ss-ecard only
REVOKED = fixed_key(4)  # issuer "nhsa", state revoked
WINDOWED = fixed_key(5)  # issuer "nhsa", valid only in [KEY_NOT_BEFORE, KEY_NOT_AFTER)
STRANGER = fixed_key(6)  # in no trust list
VERIFY_ONLY = fixed_key(7)  # issuer "nhsa", state verify-only (still verifies)

KEY_NOT_BEFORE = NOW - 3600
KEY_NOT_AFTER = NOW + 3600
TRUST_IAT = NOW - 86400
TRUST_EXP = NOW + 86400


def key_entry(kp: paserk.KeyPair, issuer: str, cards: list[str], **extra: Any) -> dict[str, Any]:
    """One issuer key entry as written in a trust-list source file."""
    return {"public": paserk.public_to_paserk(kp.public), "issuer": issuer, "cards": cards, **extra}


ENTRIES: list[dict[str, Any]] = [
    key_entry(NHSA, "nhsa", ["mi-voucher"]),
    key_entry(MOHRSS, "mohrss", ["ss-ecard"]),
    key_entry(REVOKED, "nhsa", ["mi-voucher"], state="revoked"),
    key_entry(
        WINDOWED,
        "nhsa",
        ["mi-voucher"],
        not_before=rfc3339.format(KEY_NOT_BEFORE),
        not_after=rfc3339.format(KEY_NOT_AFTER),
    ),
    key_entry(VERIFY_ONLY, "nhsa", ["mi-voucher"], state="verify-only"),
]


def issuer_keys(entries: list[dict[str, Any]] | None = None) -> dict[str, trust.IssuerKey]:
    keys = [trust.parse_key_entry(e, f"keys[{n}]") for n, e in enumerate(entries or ENTRIES)]
    return {k.kid: k for k in keys}


def signed_trust_list(
    keys: dict[str, trust.IssuerKey] | None = None,
    *,
    version: int = 1,
    iat: float = TRUST_IAT,
    exp: float = TRUST_EXP,
    root: paserk.KeyPair = ROOT,
) -> str:
    return trust.sign(keys if keys is not None else issuer_keys(), root.secret, version, iat, exp)


def sign_trust_body(body: bytes | dict[str, Any], *, footer: bytes | None = None) -> str:
    """Sign raw trust-list bytes with the root (to craft lists ``trust.sign`` cannot produce)."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    foot = footer if footer is not None else orjson.dumps({"kid": ROOT.kid})
    return paseto.sign(ROOT.secret, raw, foot, trust.TRUST_LIST_ASSERTION)


TRUST = trust.load(signed_trust_list(), ROOT.public, NOW)
POLICY = ClaimPolicy()

MISSING: Any = object()  # claims(x=MISSING) removes claim x


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid claim set for NHSA at NOW, with overrides (MISSING deletes a claim)."""
    c: dict[str, Any] = {
        "iss": "nhsa",
        "sub": "holder-0001",
        "jti": "jti-0123456789abcdef",
        "iat": rfc3339.format(NOW),
        "exp": rfc3339.format(NOW + 60),
        "card": "mi-voucher",
        "region": "110105",
    }
    c.update(overrides)
    return {k: v for k, v in c.items() if v is not MISSING}


def footer_for(kp: paserk.KeyPair) -> bytes:
    return orjson.dumps({"kid": kp.kid})


def make_token(
    *,
    payload: bytes | None = None,
    footer: bytes | None = None,
    signer: paserk.KeyPair = NHSA,
    implicit: bytes = b"",
    **claim_overrides: Any,
) -> str:
    """A genuinely signed v4.public token.

    By default the payload is ``claims(**claim_overrides)`` and the footer names the signer's
    kid; pass ``payload`` / ``footer`` bytes to sign anything at all.
    """
    body = payload if payload is not None else orjson.dumps(claims(**claim_overrides))
    foot = footer if footer is not None else footer_for(signer)
    return paseto.sign(signer.secret, body, foot, implicit)


def verify(
    token: str | bytes,
    *,
    now: float = NOW,
    trust_list: trust.TrustList = TRUST,
    policy: ClaimPolicy = POLICY,
) -> core.VerifiedToken:
    return core.verify(token, trust_list, policy, now)


def reason(token: str | bytes, **kwargs: Any) -> str:
    """``"ok"`` if the token verifies, else the TokenError reason."""
    try:
        verify(token, **kwargs)
    except TokenError as err:
        return err.reason
    return "ok"


def split_token(token: str) -> tuple[bytes, bytes]:
    """(decoded body = message || signature, decoded footer) of a well-formed token."""
    body, footer = paseto.split(token.encode("ascii"))
    return b64url.decode(body), footer


def join_token(body: bytes, footer: bytes = b"") -> str:
    """Encode decoded parts back into a token (no signing)."""
    out = paseto.HEADER + b64url.encode(body)
    if footer:
        out += b"." + b64url.encode(footer)
    return out.decode("ascii")
