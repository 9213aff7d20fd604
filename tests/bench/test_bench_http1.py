"""The bench's HTTP/1.1 bytes: request building and the oracle's view of responses."""

from __future__ import annotations

import pytest

from bench.http1 import ProtocolError, build_request, parse_response, split_target, verdict_of


def response(status: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\n" + extra
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def test_build_request_exact_bytes() -> None:
    request = build_request("127.0.0.1", 8080, "/v1/verify", "scanner-7", "text/plain", b"v4.x")
    assert request == (
        b"POST /v1/verify HTTP/1.1\r\n"
        b"Host: 127.0.0.1:8080\r\n"
        b"Authorization: Bearer scanner-7\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: 4\r\n"
        b"\r\n"
        b"v4.x"
    )


@pytest.mark.parametrize(
    ("raw", "verdict"),
    [
        (response("200 OK", b'{"valid":true,"reason":"ok"}'), "ok"),  # compact JSON
        (response("200 OK", b'{"valid": false, "reason": "replayed"}'), "replayed"),  # spaced
        (response("200 OK", b'{"valid":true}'), "no_reason"),  # 200 without a reason
        (response("200 OK", b"not json"), "bad_json"),
        (response("401 Unauthorized", b'{"error":"bad_credential"}'), "http_401"),
        (response("503 Service Unavailable", b'{"error":"store_down"}'), "http_503"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "http_204"),  # no body, no length needed
        (response("200 OK", b'{"reason":"ok"}', b"content-length-ish: 1\r\n"), "ok"),
    ],
)
def test_parse_complete_responses(raw: bytes, verdict: str) -> None:
    assert parse_response(raw) == (len(raw), verdict)


def test_lower_case_header_names() -> None:
    raw = b'HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{"reason":"ok"}'
    assert parse_response(raw) == (len(raw), "ok")


def test_incomplete_responses_ask_for_more() -> None:
    raw = response("200 OK", b'{"reason":"ok"}')
    for cut in (0, 5, raw.index(b"\r\n\r\n") + 2, len(raw) - 1):
        assert parse_response(raw[:cut]) is None


def test_reports_only_the_first_response() -> None:
    first = response("200 OK", b'{"reason":"ok"}')
    assert parse_response(first + b"HTTP/1.1 200") == (len(first), "ok")


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",  # not HTTP
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",  # bad status
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # chunked
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",  # bad length
        b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\n\r\n{}",  # 200 without framing
    ],
)
def test_protocol_errors(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_response(raw)


def test_verdict_of_non_200_ignores_the_body() -> None:
    assert verdict_of(413, b'{"reason":"ok"}') == "http_413"


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("http://127.0.0.1:8080/v1/verify", ("127.0.0.1", 8080, "/v1/verify")),
        ("http://localhost/v1/verify?x=1", ("localhost", 80, "/v1/verify?x=1")),
        ("http://127.0.0.1:9", ("127.0.0.1", 9, "/")),
    ],
)
def test_split_target(url: str, parts: tuple[str, int, str]) -> None:
    assert split_target(url) == parts


@pytest.mark.parametrize("url", ["https://127.0.0.1/v1", "127.0.0.1:80", "http:///x"])
def test_split_target_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        split_target(url)
