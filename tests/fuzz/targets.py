"""The two fuzz targets, as plain functions: bytes in, an AssertionError when a property breaks.

``check_core(data)``: the token core, bytes → verdict. ``data`` is tried twice: as a token
(``TokenVerifier.verify`` must return a ``VerifiedToken`` or raise ``TokenError`` with a
documented reason, and give the same verdict for the same text as ``str``), and as the claims
of a token genuinely signed by a trusted issuer key (a fuzzer cannot forge Ed25519, so this is
how it reaches the claim parser and the time rules).

``check_http1(data)``: the fast path's framing, bytes → request or hand-off.
``http1.parse(data, MAX_BODY)`` must return ``Parsed``, ``HANDOFF`` or ``None`` and never
raise, and a ``Parsed`` must be what the bytes say (see :func:`_consistent`).

``tests/fuzz/fuzz.py`` drives both under atheris; ``test_fuzz_corpus.py`` replays the
committed corpus and the findings through the same functions.
"""

from __future__ import annotations

import re

from helpers_core import NHSA, NOW, TRUST, footer_for

from verifier import paseto
from verifier.core import TokenVerifier, VerifiedToken
from verifier.errors import TOKEN_REASONS, TokenError
from verifier.policy import ClaimPolicy
from verifier.service import http1

POLICY = ClaimPolicy()
VERIFIER = TokenVerifier(TRUST, POLICY)
MAX_BODY = 8192
_FOOTER = footer_for(NHSA)


def verdict(token: str | bytes) -> str | VerifiedToken:
    """A VerifiedToken or the TokenError's reason; any other exception propagates."""
    try:
        tok = VERIFIER.verify(token, NOW)
    except TokenError as err:
        assert err.reason in TOKEN_REASONS, f"undocumented reason {err.reason!r}"
        return err.reason
    assert isinstance(tok, VerifiedToken), f"verify returned {type(tok).__name__}"
    return tok


def _fresh(tok: VerifiedToken) -> None:
    """What an accepted token must satisfy at NOW under POLICY."""
    assert tok.iat <= NOW + POLICY.future_leeway, tok
    assert NOW <= tok.exp + POLICY.exp_leeway, tok
    assert tok.nbf is None or tok.nbf <= NOW + POLICY.future_leeway, tok
    assert tok.exp - tok.iat <= POLICY.max_lifetime, tok


def check_core(data: bytes) -> None:
    as_bytes = verdict(data)
    if data.isascii():
        assert verdict(data.decode("ascii")) == as_bytes, "bytes and str verdicts differ"
    if isinstance(as_bytes, VerifiedToken):
        _fresh(as_bytes)
    signed = verdict(paseto.sign(NHSA.secret, data, _FOOTER, POLICY.implicit_assertion))
    if isinstance(signed, VerifiedToken):
        _fresh(signed)
        assert signed.kid == NHSA.kid and signed.iss == "nhsa", signed


_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*")


def _lines(head: bytes) -> dict[bytes, list[bytes]]:
    """The header lines of a head, by lower-case name: a strict reading, one field a line."""
    found: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        m = _LINE.fullmatch(line)
        if m is not None:
            found.setdefault(m[1].lower(), []).append(m[2])
    return found


def _consistent(data: bytes, got: http1.Parsed) -> None:
    """A Parsed is what the bytes say: the request line, one head, the declared body, and each
    field it reports spelled on exactly one line of the head."""
    assert data.startswith(http1.REQUEST_LINE)
    head_end = data.find(b"\r\n\r\n") + 4
    assert head_end >= len(http1.REQUEST_LINE) + 2
    head = data[:head_end]
    assert head.isascii()
    assert got.end == head_end + len(got.body) <= len(data), (got.end, head_end, len(got.body))
    assert data[head_end : got.end] == got.body
    assert len(got.body) <= MAX_BODY
    lines = _lines(head)
    assert b"host" in lines, "parsed without a Host line"
    declared = lines.get(b"content-length", [])
    assert len(declared) == 1 and declared[0].isdigit(), ("Content-Length", declared)
    assert int(declared[0]) == len(got.body), ("Content-Length", declared, len(got.body))
    reported = ((b"authorization", got.authorization), (b"idempotency-key", got.idempotency_key))
    for name, value in reported:
        if value is None:
            assert name not in lines, f"{name!r} in the head but not parsed"
        else:
            assert lines.get(name) == [value.encode()], (name, lines.get(name), value)
    assert lines.get(b"content-type", [b""])[0].lower().startswith(got.ctype.encode())
    assert got.close == (lines.get(b"connection", [b""])[0].lower() == b"close")
    assert not {b"transfer-encoding", b"expect", b"upgrade"} & set(lines)


def check_http1(data: bytes) -> None:
    got = http1.parse(data, MAX_BODY)
    if got is None or got is http1.HANDOFF:
        return
    assert isinstance(got, http1.Parsed), f"parse returned {type(got).__name__}"
    _consistent(data, got)
    # What follows the request does not change it, and one byte less is "need more".
    alone = http1.parse(data[: got.end], MAX_BODY)
    assert isinstance(alone, http1.Parsed) and alone.end == got.end and alone.body == got.body
    assert http1.parse(data[: got.end - 1], MAX_BODY) is None, "a prefix was handed off"
