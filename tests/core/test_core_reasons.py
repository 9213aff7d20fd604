"""``core.verify``: one test (or table row) per reason code, with tokens that are genuinely
signed unless the point is the signature, so each rejection is for the stated reason only."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from helpers_core import (
    KEY_NOT_AFTER,
    KEY_NOT_BEFORE,
    MISSING,
    MOHRSS,
    NHSA,
    NOW,
    REVOKED,
    ROOT,
    STRANGER,
    TRUST,
    TRUST_EXP,
    VERIFY_ONLY,
    WINDOWED,
    claims,
    footer_for,
    join_token,
    make_token,
    reason,
    split_token,
    verify,
)

from verifier import b64url, core, paserk, paseto, rfc3339, strictjson, trust
from verifier import errors as E
from verifier.policy import ClaimPolicy


def test_valid_token_gives_its_claims() -> None:
    got = verify(make_token(nbf=rfc3339.format(NOW - 10)))
    assert got == core.VerifiedToken(
        kid=NHSA.kid,
        iss="nhsa",
        sub="holder-0001",
        jti="jti-0123456789abcdef",
        card="mi-voucher",
        region="110105",
        iat=NOW,
        exp=NOW + 60,
        nbf=NOW - 10,
    )


def test_valid_token_as_bytes_and_str_alike() -> None:
    token = make_token()
    assert verify(token) == verify(token.encode("ascii"))


def _one_token_per_reason() -> dict[str, tuple[str, dict[str, Any]]]:
    stale = trust.TrustList(1, NOW - 100, NOW - 1, TRUST.keys)
    return {
        E.MALFORMED: ("garbage", {}),
        E.UNSUPPORTED_TOKEN: ("v2.public." + make_token()[10:], {}),
        E.UNKNOWN_KEY: (make_token(signer=STRANGER), {}),
        E.KEY_REVOKED: (make_token(signer=REVOKED), {}),
        E.KEY_NOT_VALID: (make_token(signer=WINDOWED), {"now": KEY_NOT_AFTER}),
        E.BAD_SIGNATURE: (make_token(signer=STRANGER, footer=footer_for(NHSA)), {}),
        E.INVALID_CLAIMS: (make_token(region="1"), {}),
        E.EXPIRED: (make_token(), {"now": NOW + 90}),
        E.NOT_YET_VALID: (make_token(nbf=rfc3339.format(NOW + 6)), {}),
        E.ISSUED_IN_FUTURE: (make_token(iat=rfc3339.format(NOW + 6)), {}),
        E.LIFETIME_TOO_LONG: (make_token(exp=rfc3339.format(NOW + 301)), {}),
        E.CARD_NOT_ALLOWED: (make_token(card="ss-ecard"), {}),
        E.TRUST_LIST_EXPIRED: (make_token(), {"trust_list": stale}),
    }


def test_every_token_reason_is_reachable() -> None:
    # One token per documented reason code, and no code left without one.
    examples = _one_token_per_reason()
    assert set(examples) == E.TOKEN_REASONS
    assert {code: reason(tok, **kw) for code, (tok, kw) in examples.items()} == {
        code: code for code in examples
    }


# --- malformed --------------------------------------------------------------------------


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every decoding / crypto step fail loudly: a rejection must come before them."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoding must not be reached")

    monkeypatch.setattr(b64url, "decode", forbidden)
    monkeypatch.setattr(paseto, "split", forbidden)
    monkeypatch.setattr(paseto, "decode_footer", forbidden)
    monkeypatch.setattr(paseto, "open_signed", forbidden)
    monkeypatch.setattr(strictjson, "loads_object", forbidden)


def _long_valid_token(length: int) -> str:
    """A genuinely signed token exactly ``length`` characters long (pads an extra claim)."""
    short = len(make_token(note=""))
    start = max(0, (length - short) * 3 // 4 - 8)  # 3 payload bytes add 4 characters
    for pad in range(start, start + 16):
        for spaces in range(3):  # footer whitespace shifts the length by one or two
            footer = b'{"kid":' + b" " * spaces + orjson.dumps(NHSA.kid) + b"}"
            token = make_token(footer=footer, note="x" * pad)
            if len(token) == length:
                return token
    raise AssertionError(f"no token of length {length}")


def test_token_of_exactly_max_token_bytes_is_accepted() -> None:
    token = _long_valid_token(ClaimPolicy().max_token_bytes)
    assert reason(token) == "ok"
    assert reason(token.encode()) == "ok"


@pytest.mark.parametrize("as_bytes", [False, True])
def test_too_long_is_malformed_before_any_decoding(no_decoding: None, as_bytes: bool) -> None:
    # One byte over the limit, otherwise genuine: only the length can be the reason.
    token = _long_valid_token(ClaimPolicy().max_token_bytes + 1)
    assert reason(token.encode() if as_bytes else token) == E.MALFORMED


def test_too_long_is_measured_against_the_configured_policy() -> None:
    token = make_token()
    policy = ClaimPolicy(max_token_bytes=len(token) - 1)
    assert reason(token, policy=policy) == E.MALFORMED
    assert reason(token, policy=ClaimPolicy(max_token_bytes=len(token))) == "ok"


GARBAGE = [
    "",
    "garbage",
    "v4.public",  # header without its dot
    "V4.PUBLIC." + "A" * 100,  # the header is case-sensitive
    " v4.public." + "A" * 100,  # leading space
    "v4public." + "A" * 100,
    "https://example.org/?t=v4.public.AAAA",
    "v4.public.",
]


@pytest.mark.parametrize("token", GARBAGE)
def test_garbage_is_malformed(token: str) -> None:
    assert reason(token) == E.MALFORMED


@pytest.mark.parametrize("token", GARBAGE[:-1])
def test_garbage_is_malformed_before_any_decoding(no_decoding: None, token: str) -> None:
    assert reason(token) == E.MALFORMED


@pytest.mark.parametrize(
    "where",
    ["é", "v4.public.é", "v4.public.AAAA\u00a0", "v4.public.AAAA.\u2028", "v4.public.全"],
)
def test_non_ascii_text_is_malformed_before_any_decoding(no_decoding: None, where: str) -> None:
    assert reason(where) == E.MALFORMED


def test_non_ascii_inside_an_otherwise_valid_token_is_malformed() -> None:
    token = make_token()
    assert reason(token[:30] + "é" + token[31:]) == E.MALFORMED
    assert reason(token.encode()[:30] + b"\xc3\xa9" + token.encode()[31:]) == E.MALFORMED


@pytest.mark.parametrize("token", [None, 42, bytearray(b"v4.public.AAAA"), memoryview(b"v4")])
def test_token_of_wrong_type_is_malformed(token: Any) -> None:
    assert reason(token) == E.MALFORMED


def test_body_too_short_for_a_signature_is_malformed() -> None:
    body = b64url.encode(b"\x00" * 63).decode()
    footer = b64url.encode(footer_for(NHSA)).decode()
    assert reason(f"v4.public.{body}.{footer}") == E.MALFORMED


# --- unsupported_token -------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["v1.local.", "v1.public.", "v2.local.", "v2.public.", "v3.local.", "v3.public.", "v4.local."],
)
def test_other_paseto_versions_and_purposes_are_unsupported(header: str) -> None:
    # The same body and footer as a valid v4.public token, under another header.
    token = make_token()
    assert reason(header + token[len("v4.public.") :]) == E.UNSUPPORTED_TOKEN


# --- unknown_key -------------------------------------------------------------------------


def test_kid_not_in_trust_list_is_unknown_key() -> None:
    assert reason(make_token(signer=STRANGER)) == E.UNKNOWN_KEY


def test_footer_kid_that_is_a_public_key_not_a_pid_is_unknown_key() -> None:
    # A footer must never carry key material: a k4.public in "kid" selects nothing.
    footer = orjson.dumps({"kid": paserk.public_to_paserk(NHSA.public)})
    assert reason(make_token(footer=footer)) == E.UNKNOWN_KEY


def test_footer_kid_of_the_root_is_unknown_key() -> None:
    # The root signs trust lists only; it is not an issuer key.
    assert reason(make_token(signer=ROOT)) == E.UNKNOWN_KEY


# --- key_revoked / key_not_valid ---------------------------------------------------------


def test_revoked_key_is_key_revoked() -> None:
    assert reason(make_token(signer=REVOKED)) == E.KEY_REVOKED


def test_verify_only_key_still_verifies() -> None:
    assert reason(make_token(signer=VERIFY_ONLY)) == "ok"


KEY_WINDOW = [
    # (now, expected) for a key valid in [not_before, not_after)
    (KEY_NOT_BEFORE - 1, E.KEY_NOT_VALID),  # one second before not_before
    (KEY_NOT_BEFORE - 0.001, E.KEY_NOT_VALID),  # a millisecond before
    (KEY_NOT_BEFORE, "ok"),  # exactly at not_before
    (KEY_NOT_AFTER - 1, "ok"),  # last whole second
    (KEY_NOT_AFTER, E.KEY_NOT_VALID),  # exactly at not_after
    (KEY_NOT_AFTER + 1, E.KEY_NOT_VALID),
]


@pytest.mark.parametrize(("now", "expected"), KEY_WINDOW)
def test_key_validity_window(now: float, expected: str) -> None:
    token = make_token(signer=WINDOWED, iat=rfc3339.format(now), exp=rfc3339.format(now + 60))
    assert reason(token, now=now) == expected


# --- bad_signature ------------------------------------------------------------------------


def test_signed_by_another_key_under_a_trusted_kid_is_bad_signature() -> None:
    assert reason(make_token(signer=STRANGER, footer=footer_for(NHSA))) == E.BAD_SIGNATURE


def test_signed_by_another_trusted_key_under_a_trusted_kid_is_bad_signature() -> None:
    assert reason(make_token(signer=MOHRSS, footer=footer_for(NHSA))) == E.BAD_SIGNATURE


@pytest.mark.parametrize("index", [0, 1, 31, 32, 62, 63])
def test_flipped_signature_byte_is_bad_signature(index: int) -> None:
    body, footer = split_token(make_token())
    sig = bytearray(body[-64:])
    sig[index] ^= 0x01
    assert reason(join_token(body[:-64] + bytes(sig), footer)) == E.BAD_SIGNATURE


def test_flipped_message_byte_is_bad_signature() -> None:
    body, footer = split_token(make_token())
    flipped = body.replace(b"holder-0001", b"holder-0002")
    assert reason(join_token(flipped, footer)) == E.BAD_SIGNATURE


def test_other_footer_under_the_same_signature_is_bad_signature() -> None:
    body, _ = split_token(make_token())
    assert reason(join_token(body, b'{"kid": "' + NHSA.kid.encode() + b'"}')) == E.BAD_SIGNATURE


def test_wrong_implicit_assertion_is_bad_signature() -> None:
    policy = ClaimPolicy(implicit_assertion=b"province-11")
    assert reason(make_token(implicit=b"province-11"), policy=policy) == "ok"
    assert reason(make_token(implicit=b"province-12"), policy=policy) == E.BAD_SIGNATURE
    assert reason(make_token(), policy=policy) == E.BAD_SIGNATURE
    assert reason(make_token(implicit=b"province-11")) == E.BAD_SIGNATURE


# --- invalid_claims ------------------------------------------------------------------------

REQUIRED = ["iss", "sub", "jti", "iat", "exp", "card", "region"]


@pytest.mark.parametrize("name", REQUIRED)
def test_each_required_claim_missing_is_invalid_claims(name: str) -> None:
    assert reason(make_token(**{name: MISSING})) == E.INVALID_CLAIMS


@pytest.mark.parametrize("name", REQUIRED)
def test_each_required_claim_null_is_invalid_claims(name: str) -> None:
    overrides: dict[str, Any] = {name: None}
    assert reason(make_token(**overrides)) == E.INVALID_CLAIMS


BAD_CLAIMS: list[tuple[dict[str, Any], str]] = [
    ({"iss": 1}, "iss not a string"),
    ({"sub": ""}, "sub empty"),
    ({"sub": "s" * 65}, "sub 65 characters (max 64)"),
    ({"sub": "holder 1"}, "sub with a space"),
    ({"sub": "holder.1"}, "sub with a dot"),
    ({"sub": "holder/1"}, "sub with a slash"),
    ({"sub": "holder-1\n"}, "sub with a trailing newline"),
    ({"sub": "hölder"}, "sub with a non-ASCII letter"),
    ({"sub": "holder１"}, "sub with a full-width digit"),
    ({"sub": 12345}, "sub a number"),
    ({"jti": "j" * 15}, "jti 15 characters (min 16)"),
    ({"jti": "j" * 65}, "jti 65 characters (max 64)"),
    ({"jti": "jti+0123456789abcdef"}, "jti with '+'"),
    ({"jti": "jti/0123456789abcdef"}, "jti with '/'"),
    ({"jti": "jti-0123456789abcde="}, "jti with padding"),
    ({"jti": "jti 0123456789abcdef"}, "jti with a space"),
    ({"jti": "jti-0123456789abcdé"}, "jti with non-ASCII"),
    ({"jti": 1234567890123456}, "jti a number"),
    ({"region": "11010"}, "region 5 digits"),
    ({"region": "1101050"}, "region 7 digits"),
    ({"region": "11010a"}, "region with a letter"),
    ({"region": "١١٠١٠٥"}, "region in Arabic-Indic digits"),
    ({"region": "１１０１０５"}, "region in full-width digits"),
    ({"region": 110105}, "region a number"),
    ({"region": "110105\n"}, "region with a trailing newline"),
    ({"card": "unknown"}, "card unknown"),
    ({"card": "MI-VOUCHER"}, "card in upper case"),
    ({"card": 1}, "card a number"),
    ({"iat": "2026-11-22T14:00:00"}, "iat without time zone"),
    ({"exp": "2026-11-22T14:01:00"}, "exp without time zone"),
    ({"iat": "2026-11-22 14:00:00Z"}, "iat with a space"),
    ({"iat": "1999-11-22T14:00:00Z"}, "iat in 1999"),
    ({"exp": "2300-11-22T14:01:00Z"}, "exp in 2300"),
    ({"iat": "2026-13-22T14:00:00Z"}, "iat month 13"),
    ({"exp": "2026-11-22T14:00:60Z"}, "exp leap second :60"),
    ({"iat": NOW}, "iat a number instead of a string"),
    ({"exp": NOW + 60}, "exp a number instead of a string"),
    ({"iat": int(NOW)}, "iat an integer"),
    ({"nbf": "2026-11-22T14:00:00"}, "nbf without time zone"),
    ({"nbf": NOW}, "nbf a number"),
    ({"exp": rfc3339.format(NOW)}, "exp == iat"),
    ({"exp": rfc3339.format(NOW - 1)}, "exp before iat"),
]


@pytest.mark.parametrize(("overrides", "why"), BAD_CLAIMS, ids=[w for _, w in BAD_CLAIMS])
def test_bad_claim_is_invalid_claims(overrides: dict[str, Any], why: str) -> None:
    assert reason(make_token(**overrides)) == E.INVALID_CLAIMS


def _payload(text: str | bytes) -> bytes:
    """The default claims with ``text`` (raw JSON members) appended inside the object."""
    raw = text if isinstance(text, bytes) else text.encode()
    return orjson.dumps(claims())[:-1] + b"," + raw + b"}"


BAD_PAYLOADS: list[tuple[bytes, str]] = [
    (b"[]", "array"),
    (b'"claims"', "string"),
    (b"null", "null"),
    (b"", "empty"),
    (b"not json", "not JSON"),
    (orjson.dumps(claims()) + b"x", "trailing data"),
    (_payload('"iss":"nhsa"'), "duplicate iss"),
    (_payload('"card":"ss-ecard"'), "duplicate card with another value"),
    (_payload('"exp":"2026-11-22T14:04:00Z"'), "duplicate exp"),
    (_payload('"\\u0069ss":"nhsa"'), "duplicate iss, \\u-escaped spelling"),
    (_payload('"\\u0073\\u0075\\u0062":"other"'), "duplicate sub, fully escaped"),
    (
        orjson.dumps(claims(iss=MISSING))[:-1] + b',"\\u0069ss":"nhsa","i\\u0073s":"nhsa"}',
        "two spellings of iss that differ only by their escapes",
    ),
    (_payload('"x":' + "[" * 8 + "]" * 8), "nested 9 deep (limit 8)"),
    (_payload('"x":' + '{"y":' * 8 + "1" + "}" * 8), "objects nested 9 deep"),
    (_payload(",".join(f'"k{i}":1' for i in range(58))), "65 keys (limit 64)"),
    (_payload(b'"x":"\xff"'), "invalid UTF-8"),
    (_payload(b'"x":"\xed\xa0\x80"'), "UTF-8 encoded surrogate"),
    (_payload('"x":"\\ud800"'), "lone surrogate escape"),
    (_payload('"x":NaN'), "NaN"),
]


@pytest.mark.parametrize(("payload", "why"), BAD_PAYLOADS, ids=[w for _, w in BAD_PAYLOADS])
def test_bad_payload_is_invalid_claims(payload: bytes, why: str) -> None:
    # Signed with a trusted key: the signature is fine, the content is not.
    assert reason(make_token(payload=payload)) == E.INVALID_CLAIMS


def test_payload_at_the_limits_is_accepted() -> None:
    assert reason(make_token(payload=_payload('"x":' + "[" * 7 + "]" * 7))) == "ok"  # depth 8
    keys = ",".join(f'"k{i}":1' for i in range(57))  # 7 claims + 57 = 64 keys
    assert reason(make_token(payload=_payload(keys))) == "ok"


def test_unknown_extra_claims_are_ignored() -> None:
    assert reason(make_token(aud="anyone", note={"a": [1, 2]})) == "ok"


# --- time ----------------------------------------------------------------------------------


def test_expired() -> None:
    assert reason(make_token(), now=NOW + 60 + 30) == E.EXPIRED


def test_not_yet_valid() -> None:
    assert reason(make_token(nbf=rfc3339.format(NOW + 6))) == E.NOT_YET_VALID


def test_issued_in_future() -> None:
    token = make_token(iat=rfc3339.format(NOW + 6), exp=rfc3339.format(NOW + 66))
    assert reason(token) == E.ISSUED_IN_FUTURE


def test_lifetime_too_long() -> None:
    assert reason(make_token(exp=rfc3339.format(NOW + 301))) == E.LIFETIME_TOO_LONG


# --- card_not_allowed --------------------------------------------------------------------


def test_key_for_mi_voucher_signing_ss_ecard_is_card_not_allowed() -> None:
    assert reason(make_token(card="ss-ecard")) == E.CARD_NOT_ALLOWED


def test_key_for_ss_ecard_signing_mi_voucher_is_card_not_allowed() -> None:
    token = make_token(signer=MOHRSS, iss="mohrss", card="mi-voucher")
    assert reason(token) == E.CARD_NOT_ALLOWED
    assert reason(make_token(signer=MOHRSS, iss="mohrss", card="ss-ecard")) == "ok"


@pytest.mark.parametrize("iss", ["mohrss", "NHSA", "nhsa ", "other"])
def test_iss_other_than_the_keys_issuer_is_card_not_allowed(iss: str) -> None:
    assert reason(make_token(iss=iss)) == E.CARD_NOT_ALLOWED


# --- trust_list_expired ------------------------------------------------------------------


def test_expired_trust_list_is_trust_list_expired() -> None:
    at = TRUST_EXP
    token = make_token(iat=rfc3339.format(at), exp=rfc3339.format(at + 60))
    assert reason(token, now=at - 1) == "ok"
    assert reason(token, now=at) == E.TRUST_LIST_EXPIRED


def test_trust_list_expiry_comes_before_the_key_lookup() -> None:
    # Without a fresh list no key can be trusted, known or not.
    stale = trust.TrustList(1, NOW - 100, NOW - 1, TRUST.keys)
    assert reason(make_token(), trust_list=stale) == E.TRUST_LIST_EXPIRED
    assert reason(make_token(signer=STRANGER), trust_list=stale) == E.TRUST_LIST_EXPIRED


# --- footer ----------------------------------------------------------------------------------


def test_missing_footer_is_malformed() -> None:
    token = paseto.sign(NHSA.secret, orjson.dumps(claims()))
    assert token.count(".") == 2
    assert reason(token) == E.MALFORMED


BAD_FOOTERS: list[tuple[bytes, str]] = [
    (b"kid", "not JSON"),
    (NHSA.kid.encode(), "a bare kid"),
    (b'"' + NHSA.kid.encode() + b'"', "a JSON string"),
    (b"[" + orjson.dumps(NHSA.kid) + b"]", "a JSON array"),
    (b"{}", "no kid"),
    (b'{"kid":null}', "kid null"),
    (b'{"kid":1}', "kid a number"),
    (b'{"kid":["' + NHSA.kid.encode() + b'"]}', "kid a list"),
    (b'{"kid":{"id":"' + NHSA.kid.encode() + b'"}}', "kid an object"),
    (
        orjson.dumps({"kid": NHSA.kid, "pk": paserk.public_to_paserk(NHSA.public)}),
        "extra key carrying a public key",
    ),
    (orjson.dumps({"kid": NHSA.kid, "jwk": {"kty": "OKP", "crv": "Ed25519"}}), "extra jwk"),
    (orjson.dumps({"kid": NHSA.kid, "wpk": "k4.local-wrap.pie.x"}), "extra wpk"),
    (b'{"kid":"' + NHSA.kid.encode() + b'","kid":"' + NHSA.kid.encode() + b'"}', "kid twice"),
    (
        b'{"kid":"' + STRANGER.kid.encode() + b'","kid":"' + NHSA.kid.encode() + b'"}',
        "kid twice, last one trusted",
    ),
    (b'{"\\u006bid":"' + NHSA.kid.encode() + b'","kid":"x"}', "kid twice, one escaped"),
    (b'{"jwk":{"kty":"OKP"}}', "only a jwk"),
    (b'{"kid":"' + NHSA.kid.encode() + b'"}\xff', "trailing invalid UTF-8"),
]


@pytest.mark.parametrize(("footer", "why"), BAD_FOOTERS, ids=[w for _, w in BAD_FOOTERS])
def test_bad_footer_is_malformed(footer: bytes, why: str) -> None:
    assert reason(make_token(footer=footer)) == E.MALFORMED


def test_footer_with_whitespace_is_still_a_footer() -> None:
    assert reason(make_token(footer=b' { "kid" : "' + NHSA.kid.encode() + b'" } ')) == "ok"


def _footer_of_size(size: int) -> bytes:
    footer = b'{"kid":"' + NHSA.kid.encode() + b'"}'
    return footer + b" " * (size - len(footer))


def test_footer_of_exactly_max_footer_bytes_is_accepted() -> None:
    footer = _footer_of_size(ClaimPolicy().max_footer_bytes)
    assert reason(make_token(footer=footer)) == "ok"


def test_footer_over_max_footer_bytes_is_malformed_before_decoding(no_decoding: None) -> None:
    footer = _footer_of_size(ClaimPolicy().max_footer_bytes + 1)
    assert reason(make_token(footer=footer)) == E.MALFORMED


# --- order of checks --------------------------------------------------------------------------


def test_signature_is_checked_before_claims() -> None:
    # A forged token with bad claims says bad_signature, not what is wrong with its claims.
    forged = make_token(signer=STRANGER, footer=footer_for(NHSA), payload=b"[]")
    assert reason(forged) == E.BAD_SIGNATURE


def test_key_is_chosen_by_kid_only_among_trusted_keys() -> None:
    # With NHSA alone in the list, MOHRSS's genuine token is unknown_key: the footer kid picks
    # the key, no other trusted key is tried.
    token = make_token(signer=MOHRSS, iss="mohrss", card="ss-ecard")
    assert reason(token) == "ok"
    only_nhsa = {kid: key for kid, key in TRUST.keys.items() if kid == NHSA.kid}
    small = trust.TrustList(1, NOW - 1, NOW + 100, only_nhsa)
    assert reason(token, trust_list=small) == E.UNKNOWN_KEY
