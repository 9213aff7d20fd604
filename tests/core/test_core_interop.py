"""Interoperability with pyseto, an independent PASETO/PASERK implementation, both ways."""

from __future__ import annotations

import json

import orjson
import pyseto
import pytest
from helpers_core import MOHRSS, NHSA, NOW, claims, make_token, reason, verify
from pyseto import Key

from verifier import errors as E
from verifier import paserk, paseto, tokens
from verifier.policy import ClaimPolicy

IMPLICIT = b"insurance-qr-verifier/test"


def pyseto_secret(kp: paserk.KeyPair) -> pyseto.KeyInterface:
    return Key.from_paserk(paserk.secret_to_paserk(kp.secret))


def pyseto_public(kp: paserk.KeyPair) -> pyseto.KeyInterface:
    return Key.from_paserk(paserk.public_to_paserk(kp.public))


@pytest.mark.parametrize("kp", [NHSA, MOHRSS], ids=["nhsa", "mohrss"])
def test_paserk_strings_and_ids_agree(kp: paserk.KeyPair) -> None:
    assert pyseto_secret(kp).to_paserk() == paserk.secret_to_paserk(kp.secret)
    assert pyseto_public(kp).to_paserk() == paserk.public_to_paserk(kp.public)
    assert pyseto_public(kp).to_paserk_id() == paserk.pid(kp.public) == kp.kid
    assert pyseto_secret(kp).to_peer_paserk_id() == kp.kid


@pytest.mark.parametrize("implicit", [b"", IMPLICIT], ids=["no-assertion", "assertion"])
def test_token_signed_by_pyseto_verifies_with_core(implicit: bytes) -> None:
    # pyseto serialises with the standard json module (spaces after ':' and ','), which our
    # strict parser must accept like any other valid JSON.
    token = pyseto.encode(
        pyseto_secret(NHSA),
        claims(),
        footer={"kid": NHSA.kid},
        implicit_assertion=implicit,
        serializer=json,
    )
    assert token.startswith(b"v4.public.")
    got = verify(token, policy=ClaimPolicy(implicit_assertion=implicit))
    assert (got.kid, got.iss, got.sub, got.card, got.iat) == (
        NHSA.kid,
        "nhsa",
        "holder-0001",
        "mi-voucher",
        NOW,
    )
    assert verify(token.decode(), policy=ClaimPolicy(implicit_assertion=implicit)) == got


def test_token_signed_by_pyseto_with_another_assertion_is_bad_signature() -> None:
    token = pyseto.encode(
        pyseto_secret(NHSA), orjson.dumps(claims()), orjson.dumps({"kid": NHSA.kid}), b"other"
    )
    assert reason(token, policy=ClaimPolicy(implicit_assertion=IMPLICIT)) == E.BAD_SIGNATURE


def test_pyseto_and_paseto_sign_give_the_same_token() -> None:
    # Ed25519 is deterministic: two implementations, same bytes in, same token out.
    payload, footer = orjson.dumps(claims()), orjson.dumps({"kid": NHSA.kid})
    ours = paseto.sign(NHSA.secret, payload, footer, IMPLICIT)
    theirs = pyseto.encode(pyseto_secret(NHSA), payload, footer, IMPLICIT)
    assert theirs.decode() == ours


@pytest.mark.parametrize("implicit", [b"", IMPLICIT], ids=["no-assertion", "assertion"])
def test_token_minted_by_us_verifies_with_pyseto(implicit: bytes) -> None:
    token = tokens.mint(
        NHSA.secret,
        iss="nhsa",
        sub="holder-0001",
        card="mi-voucher",
        region="110105",
        iat=NOW,
        ttl=120,
        jti="jti-0123456789abcdef",
        nbf=NOW - 5,
        implicit=implicit,
    )
    # No deserializer: pyseto would check "exp" against its own clock; we compare the bytes.
    decoded = pyseto.decode(pyseto_public(NHSA), token, implicit_assertion=implicit)
    assert (decoded.version, decoded.purpose) == ("v4", "public")
    assert isinstance(decoded.payload, bytes) and isinstance(decoded.footer, bytes)
    assert json.loads(decoded.footer) == {"kid": NHSA.kid}
    assert json.loads(decoded.payload) == {
        "iss": "nhsa",
        "sub": "holder-0001",
        "jti": "jti-0123456789abcdef",
        "iat": "2026-11-22T14:00:00+00:00",
        "exp": "2026-11-22T14:02:00+00:00",
        "nbf": "2026-11-22T13:59:55+00:00",
        "card": "mi-voucher",
        "region": "110105",
    }
    # The same token also passes our own verifier.
    assert verify(token, policy=ClaimPolicy(implicit_assertion=implicit)).exp == NOW + 120


def test_pyseto_rejects_our_token_under_another_assertion_or_key() -> None:
    token = make_token(implicit=IMPLICIT)
    with pytest.raises(pyseto.VerifyError):
        pyseto.decode(pyseto_public(NHSA), token, implicit_assertion=b"")
    with pytest.raises(pyseto.VerifyError):
        pyseto.decode(pyseto_public(MOHRSS), token, implicit_assertion=IMPLICIT)
