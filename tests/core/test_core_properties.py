"""Property tests at a fixed ``now``: sign→verify round trips, and no altered token survives
(any single-byte change, any truncation, any extension raises TokenError)."""

from __future__ import annotations

import pytest
from helpers_core import (
    B64URL_ALPHABET,
    MOHRSS,
    NHSA,
    NOW,
    join_token,
    make_token,
    split_token,
    verify,
)
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from verifier import core, paserk, paseto, rfc3339, tokens
from verifier.errors import TokenError
from verifier.policy import ClaimPolicy

SIGNERS = [(NHSA, "nhsa", "mi-voucher"), (MOHRSS, "mohrss", "ss-ecard")]

subs = st.text(alphabet=B64URL_ALPHABET, min_size=1, max_size=64)
jtis = st.text(alphabet=B64URL_ALPHABET, min_size=16, max_size=64)
regions = st.text(alphabet="0123456789", min_size=6, max_size=6)


@settings(max_examples=300)
@given(
    signer=st.sampled_from(SIGNERS),
    sub=subs,
    jti=jtis,
    region=regions,
    ttl=st.integers(min_value=1, max_value=300),
    data=st.data(),
)
def test_property_mint_then_verify_round_trips(
    signer: tuple[paserk.KeyPair, str, str],
    sub: str,
    jti: str,
    region: str,
    ttl: int,
    data: st.DataObject,
) -> None:
    key, iss, card = signer
    # Any iat for which the token is valid at NOW: iat <= NOW + 5 and NOW < iat + ttl + 30.
    iat = NOW + data.draw(st.integers(min_value=-(ttl + 29), max_value=5), label="iat - now")
    nbf = data.draw(st.none() | st.integers(min_value=-600, max_value=5), label="nbf - now")
    token = tokens.mint(
        key.secret,
        iss=iss,
        sub=sub,
        card=card,
        region=region,
        iat=iat,
        ttl=ttl,
        jti=jti,
        nbf=None if nbf is None else NOW + nbf,
    )
    got = verify(token)
    assert got == core.VerifiedToken(
        kid=key.kid,
        iss=iss,
        sub=sub,
        jti=jti,
        card=card,
        region=region,
        iat=iat,
        exp=iat + ttl,
        nbf=None if nbf is None else NOW + nbf,
    )


@given(
    message=st.binary(max_size=300),
    footer=st.binary(max_size=100),
    implicit=st.binary(max_size=50),
)
def test_property_paseto_sign_then_verify_round_trips(
    message: bytes, footer: bytes, implicit: bytes
) -> None:
    token = paseto.sign(NHSA.secret, message, footer, implicit)
    assert paseto.verify(token, NHSA.public, implicit) == (message, footer)
    with pytest.raises(paseto.PasetoError):
        paseto.verify(token, MOHRSS.public, implicit)
    with pytest.raises(paseto.PasetoError):
        paseto.verify(token, NHSA.public, implicit + b"\x00")


# --- mutations ---------------------------------------------------------------------------

TOKEN = make_token(nbf=rfc3339.format(NOW - 1)).encode("ascii")


def test_fixture_token_is_valid() -> None:
    assert verify(TOKEN).sub == "holder-0001"


def assert_rejected(token: str | bytes) -> None:
    with pytest.raises(TokenError):
        verify(token)


@pytest.mark.slow
def test_every_single_byte_change_is_rejected() -> None:
    # Every position, every one of the 255 other byte values: about 100 000 tokens.
    accepted = []
    for i, original in enumerate(TOKEN):
        for b in range(256):
            if b == original:
                continue
            mutated = TOKEN[:i] + bytes([b]) + TOKEN[i + 1 :]
            try:
                verify(mutated)
            except TokenError:
                continue
            accepted.append((i, b))
    assert accepted == []


OTHER = make_token(signer=MOHRSS, iss="mohrss", card="ss-ecard").encode("ascii")


@given(
    position=st.integers(min_value=0, max_value=len(OTHER) - 1),
    byte=st.integers(min_value=0, max_value=255),
)
def test_property_single_byte_change_is_rejected(position: int, byte: int) -> None:
    assume(byte != OTHER[position])
    mutated = OTHER[:position] + bytes([byte]) + OTHER[position + 1 :]
    assert_rejected(mutated)
    if byte < 0x80:  # the same token as text
        with pytest.raises(TokenError):
            verify(mutated.decode("ascii"))


def test_every_change_of_a_decoded_byte_is_rejected() -> None:
    # Below the encoding: change one byte of message, signature or footer and re-encode it
    # canonically. Only the signature can catch these.
    body, footer = split_token(TOKEN.decode())
    for i in range(len(body)):
        for delta in (0x01, 0x80, 0xFF):
            changed = bytearray(body)
            changed[i] ^= delta
            assert_rejected(join_token(bytes(changed), footer).encode())
    for i in range(len(footer)):
        for delta in (0x01, 0x20, 0x80):
            changed = bytearray(footer)
            changed[i] ^= delta
            assert_rejected(join_token(body, bytes(changed)).encode())


def test_every_truncation_is_rejected() -> None:
    for n in range(len(TOKEN)):
        assert_rejected(TOKEN[:n])
        assert_rejected(TOKEN[len(TOKEN) - n :])  # and every cut from the front


def test_every_single_appended_byte_is_rejected() -> None:
    for b in range(256):
        assert_rejected(TOKEN + bytes([b]))


@given(st.binary(min_size=1, max_size=64))
@example(b".")
@example(b"=")
@example(b"==")
@example(b"\n")
@example(b"AAAA")
@example(b".e30")  # a second footer "{}"
def test_property_any_extension_is_rejected(suffix: bytes) -> None:
    assert_rejected(TOKEN + suffix)


@given(st.text(alphabet=B64URL_ALPHABET + ".", min_size=1, max_size=16), st.booleans())
def test_property_extension_with_alphabet_characters_is_rejected(suffix: str, front: bool) -> None:
    # Appending (or prepending) base64url characters keeps the token ASCII and often decodable.
    token = TOKEN.decode()
    assert_rejected((suffix + token) if front else (token + suffix))


@given(st.data())
def test_property_deleting_or_inserting_one_byte_is_rejected(data: st.DataObject) -> None:
    i = data.draw(st.integers(min_value=0, max_value=len(TOKEN) - 1), label="position")
    assert_rejected(TOKEN[:i] + TOKEN[i + 1 :])
    b = data.draw(st.integers(min_value=0, max_value=255), label="byte")
    assert_rejected(TOKEN[:i] + bytes([b]) + TOKEN[i:])


def test_mutations_are_rejected_under_every_policy_edge() -> None:
    # The widest leeways must not turn any rejection into acceptance.
    wide = ClaimPolicy(exp_leeway=300, future_leeway=60, max_lifetime=3600)
    for i in range(0, len(TOKEN), 7):
        mutated = TOKEN[:i] + bytes([TOKEN[i] ^ 0x01]) + TOKEN[i + 1 :]
        with pytest.raises(TokenError):
            verify(mutated, policy=wide)
