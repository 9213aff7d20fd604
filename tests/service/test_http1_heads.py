"""The fast path's memory of complete heads (verifier/service/http1.py): a head met before is
not parsed again, and what it says is exactly what parsing it says."""

from __future__ import annotations

import httptools
import pytest

from verifier.service import http1
from verifier.service.http1 import HANDOFF, Parsed, parse


def request(body: bytes, *headers: str) -> bytes:
    lines = ["POST /v1/verify HTTP/1.1", "Host: x", *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
def parsers(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every llhttp parser made, from a clean memory of heads."""
    made: list[object] = []
    real = httptools.HttpRequestParser

    def counting(protocol: object) -> object:
        made.append(protocol)
        return real(protocol)

    monkeypatch.setattr(http1.httptools, "HttpRequestParser", counting)
    monkeypatch.setattr(http1, "_SEEN", {})
    return made


def test_a_head_met_before_is_not_parsed_again(parsers: list[object]) -> None:
    raw = request(b"v4.public.AAAA", "Authorization: Bearer s-1.a", "Content-Type: text/plain")
    first, second = parse(raw, 8192), parse(raw + raw, 8192)
    assert isinstance(first, Parsed) and isinstance(second, Parsed)
    assert len(parsers) == 1
    assert (second.end, second.body, second.authorization, second.ctype, second.close) == (
        len(raw),
        b"v4.public.AAAA",
        "Bearer s-1.a",
        "text/plain",
        False,
    )


def test_one_byte_of_difference_is_a_new_head(parsers: list[object]) -> None:
    a = parse(request(b"{}", "Authorization: Bearer s-1.a", "Content-Type: application/json"), 99)
    b = parse(request(b"{}", "Authorization: Bearer s-1.b", "Content-Type: application/json"), 99)
    assert isinstance(a, Parsed) and isinstance(b, Parsed)
    assert (a.authorization, b.authorization) == ("Bearer s-1.a", "Bearer s-1.b")
    assert len(parsers) == 2


def test_the_body_limit_is_applied_to_a_remembered_head(parsers: list[object]) -> None:
    raw = request(b"x" * 100, "Content-Type: text/plain")
    assert isinstance(parse(raw, 8192), Parsed)
    assert parse(raw, 99) is HANDOFF
    assert isinstance(parse(raw, 100), Parsed)


def test_a_remembered_handoff_stays_a_handoff(parsers: list[object]) -> None:
    raw = request(b"{}", "Content-Type: application/json", "Transfer-Encoding: chunked")
    assert parse(raw, 8192) is HANDOFF
    assert parse(raw, 8192) is HANDOFF
    assert len(parsers) == 1


def test_a_remembered_head_waits_for_its_body(parsers: list[object]) -> None:
    raw = request(b"0123456789", "Content-Type: text/plain")
    assert isinstance(parse(raw, 8192), Parsed)
    head = http1.Head()
    assert parse(raw[:-3], 8192, head) is None and head.end == raw.index(b"\r\n\r\n") + 4
    done = parse(raw, 8192, head)
    assert isinstance(done, Parsed) and done.body == b"0123456789"
    assert len(parsers) == 1


def test_the_memory_is_bounded(parsers: list[object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "SEEN_MAX", 50)
    for i in range(120):
        assert isinstance(
            parse(request(b"{}", f"Idempotency-Key: k{i}", "Content-Type: text/plain"), 99), Parsed
        )
        assert len(http1._SEEN) <= 50
