"""One token, one spelling: every non-canonical base64url or segment layout of a v4.public token
is rejected, by ``paseto.verify`` (PasetoError) and by ``core.verify`` (reason ``malformed``).

Each bad spelling below is built from a genuinely signed token, and where a lenient decoder
would read it as the very same bytes, the test shows that too: these are alternative spellings
of a valid token, not random garbage.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import orjson
import pytest
from helpers_core import B64URL_ALPHABET, NHSA, claims, make_token, reason, verify
from hypothesis import given
from hypothesis import strategies as st

from verifier import b64url, paseto
from verifier import errors as E


def lenient_decode(text: str) -> bytes:
    """What a forgiving decoder makes of ``text``: pads, ignores trailing bits."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_with_tails(body_rem: int, footer_rem: int) -> str:
    """A valid token whose encoded body / footer lengths are ≡ body_rem / footer_rem (mod 4),
    so their last characters carry 4 (rem 2) or 2 (rem 3) unused bits."""
    for pad in range(3):
        payload = orjson.dumps(claims(sub="holder-" + "x" * (4 + pad)))
        raw_rem = {2: 1, 3: 2}[body_rem]
        if (len(payload) + paseto.SIG_BYTES) % 3 == raw_rem:
            break
    kid = orjson.dumps(NHSA.kid)
    for spaces in range(3):
        footer = b'{"kid":' + b" " * spaces + kid + b"}"
        if len(footer) % 3 == {2: 1, 3: 2}[footer_rem]:
            break
    token = make_token(payload=payload, footer=footer)
    body_b64, footer_b64 = token[len("v4.public.") :].split(".")
    assert (len(body_b64) % 4, len(footer_b64) % 4) == (body_rem, footer_rem)
    return token


TAILS = [(2, 2), (2, 3), (3, 2), (3, 3)]


def parts(token: str) -> tuple[str, str]:
    body, footer = token[len("v4.public.") :].split(".")
    return body, footer


def dirty_last_char(segment: str) -> str:
    """The same bytes with a non-zero unused bit in the last character."""
    index = B64URL_ALPHABET.index(segment[-1])
    return segment[:-1] + B64URL_ALPHABET[index | 1]


def assert_rejected_everywhere(bad: str) -> None:
    with pytest.raises(paseto.PasetoError):
        paseto.verify(bad, NHSA.public)
    assert reason(bad) == E.MALFORMED


@pytest.mark.parametrize(("body_rem", "footer_rem"), TAILS)
def test_base_tokens_are_valid(body_rem: int, footer_rem: int) -> None:
    # The precondition of every test below: the unaltered token verifies in both layers.
    token = token_with_tails(body_rem, footer_rem)
    paseto.verify(token, NHSA.public)
    assert verify(token).sub.startswith("holder-")


SPELLINGS: list[tuple[str, Callable[[str, str], str]]] = [
    # "=" padding, as standard base64 would write it
    ("body padded", lambda b, f: f"{b}{'=' * (-len(b) % 4)}.{f}"),
    ("footer padded", lambda b, f: f"{b}.{f}{'=' * (-len(f) % 4)}"),
    # one "=" too many is still padding
    ("body one '='", lambda b, f: f"{b}=.{f}"),
    ("footer one '='", lambda b, f: f"{b}.{f}="),
    # non-zero unused bits in the last character
    ("body trailing bits", lambda b, f: f"{dirty_last_char(b)}.{f}"),
    ("footer trailing bits", lambda b, f: f"{b}.{dirty_last_char(f)}"),
]


@pytest.mark.parametrize(("body_rem", "footer_rem"), TAILS)
@pytest.mark.parametrize(("name", "respell"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_alternative_spelling_of_same_bytes_is_rejected(
    body_rem: int, footer_rem: int, name: str, respell: Callable[[str, str], str]
) -> None:
    token = token_with_tails(body_rem, footer_rem)
    body, footer = parts(token)
    bad = "v4.public." + respell(body, footer)
    bad_body, bad_footer = parts(bad)
    # A forgiving decoder reads the same bytes: this really is a second spelling.
    assert lenient_decode(bad_body.rstrip("=")) == lenient_decode(body)
    assert lenient_decode(bad_footer.rstrip("=")) == lenient_decode(footer)
    assert_rejected_everywhere(bad)


def test_standard_alphabet_spelling_is_rejected() -> None:
    # Find a token whose body holds '-' or '_', then spell it with '+' and '/'.
    for n in range(100):
        token = make_token(sub=f"holder-{n}")
        body, footer = parts(token)
        if "-" in body or "_" in body:
            break
    std_body = body.translate(str.maketrans("-_", "+/"))
    assert base64.b64decode(std_body + "=" * (-len(std_body) % 4)) == lenient_decode(body)
    assert_rejected_everywhere(f"v4.public.{std_body}.{footer}")
    std_footer = footer.translate(str.maketrans("-_", "+/"))
    if std_footer != footer:
        assert_rejected_everywhere(f"v4.public.{body}.{std_footer}")


FOREIGN_CHARS = ["+", "/", "=", " ", "\n", "\r", "\t", "\x00", "é", "\u00a0", "."]


@pytest.mark.parametrize("char", FOREIGN_CHARS, ids=[repr(c) for c in FOREIGN_CHARS])
@pytest.mark.parametrize("segment", ["body", "footer"])
@pytest.mark.parametrize("mode", ["replace", "insert", "insert4", "append"])
def test_character_outside_the_alphabet_is_rejected(char: str, segment: str, mode: str) -> None:
    token = token_with_tails(2, 3)
    body, footer = parts(token)
    target = body if segment == "body" else footer
    mid = len(target) // 2
    if mode == "replace":  # same length, one foreign character
        bad_target = target[:mid] + char + target[mid + 1 :]
    elif mode == "insert":  # a decoder that skips whitespace would see the original
        bad_target = target[:mid] + char + target[mid:]
    elif mode == "insert4":  # keeps the length ≡ mod 4, so only the character is wrong
        bad_target = target[:mid] + char * 4 + target[mid:]
    else:  # trailing junk, e.g. a newline from a scanner
        bad_target = target + char
    bad = (
        f"v4.public.{bad_target}.{footer}"
        if segment == "body"
        else f"v4.public.{body}.{bad_target}"
    )
    with pytest.raises(paseto.PasetoError):
        paseto.verify(bad.encode("utf-8"), NHSA.public)
    if bad.isascii():
        with pytest.raises(paseto.PasetoError):
            paseto.verify(bad, NHSA.public)
    assert reason(bad) == E.MALFORMED
    assert reason(bad.encode("utf-8")) == E.MALFORMED


SEGMENT_LAYOUTS: list[tuple[str, Callable[[str, str], str]]] = [
    ("empty footer segment", lambda b, f: f"v4.public.{b}."),
    ("empty footer after footer", lambda b, f: f"v4.public.{b}.{f}."),
    ("extra segment", lambda b, f: f"v4.public.{b}.{f}.{f}"),
    ("empty middle segment", lambda b, f: f"v4.public.{b}..{f}"),
    ("empty body", lambda b, f: f"v4.public..{f}"),
    ("no body at all", lambda b, f: "v4.public."),
    ("double dot after header", lambda b, f: f"v4.public..{b}.{f}"),
    ("body split in two", lambda b, f: f"v4.public.{b[:20]}.{b[20:]}.{f}"),
]


@pytest.mark.parametrize(("name", "layout"), SEGMENT_LAYOUTS, ids=[s[0] for s in SEGMENT_LAYOUTS])
def test_wrong_segment_layout_is_rejected(name: str, layout: Callable[[str, str], str]) -> None:
    body, footer = parts(make_token())
    assert_rejected_everywhere(layout(body, footer))


def test_empty_footer_segment_without_footer_is_rejected_by_paseto_layer() -> None:
    # The footer-less token is fine at the PASETO layer; a trailing "." is not.
    token = paseto.sign(NHSA.secret, b"message")
    assert paseto.verify(token, NHSA.public) == (b"message", b"")
    with pytest.raises(paseto.PasetoError):
        paseto.verify(token + ".", NHSA.public)


def _alternative_spellings(segment: str) -> list[str]:
    out = [segment + "=" * n for n in (1, 2, 3, 4)]
    if len(segment) % 4:
        index = B64URL_ALPHABET.index(segment[-1])
        unused = 0x0F if len(segment) % 4 == 2 else 0x03
        out += [segment[:-1] + B64URL_ALPHABET[index | bit] for bit in range(1, unused + 1)]
    std = segment.translate(str.maketrans("-_", "+/"))
    if std != segment:
        out.append(std)
    return out


@given(message=st.binary(max_size=80), footer=st.binary(min_size=1, max_size=40))
def test_property_no_second_spelling_of_any_token(message: bytes, footer: bytes) -> None:
    token = paseto.sign(NHSA.secret, message, footer)
    assert paseto.verify(token, NHSA.public) == (message, footer)
    body, foot = parts(token)
    for alt in _alternative_spellings(body):
        with pytest.raises(paseto.PasetoError):
            paseto.verify(f"v4.public.{alt}.{foot}", NHSA.public)
    for alt in _alternative_spellings(foot):
        with pytest.raises(paseto.PasetoError):
            paseto.verify(f"v4.public.{body}.{alt}", NHSA.public)


def test_b64url_helper_agrees_with_the_token() -> None:
    # Sanity for the helpers above: the token body is b64url(message || signature).
    token = make_token()
    body, footer = parts(token)
    assert b64url.encode(lenient_decode(body)).decode() == body
    assert lenient_decode(footer) == orjson.dumps({"kid": NHSA.kid})
