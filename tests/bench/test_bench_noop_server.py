"""The no-op server is an honest HTTP/1.1 responder: one response per complete request."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from bench import noop_server
from bench.http1 import build_request
from bench.noop_server import RESPONSE, RequestError, count_requests

REQUEST = build_request("127.0.0.1", 80, "/v1/verify", "calibrate", "text/plain", b"v4.x")
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_count_requests_pipelined_and_split() -> None:
    assert count_requests(REQUEST) == (1, b"", 0)
    assert count_requests(REQUEST * 3 + GET) == (4, b"", 0)
    cut = REQUEST.index(b"\r\n\r\n")
    assert count_requests(REQUEST + REQUEST[:cut]) == (1, REQUEST[:cut], 0)
    # Headers complete, body not: the rest of the body is skipped when it comes.
    assert count_requests(REQUEST[:-2]) == (0, b"", 2)
    assert count_requests(b"x.", 2) == (1, b"", 0)
    assert count_requests(b"x", 2) == (0, b"", 1)
    assert count_requests(b"x." + GET, 2) == (2, b"", 0)


def test_count_requests_reads_content_length_case_insensitively() -> None:
    raw = b"POST / HTTP/1.1\r\ncOnTeNt-LeNgTh:  5 \r\n\r\nabcde" + GET
    assert count_requests(raw) == (2, b"", 0)


@pytest.mark.parametrize(
    "raw",
    [
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: " + b"a" * (65 * 1024),  # header never ends
    ],
)
def test_count_requests_refuses(raw: bytes) -> None:
    with pytest.raises(RequestError):
        count_requests(raw)


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    running = noop_server.start_in_process()
    yield running.port
    running.stop()


def _responses(sock: socket.socket, expected: int) -> int:
    """Read until *expected* responses (or more) arrived, or 0.3 s of silence."""
    data = b""
    sock.settimeout(0.3)
    while len(data) < expected * len(RESPONSE) or expected == 0:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    time.sleep(0.05)  # anything extra (a wrong answer) would arrive by now
    sock.setblocking(False)
    try:
        data += sock.recv(65536)
    except BlockingIOError:
        pass
    assert data == RESPONSE * (len(data) // len(RESPONSE))
    return len(data) // len(RESPONSE)


def test_answers_pipelined_split_and_repeated_requests(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(REQUEST)  # one whole request: the server remembers these bytes
        assert _responses(sock, 1) == 1
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(REQUEST * 3 + GET)
        assert _responses(sock, 4) == 4
        sock.setblocking(True)
        sock.sendall(REQUEST[:10])
        time.sleep(0.05)
        sock.sendall(REQUEST[10:])
        assert _responses(sock, 1) == 1
        sock.setblocking(True)
        for _ in range(5):  # the same bytes again and again: answered each time
            sock.sendall(REQUEST)
            assert _responses(sock, 1) == 1
            sock.setblocking(True)


def test_known_request_bytes_inside_a_body_are_body(server: int) -> None:
    # A request whose body is exactly the bytes of a request the server has seen whole:
    # those bytes arrive in a read of their own, but they are body, not a second request.
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(REQUEST)
        assert _responses(sock, 1) == 1
        sock.setblocking(True)
        head = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(REQUEST)
        sock.sendall(head)
        time.sleep(0.05)
        sock.sendall(REQUEST)
        time.sleep(0.05)
        sock.sendall(GET)
        assert _responses(sock, 2) == 2


def test_unreadable_request_closes_the_connection(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
        sock.settimeout(2)
        assert sock.recv(100) == b""
