"""The verdict on a QR token: a pure function of (token, trust list, policy, now).

No I/O, no clock, no environment. Every rejection is a :class:`TokenError` whose ``reason``
is one of the codes in :mod:`verifier.errors`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from verifier import errors as E
from verifier import paseto, rfc3339, strictjson
from verifier.errors import TokenError
from verifier.policy import ClaimPolicy
from verifier.records import CARD_TYPES
from verifier.trust import TrustList

_OTHER_PASETO = re.compile(rb"v[0-9]+\.(?:local|public)\.")
_SUB = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_JTI = re.compile(r"[A-Za-z0-9_-]{16,64}", re.ASCII)
_REGION = re.compile(r"[0-9]{6}", re.ASCII)
_CARDS = frozenset(CARD_TYPES)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A genuine, fresh token's claims. Times are seconds since the epoch."""

    kid: str
    iss: str
    sub: str
    jti: str
    card: str
    region: str
    iat: float
    exp: float
    nbf: float | None


def verify(token: str | bytes, trust: TrustList, policy: ClaimPolicy, now: float) -> VerifiedToken:
    """Verify a v4.public insurance token at time ``now`` or raise TokenError."""
    # Size limits come before any decoding or crypto.
    if type(token) is str:
        if len(token) > policy.max_token_bytes or not token.isascii():
            raise TokenError(E.MALFORMED, "token too long or not ASCII")
        raw = token.encode("ascii")
    elif type(token) is bytes:
        raw = token
    else:
        raise TokenError(E.MALFORMED, "token must be text")
    if len(raw) > policy.max_token_bytes:
        raise TokenError(E.MALFORMED, "token too long")

    # Header and segments (PASETO v4.Verify steps 1-2).
    if not raw.startswith(paseto.HEADER):
        if _OTHER_PASETO.match(raw):
            raise TokenError(E.UNSUPPORTED_TOKEN, "only v4.public tokens are accepted")
        raise TokenError(E.MALFORMED, "not a PASETO token")
    dot = raw.find(b".", len(paseto.HEADER))
    if dot != -1 and len(raw) - dot - 1 > policy.max_footer_b64:
        raise TokenError(E.MALFORMED, "footer too long")
    try:
        body, footer = paseto.split(raw)
    except paseto.PasetoError as err:
        raise TokenError(E.MALFORMED, str(err)) from err

    # The key comes only from our trust list, selected by the footer kid.
    if not footer:
        raise TokenError(E.MALFORMED, "footer with kid is required")
    try:
        f = strictjson.loads_object(footer, max_depth=1, max_keys=1)
    except strictjson.JSONError as err:
        raise TokenError(E.MALFORMED, f"footer: {err}") from err
    kid = f.get("kid")
    if type(kid) is not str:
        raise TokenError(E.MALFORMED, 'footer must be exactly {"kid": "k4.pid..."}')
    if not trust.is_fresh(now):
        raise TokenError(E.TRUST_LIST_EXPIRED, "the loaded trust list has expired")
    key = trust.keys.get(kid)
    if key is None:
        raise TokenError(E.UNKNOWN_KEY, "kid not in trust list")
    if key.state == "revoked":
        raise TokenError(E.KEY_REVOKED, kid)
    if (key.not_before is not None and now < key.not_before) or (
        key.not_after is not None and now >= key.not_after
    ):
        raise TokenError(E.KEY_NOT_VALID, "outside the key's validity window")

    # Signature (steps 3-6).
    try:
        message = paseto.verify_body(body, footer, key.public, policy.implicit_assertion)
    except paseto.PasetoError as err:
        reason = E.BAD_SIGNATURE if err.kind == "signature" else E.MALFORMED
        raise TokenError(reason, str(err)) from err

    # Claims.
    try:
        claims = strictjson.loads_object(
            message, max_depth=policy.max_json_depth, max_keys=policy.max_json_keys
        )
    except strictjson.JSONError as err:
        raise TokenError(E.INVALID_CLAIMS, f"payload: {err}") from err
    return _check_claims(claims, key.kid, key.issuer, key.cards, policy, now)


def _check_claims(
    c: dict[str, object],
    kid: str,
    issuer: str,
    cards: frozenset[str],
    policy: ClaimPolicy,
    now: float,
) -> VerifiedToken:
    iss, sub, jti, card, region = (
        c.get("iss"),
        c.get("sub"),
        c.get("jti"),
        c.get("card"),
        c.get("region"),
    )
    if type(iss) is not str or type(sub) is not str or not _SUB.fullmatch(sub):
        raise TokenError(E.INVALID_CLAIMS, "iss/sub missing or ill-formed")
    if type(jti) is not str or not _JTI.fullmatch(jti):
        raise TokenError(E.INVALID_CLAIMS, "jti must be 16-64 base64url characters")
    if card not in _CARDS or type(region) is not str or not _REGION.fullmatch(region):
        raise TokenError(E.INVALID_CLAIMS, "card/region missing or ill-formed")
    try:
        iat = rfc3339.parse(c.get("iat"))
        exp = rfc3339.parse(c.get("exp"))
        nbf_raw = c.get("nbf")
        nbf = None if nbf_raw is None else rfc3339.parse(nbf_raw)
    except ValueError as err:
        raise TokenError(E.INVALID_CLAIMS, f"time claim: {err}") from err
    assert isinstance(card, str)
    if iss != issuer or card not in cards:
        raise TokenError(E.CARD_NOT_ALLOWED, f"key of {issuer!r} may not sign {card!r} as {iss!r}")
    if exp <= iat:
        raise TokenError(E.INVALID_CLAIMS, "exp must be after iat")
    if exp - iat > policy.max_lifetime:
        raise TokenError(E.LIFETIME_TOO_LONG, f"lifetime {exp - iat:.0f}s")
    if iat > now + policy.future_leeway:
        raise TokenError(E.ISSUED_IN_FUTURE, "iat is in the future")
    if nbf is not None and nbf > now + policy.future_leeway:
        raise TokenError(E.NOT_YET_VALID, "nbf is in the future")
    if now >= exp + policy.exp_leeway:
        raise TokenError(E.EXPIRED, "token expired")
    return VerifiedToken(kid, iss, sub, jti, card, region, iat, exp, nbf)
