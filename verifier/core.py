"""The verdict on a QR token: a pure function of (token, trust list, policy, now).

No I/O, no clock, no environment. Every rejection is a :class:`TokenError` whose ``reason``
is one of the codes in :mod:`verifier.errors`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from verifier import b64url, paseto, rfc3339, strictjson
from verifier import errors as E
from verifier.errors import TokenError
from verifier.policy import ClaimPolicy
from verifier.records import CARD_TYPES
from verifier.trust import TrustList

_OTHER_PASETO = re.compile(rb"v[0-9]+\.(?:local|public)\.")
# sub: 1-64 of [A-Za-z0-9_-]; jti: 16-64 base64url characters; region: 6 digits.
_SHAPED = re.compile(r"[A-Za-z0-9_-]{1,64}\n[A-Za-z0-9_-]{16,64}\n[0-9]{6}")
_CARDS = frozenset(CARD_TYPES)
# The canonical payload: compact JSON in the order issuers write the claims, plain ASCII
# strings without escapes. Such a text is valid JSON with distinct keys whose values already
# have the required shapes, so matching it is equivalent to the strict parse + shape checks
# (times are still parsed by rfc3339). Everything else takes the general path.
_TIME = r'"([0-9T:.+Z-]{20,35})"'  # the exact RFC 3339 check is rfc3339.parse's
_CANONICAL = re.compile(
    r'\{"iss":"([a-z][a-z0-9_-]{0,31})","sub":"([A-Za-z0-9_-]{1,64})","jti":"([A-Za-z0-9_-]{16,64})",'
    r'"iat":'
    + _TIME
    + r',"exp":'
    + _TIME
    + r',"card":"(mi-voucher|ss-ecard)","region":"([0-9]{6})"'
    r'(?:,"nbf":' + _TIME + r")?\}"
)


class VerifiedToken(NamedTuple):
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


# Footers repeat (one per issuer key): remember the parse of each exact spelling we accepted.
_footers: dict[bytes, tuple[bytes, str]] = {}
_FOOTER_CACHE_MAX = 1024


def _parse_footer(encoded: bytes) -> tuple[bytes, str]:
    """(raw footer, kid) from the encoded footer segment, or TokenError(malformed)."""
    try:
        raw = b64url.decode(encoded)
        f = strictjson.loads_object(raw, max_depth=1, max_keys=1)
    except (ValueError, strictjson.JSONError) as err:
        raise TokenError(E.MALFORMED, f"footer: {err}") from err
    kid = f.get("kid")
    if type(kid) is not str:
        raise TokenError(E.MALFORMED, 'footer must be exactly {"kid": "k4.pid..."}')
    if len(_footers) >= _FOOTER_CACHE_MAX:
        _footers.clear()
    _footers[encoded] = (raw, kid)
    return raw, kid


def verify(token: str | bytes, trust: TrustList, policy: ClaimPolicy, now: float) -> VerifiedToken:
    """Verify a v4.public insurance token at time ``now`` or raise TokenError."""
    # Size limits come before any decoding or crypto.
    if type(token) is str:
        if len(token) > policy.max_token_bytes or not token.isascii():
            raise TokenError(E.MALFORMED, "token too long or not ASCII")
        raw = token.encode("ascii")
    elif type(token) is bytes:
        raw = token
        if len(raw) > policy.max_token_bytes:
            raise TokenError(E.MALFORMED, "token too long")
    else:
        raise TokenError(E.MALFORMED, "token must be text")

    # PASETO v4.Verify steps 1-2: exact header; body "." footer (our footer is required).
    if not raw.startswith(paseto.HEADER):
        if _OTHER_PASETO.match(raw):
            raise TokenError(E.UNSUPPORTED_TOKEN, "only v4.public tokens are accepted")
        raise TokenError(E.MALFORMED, "not a PASETO token")
    body, _, encoded_footer = raw[10:].partition(b".")
    if not encoded_footer:
        raise TokenError(E.MALFORMED, "a footer with the key id is required")
    if not body or b"." in encoded_footer:
        raise TokenError(E.MALFORMED, "wrong number of segments")
    if len(encoded_footer) > policy.max_footer_b64:
        raise TokenError(E.MALFORMED, "footer too long")
    cached = _footers.get(encoded_footer)
    footer, kid = cached if cached is not None else _parse_footer(encoded_footer)

    # The key comes only from our trust list, selected by the footer kid.
    if now >= trust.exp:
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

    # Steps 3-5: decode, split message and signature, PAE, Ed25519.
    try:
        message = paseto.verify_body(body, footer, key.public, policy.implicit_assertion)
    except paseto.PasetoError as err:
        reason = E.BAD_SIGNATURE if err.kind == "signature" else E.MALFORMED
        raise TokenError(reason, str(err)) from err

    # Step 6: the claims. Payloads in the canonical layout issuers write take a fast path
    # that needs no JSON parser; any other spelling is parsed strictly.
    m = _CANONICAL.fullmatch(message.decode("latin-1"))  # any bytes; non-ASCII cannot match
    if m is not None:
        iss, sub, jti, iat_text, exp_text, card, region, nbf_text = m.groups()
        nbf = None if nbf_text is None else _time(nbf_text)
        iat, exp = _time(iat_text), _time(exp_text)
        return _check(
            key.kid, key.issuer, key.cards, policy, now, iss, sub, jti, card, region, iat, exp, nbf
        )
    try:
        claims = strictjson.loads_object(
            message, max_depth=policy.max_json_depth, max_keys=policy.max_json_keys
        )
    except strictjson.JSONError as err:
        raise TokenError(E.INVALID_CLAIMS, f"payload: {err}") from err
    return _check_claims(claims, key.kid, key.issuer, key.cards, policy, now)


def _time(text: object) -> float:
    try:
        return rfc3339.parse(text)
    except ValueError as err:
        raise TokenError(E.INVALID_CLAIMS, f"time claim: {err}") from err


def _check_claims(
    c: dict[str, object],
    kid: str,
    issuer: str,
    cards: frozenset[str],
    policy: ClaimPolicy,
    now: float,
) -> VerifiedToken:
    try:
        iss, sub, jti, card, region = c["iss"], c["sub"], c["jti"], c["card"], c["region"]
        iat_text, exp_text = c["iat"], c["exp"]
    except KeyError as err:
        raise TokenError(E.INVALID_CLAIMS, f"missing claim {err}") from err
    if (
        type(iss) is not str
        or type(sub) is not str
        or type(jti) is not str
        or type(region) is not str
        or type(card) is not str
        or card not in _CARDS
    ):
        raise TokenError(E.INVALID_CLAIMS, "iss/sub/jti/region must be strings, card a known type")
    # One pattern for the three shaped claims (cheaper than three matches).
    if _SHAPED.fullmatch(f"{sub}\n{jti}\n{region}") is None:
        raise TokenError(E.INVALID_CLAIMS, "sub, jti or region ill-formed")
    iat, exp = _time(iat_text), _time(exp_text)
    nbf = _time(c["nbf"]) if "nbf" in c else None
    return _check(kid, issuer, cards, policy, now, iss, sub, jti, card, region, iat, exp, nbf)


def _check(
    kid: str,
    issuer: str,
    cards: frozenset[str],
    policy: ClaimPolicy,
    now: float,
    iss: str,
    sub: str,
    jti: str,
    card: str,
    region: str,
    iat: float,
    exp: float,
    nbf: float | None,
) -> VerifiedToken:
    """The key's permissions and the time rules, on well-formed claims."""
    if iss != issuer or card not in cards:
        raise TokenError(E.CARD_NOT_ALLOWED, f"key of {issuer!r} may not sign {card!r} as {iss!r}")
    if exp <= iat:
        raise TokenError(E.INVALID_CLAIMS, "exp must be after iat")
    if round(exp - iat, 6) > policy.max_lifetime:  # whole microseconds: no float drift
        raise TokenError(E.LIFETIME_TOO_LONG, f"lifetime {exp - iat:.0f}s")
    if iat > now + policy.future_leeway:
        raise TokenError(E.ISSUED_IN_FUTURE, "iat is in the future")
    if nbf is not None and nbf > now + policy.future_leeway:
        raise TokenError(E.NOT_YET_VALID, "nbf is in the future")
    if now >= exp + policy.exp_leeway:
        raise TokenError(E.EXPIRED, "token expired")
    return VerifiedToken(kid, iss, sub, jti, card, region, iat, exp, nbf)
