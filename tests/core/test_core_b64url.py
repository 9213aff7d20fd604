"""Strict unpadded base64url: RFC 4648 answers, round trips, and no second spelling."""

from __future__ import annotations

import base64

import pytest
from helpers_core import B64URL_ALPHABET
from hypothesis import example, given
from hypothesis import strategies as st

from verifier import b64url

RFC4648 = [
    # RFC 4648 §10 test vectors, without padding
    (b"", b""),
    (b"f", b"Zg"),
    (b"fo", b"Zm8"),
    (b"foo", b"Zm9v"),
    (b"foob", b"Zm9vYg"),
    (b"fooba", b"Zm9vYmE"),
    (b"foobar", b"Zm9vYmFy"),
    # the two URL-safe characters
    (b"\xfb\xff", b"-_8"),
    (b"\xff\xff\xff", b"____"),
    (b"\xfb\xef\xbe", b"----"),
]


@pytest.mark.parametrize(("raw", "text"), RFC4648)
def test_known_answers(raw: bytes, text: bytes) -> None:
    assert b64url.encode(raw) == text
    assert b64url.decode(text) == raw


BAD = [
    (b"A", "length ≡ 1 (mod 4) encodes nothing"),
    (b"AAAAA", "length ≡ 1 (mod 4) encodes nothing"),
    (b"Zg==", "padding"),
    (b"Zg=", "half padding"),
    (b"Zm8=", "padding on a 3-character tail"),
    (b"Zm9v====", "a whole block of padding"),
    (b"=Zm9", "leading padding"),
    (b"Zh", "non-zero trailing bits (4 unused bits)"),
    (b"Zv", "non-zero trailing bits (4 unused bits, high one)"),
    (b"Zm9", "non-zero trailing bits (2 unused bits)"),
    (b"-_9", "non-zero trailing bits after URL-safe characters"),
    (b"+/8", "standard alphabet"),
    (b"++++", "standard alphabet"),
    (b"////", "standard alphabet"),
    (b"Zm9v Yg", "space"),
    (b"Zm9v\nYmFy", "newline"),
    (b"Zm9vYmFy\n", "trailing newline"),
    (b"Zm9v\r\nYmFy", "CRLF"),
    (b"Zm9\x00", "NUL"),
    (b"Zm9v\tYg", "tab"),
    (b"Zm9v.mFy", "dot"),
    (b"Zm9v*mFy", "asterisk"),
    (b"Zm9\xc3\xa9", "non-ASCII (é in UTF-8)"),
    (b"Zm9v\xff", "a byte > 0x7f"),
    (b"Zm9v\xffYm", "a byte > 0x7f, length ≡ 3"),
]


@pytest.mark.parametrize(("text", "why"), BAD, ids=[why for _, why in BAD])
def test_non_canonical_or_foreign_input_is_rejected(text: bytes, why: str) -> None:
    with pytest.raises(ValueError):
        b64url.decode(text)


@pytest.mark.parametrize("rem", [2, 3])
def test_every_dirty_tail_is_rejected_and_exactly_one_tail_per_value_is_accepted(rem: int) -> None:
    # For a 2-char tail the last char has 4 unused bits, for 3 chars 2 unused bits: of the 64
    # possible last characters exactly 64 >> unused are accepted, one per distinct value.
    prefix = b"AAAA" + b"Q" * (rem - 1)
    accepted = {}
    for c in B64URL_ALPHABET.encode():
        text = prefix + bytes([c])
        try:
            accepted[c] = b64url.decode(text)
        except ValueError:
            assert base64.urlsafe_b64decode(text + b"=" * (4 - rem)) in accepted.values()
    unused = 4 if rem == 2 else 2
    assert len(accepted) == 64 >> unused
    assert len(set(accepted.values())) == len(accepted)


@given(st.binary(max_size=200))
@example(b"")
@example(b"\xfb\xff\xbf")
def test_round_trip(raw: bytes) -> None:
    text = b64url.encode(raw)
    assert b64url.decode(text) == raw
    assert set(text) <= set(B64URL_ALPHABET.encode())
    assert len(text) == (len(raw) * 4 + 2) // 3


@given(st.text(alphabet=B64URL_ALPHABET + "=+/ \n\x00é.", max_size=40))
def test_anything_accepted_is_the_canonical_spelling(text: str) -> None:
    data = text.encode("utf-8")
    try:
        raw = b64url.decode(data)
    except ValueError:
        return
    assert b64url.encode(raw) == data


@given(st.binary(min_size=1, max_size=60))
def test_standard_base64_spelling_is_rejected_when_it_differs(raw: bytes) -> None:
    std = base64.b64encode(raw)
    if std != b64url.encode(raw):  # padding or '+' '/' present
        with pytest.raises(ValueError):
            b64url.decode(std)
