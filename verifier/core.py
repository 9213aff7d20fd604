"""The verdict on a QR token: a pure function of (token, trust list, policy, now).

No I/O, no clock, no environment. Every rejection is a :class:`TokenError` whose ``reason``
is one of the codes in :mod:`verifier.errors`.

Build a :class:`TokenVerifier` once per loaded trust list and policy and call its ``verify``
for each token; the module function :func:`verify` does the same for one-off callers.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from verifier import errors as E
from verifier import paseto, rfc3339, strictjson
from verifier.errors import TokenError
from verifier.policy import ClaimPolicy
from verifier.records import CARD_TYPES
from verifier.trust import ISSUER_PATTERN, IssuerKey, TrustList

_OTHER_PASETO = re.compile(rb"v[0-9]+\.(?:local|public)\.")
_FOOTER_CACHE_MAX = 1024

# The shapes of the claims, each written once: the strict path checks sub, jti and region with
# _SHAPED (one match is cheaper than three), the canonical pattern embeds all of them.
_SUB = r"[A-Za-z0-9_-]{1,64}"
_JTI = r"[A-Za-z0-9_-]{16,64}"  # 16-64 base64url characters
_REGION = r"[0-9]{6}"
_CARD = "|".join(re.escape(card) for card in CARD_TYPES)
_TIME = r'"([0-9T:.+Z-]{20,35})"'  # the exact RFC 3339 check is rfc3339.parse's
_SHAPED = re.compile(f"{_SUB}\n{_JTI}\n{_REGION}")
_CARDS = frozenset(CARD_TYPES)
# The canonical payload: compact JSON in the order issuers write the claims, plain ASCII
# strings without escapes. Such a text is valid JSON with distinct keys whose values already
# have the required shapes, so matching it is equivalent to the strict parse + shape checks
# (times are still parsed by rfc3339). Everything else takes the general path.
_CANONICAL = re.compile(
    rf'\{{"iss":"({ISSUER_PATTERN})","sub":"({_SUB})","jti":"({_JTI})",'
    rf'"iat":{_TIME},"exp":{_TIME},"card":"({_CARD})","region":"({_REGION})"'
    rf'(?:,"nbf":{_TIME})?\}}'
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


class TokenVerifier:
    """Verifies insurance tokens against one trust list under one claim policy.

    Build one per loaded trust list (a reloaded list means a new verifier) and call
    :meth:`verify` for each token. What it remembers between calls (parsed footers) depends on
    the footer alone, so each verdict is still a function of (token, trust, policy, now).
    """

    __slots__ = ("_trust", "_policy", "_footers", "_max_token", "_max_footer", "_implicit")

    def __init__(self, trust: TrustList, policy: ClaimPolicy) -> None:
        self._trust = trust
        self._policy = policy
        self._max_token = policy.max_token_bytes
        self._max_footer = policy.max_footer_b64
        self._implicit = policy.implicit_assertion
        # Footers repeat (one per issuer key): the parse of each exact spelling accepted.
        self._footers: dict[bytes, tuple[bytes, str]] = {}

    @property
    def trust(self) -> TrustList:
        return self._trust

    @property
    def policy(self) -> ClaimPolicy:
        return self._policy

    def verify(self, token: str | bytes, now: float) -> VerifiedToken:
        """Verify a v4.public insurance token at time ``now`` or raise TokenError."""
        # Size limits come before any decoding or crypto.
        if type(token) is str:
            if len(token) > self._max_token or not token.isascii():
                raise TokenError(E.MALFORMED, "token too long or not ASCII")
            raw = token.encode("ascii")
        elif type(token) is bytes:
            raw = token
            if len(raw) > self._max_token:
                raise TokenError(E.MALFORMED, "token too long")
        else:
            raise TokenError(E.MALFORMED, "token must be text")

        # PASETO v4.Verify, with the key chosen by the footer's kid from our trust list.
        try:
            message, _, key = paseto.verify_with(
                raw, lambda footer: self._key(footer, now), self._implicit
            )
        except paseto.PasetoError as err:
            raise _refusal(err, raw) from err
        policy = self._policy

        # The claims. Payloads in the canonical layout issuers write take a fast path that
        # needs no JSON parser; any other spelling is parsed strictly.
        m = _CANONICAL.fullmatch(message.decode("latin-1"))  # any bytes; non-ASCII cannot match
        if m is not None:
            iss, sub, jti, iat, exp, card, region, nbf = m.groups()
            try:
                iat_s, exp_s = rfc3339.parse(iat), rfc3339.parse(exp)
                nbf_s = None if nbf is None else rfc3339.parse(nbf)
            except ValueError as err:
                raise TokenError(E.INVALID_CLAIMS, f"time claim: {err}") from err
            t = VerifiedToken(key.kid, iss, sub, jti, card, region, iat_s, exp_s, nbf_s)
        else:
            t = _parse_claims(message, key.kid, policy)
        broken = broken_claim_rule(t, key, policy, now)
        if broken is not None:
            reason, detail = broken
            raise TokenError(reason, detail.format(t=t, key=key))
        return t

    def _key(self, encoded_footer: bytes, now: float) -> tuple[bytes, IssuerKey]:
        """(footer, key): the footer ``{"kid": ...}`` selects a key of our trust list."""
        if not encoded_footer:
            raise TokenError(E.MALFORMED, "a footer with the key id is required")
        if len(encoded_footer) > self._max_footer:  # before the cache: the limit always holds
            raise TokenError(E.MALFORMED, "footer too long")
        cached = self._footers.get(encoded_footer)
        footer, kid = cached if cached is not None else self._read_footer(encoded_footer)
        trust = self._trust
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
        return footer, key

    def _read_footer(self, encoded: bytes) -> tuple[bytes, str]:
        """(raw footer, kid), remembered; PasetoError or TokenError(malformed) if ill-formed."""
        footer = paseto.decode_footer(encoded)
        try:
            f = strictjson.loads_object(footer, max_depth=1, max_keys=1)
        except strictjson.JSONError as err:
            raise TokenError(E.MALFORMED, f"footer: {err}") from err
        kid = f.get("kid")
        if type(kid) is not str:
            raise TokenError(E.MALFORMED, 'footer must be exactly {"kid": "k4.pid..."}')
        if len(self._footers) >= _FOOTER_CACHE_MAX:
            self._footers.clear()
        self._footers[encoded] = (footer, kid)
        return footer, kid


def broken_claim_rule(
    t: VerifiedToken, key: IssuerKey, p: ClaimPolicy, now: float
) -> tuple[str, str] | None:
    """The rules on well-formed claims, in the order they are checked, each beside the reason
    a token that breaks it is refused with.

    Returns (reason, detail) for the first rule that ``t``, signed by ``key``, breaks at
    ``now`` under policy ``p``, or None; the detail is for logs, formatted with ``t`` and
    ``key``. The table is written out as code rather than kept as a list of predicates to
    walk: a call per rule would cost more than all six rules, and this runs for every token.
    """
    if t.iss != key.issuer or t.card not in key.cards:
        return E.CARD_NOT_ALLOWED, "key of {key.issuer!r} may not sign {t.card!r} as {t.iss!r}"
    if t.exp <= t.iat:
        return E.INVALID_CLAIMS, "exp must be after iat"
    if round(t.exp - t.iat, 6) > p.max_lifetime:  # in whole microseconds: no float drift
        return E.LIFETIME_TOO_LONG, "lifetime longer than the policy allows"
    if t.iat > now + p.future_leeway:
        return E.ISSUED_IN_FUTURE, "iat is in the future"
    if t.nbf is not None and t.nbf > now + p.future_leeway:
        return E.NOT_YET_VALID, "nbf is in the future"
    if now >= t.exp + p.exp_leeway:
        return E.EXPIRED, "token expired"
    return None


_last: TokenVerifier | None = None


def verify(token: str | bytes, trust: TrustList, policy: ClaimPolicy, now: float) -> VerifiedToken:
    """Verify a v4.public insurance token at time ``now`` or raise TokenError.

    The same as ``TokenVerifier(trust, policy).verify(token, now)``. The verifier of the last
    call is kept while callers pass the very same trust list and policy objects, so repeated
    calls keep its footer cache; long-lived callers should hold their own TokenVerifier.
    """
    global _last
    v = _last
    if v is None or v._trust is not trust or v._policy is not policy:
        v = _last = TokenVerifier(trust, policy)
    return v.verify(token, now)


def _refusal(err: paseto.PasetoError, raw: bytes) -> TokenError:
    if err.kind == "signature":
        return TokenError(E.BAD_SIGNATURE, str(err))
    if err.kind == "header":
        if _OTHER_PASETO.match(raw):
            return TokenError(E.UNSUPPORTED_TOKEN, "only v4.public tokens are accepted")
        return TokenError(E.MALFORMED, "not a PASETO token")
    return TokenError(E.MALFORMED, str(err))


def _time(text: object) -> float:
    try:
        return rfc3339.parse(text)
    except ValueError as err:
        raise TokenError(E.INVALID_CLAIMS, f"time claim: {err}") from err


def _parse_claims(message: bytes, kid: str, policy: ClaimPolicy) -> VerifiedToken:
    """The claims of any payload spelling, parsed strictly; TokenError(invalid_claims)."""
    try:
        c = strictjson.loads_object(
            message, max_depth=policy.max_json_depth, max_keys=policy.max_json_keys
        )
    except strictjson.JSONError as err:
        raise TokenError(E.INVALID_CLAIMS, f"payload: {err}") from err
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
    if _SHAPED.fullmatch(f"{sub}\n{jti}\n{region}") is None:
        raise TokenError(E.INVALID_CLAIMS, "sub, jti or region ill-formed")
    iat, exp = _time(iat_text), _time(exp_text)
    nbf = _time(c["nbf"]) if "nbf" in c else None
    return VerifiedToken(kid, iss, sub, jti, card, region, iat, exp, nbf)
