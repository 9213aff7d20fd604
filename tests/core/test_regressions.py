"""Regressions: one test per bug found in the token core, named after the bug.

Each docstring says where the bug is and what went wrong. A test here is never removed; if the
behaviour is changed on purpose, change the test and say why.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers_core import NHSA, TRUST, make_token, reason

from verifier import errors as E
from verifier import paserk, paseto, rfc3339, trust
from verifier.errors import KeyFormatError, TrustListError
from verifier.policy import ClaimPolicy


@pytest.mark.parametrize("card", [["mi-voucher"], {"mi-voucher": 1}, [], {}])
def test_card_claim_of_unhashable_type_is_invalid_claims(card: Any) -> None:
    """core._check_claims tested ``card not in _CARDS`` (a frozenset) on any JSON value: a
    signed payload with ``"card": [...]`` or ``{...}`` raised TypeError (unhashable type)
    out of core.verify instead of TokenError(invalid_claims)."""
    assert reason(make_token(card=card)) == E.INVALID_CLAIMS


@pytest.mark.parametrize("public", [None, 5, ["k4.public.x"], {"k": "v"}, True])
def test_issuer_key_public_that_is_not_a_string_is_a_trust_list_error(
    public: Any, tmp_path: Path
) -> None:
    """paserk.public_from_paserk / secret_from_paserk called ``text.strip()`` before checking
    that ``text`` is a string, so ``"public": null`` (or a number, list…) in a trust list or its
    source file raised AttributeError instead of TrustListError / KeyFormatError."""
    entry = {"public": public, "issuer": "nhsa", "cards": ["mi-voucher"]}
    with pytest.raises(TrustListError):
        trust.parse_key_entry(entry, "keys[0]")
    source = tmp_path / "keys.json"
    source.write_bytes(orjson.dumps({"keys": [entry]}))
    with pytest.raises(TrustListError):
        trust.load_source(source)
    with pytest.raises(KeyFormatError):
        paserk.public_from_paserk(public)
    with pytest.raises(KeyFormatError):
        paserk.secret_from_paserk(public)


def _key_whose_public_ends_in_zero() -> paserk.KeyPair:
    for n in range(10_000):
        kp = paserk.from_seed(n.to_bytes(32, "big"))
        if kp.public[-1] == 0:
            return kp
    raise AssertionError("no such key")


def test_paseto_verify_refuses_a_public_key_of_the_wrong_length() -> None:
    """paseto.ed25519_verify passed ``pk`` to libsodium's crypto_sign_open without checking its
    length; libsodium reads 32 bytes regardless. A 31-byte key was read with the byte after the
    buffer (CPython's NUL terminator), so the 31-byte prefix of a key ending in 0x00 verified the
    key's tokens; a 33-byte key verified with its first 32 bytes. It must be refused."""
    kp = _key_whose_public_ends_in_zero()
    token = paseto.sign(kp.secret, b"message")
    assert paseto.verify(token, kp.public) == (b"message", b"")
    for wrong in (kp.public[:31], kp.public + b"\x00", kp.public + b"x", b""):
        with pytest.raises(ValueError):
            paseto.verify(token, wrong)


def test_paseto_verify_of_non_ascii_text_raises_paseto_error() -> None:
    """paseto.verify documents "return (message, footer) or raise PasetoError", but a ``str``
    token with a non-ASCII character raised UnicodeEncodeError from ``token.encode("ascii")``
    (trust.load had to catch it separately)."""
    token = paseto.sign(NHSA.secret, b"message")
    with pytest.raises(paseto.PasetoError):
        paseto.verify(token[:20] + "é" + token[21:], NHSA.public)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22T14:00:00+00:60",  # == 13:00:00Z, a second spelling of "+01:00"
        "2026-11-22T14:00:00+05:99",
        "2026-11-22T14:00:00-00:60",
    ],
)
def test_rfc3339_offset_minutes_above_59_are_rejected(text: str) -> None:
    """rfc3339.parse checks the offset's shape with ``[0-9]{2}:[0-9]{2}`` and leaves the
    ranges to datetime.fromisoformat, which accepts offset minutes 60-99. RFC 3339 limits
    time-minute to 00-59 (and these spell the same instant as a valid offset)."""
    with pytest.raises(ValueError):
        rfc3339.parse(text)


def test_lifetime_of_exactly_max_lifetime_with_microseconds_is_accepted_in_2038() -> None:
    """core._check_claims compares ``exp - iat > policy.max_lifetime`` on float timestamps.
    When iat and exp carry microseconds and straddle 2**31 s (2038-01-19T03:14:08Z), the
    rounding of the two floats differs and a lifetime of exactly 300 s computes as
    300.0000002384186: the token was rejected as lifetime_too_long. (Comparing in whole
    microseconds, or rounding the difference to them, gives the documented rule.)"""
    iat = "2038-01-19T03:09:08.001994Z"
    exp = "2038-01-19T03:14:08.001994Z"  # exactly 300 s later
    now = rfc3339.parse(iat)
    assert datetime.fromisoformat(exp) - datetime.fromisoformat(iat) == timedelta(seconds=300)
    trust_2038 = trust.TrustList(1, now - 60, now + 3600, TRUST.keys)
    assert reason(make_token(iat=iat, exp=exp), now=now, trust_list=trust_2038) == "ok"


def test_footer_cache_does_not_bypass_the_policys_footer_limit() -> None:
    """core.verify caches parsed footers by their encoded bytes and, on a hit, skips
    _parse_footer and with it the ``max_footer_b64`` check. Once a long footer was accepted
    under a policy with a larger max_footer_bytes, the same footer passed a verifier whose
    policy forbids it: the verdict depended on earlier calls, not on (token, trust, policy,
    now)."""
    footer = b'{"kid":"' + NHSA.kid.encode() + b'"}' + b" " * 700  # > 512, unique to this test
    token = make_token(footer=footer)
    assert reason(token) == E.MALFORMED
    assert reason(token, policy=ClaimPolicy(max_footer_bytes=1024)) == "ok"
    assert reason(token) == E.MALFORMED


def test_nbf_null_is_invalid_claims() -> None:
    """core._check_claims read ``nbf`` with ``.get``, so ``"nbf": null`` passed as if absent;
    a present claim must be a valid RFC 3339 time."""
    assert reason(make_token(nbf=None)) == E.INVALID_CLAIMS


def test_trust_list_same_version_with_other_keys_is_refused() -> None:
    """trust.load accepted a second list with the loaded version number but other keys, so two
    different lists could claim to be "version N"."""
    from helpers_core import NOW, ROOT, issuer_keys, key_entry, signed_trust_list

    current = trust.load(signed_trust_list(), ROOT.public, NOW)
    other = issuer_keys([key_entry(NHSA, "nhsa", ["mi-voucher", "ss-ecard"])])
    with pytest.raises(TrustListError, match="bump the version"):
        trust.load(signed_trust_list(other, version=current.version), ROOT.public, NOW, current)


def test_trust_list_source_with_duplicate_keys_is_refused(tmp_path: Path) -> None:
    """trust.load_source parsed JSON with plain orjson, which keeps the last of duplicate keys
    silently: a source file saying "state" twice was read without complaint."""
    entry = f'{{"public": "{paserk.public_to_paserk(NHSA.public)}", "issuer": "nhsa", "cards": ["mi-voucher"], "state": "revoked", "state": "active"}}'
    src = tmp_path / "keys.json"
    src.write_text(f'{{"keys": [{entry}]}}')
    with pytest.raises(TrustListError):
        trust.load_source(src)
