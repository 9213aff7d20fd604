"""HTTP/1.1 for the fast path: recognise a plain ``POST /v1/verify``, render an answer.

The head is parsed by llhttp through ``httptools`` (the parser family aiohttp builds on), so
the fast path accepts no framing that aiohttp would reject. On top of llhttp's checks the
fast path takes only what it can answer with certainty — the exact request line ``POST
/v1/verify HTTP/1.1``, an ASCII head, a Host, one Content-Length within the body limit, no
Transfer-Encoding, Expect or Upgrade, no repeated header it acts on, a JSON or plain-text
body — and hands everything else to aiohttp (:data:`HANDOFF`).
"""

from __future__ import annotations

from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools

from verifier.service.endpoint import Answer

REQUEST_LINE = b"POST /v1/verify HTTP/1.1\r\n"
MAX_HEAD = 8190  # longer heads go to aiohttp, which applies its own limits
_USED = frozenset(
    (
        b"host",
        b"content-length",
        b"content-type",
        b"authorization",
        b"idempotency-key",
        b"connection",
    )
)
_ELSEWHERE = frozenset((b"transfer-encoding", b"expect", b"upgrade"))
_CTYPES = {
    b"application/json": "application/json",
    b"application/json; charset=utf-8": "application/json",
    b"text/plain": "text/plain",
    b"text/plain; charset=utf-8": "text/plain",
}
_KEEP = {None: False, b"keep-alive": False, b"close": True}


class Handoff:
    """Marker: this request is aiohttp's."""


HANDOFF = Handoff()


class Parsed:
    """One recognised request, whole; the endpoint reads it as a
    :class:`verifier.service.endpoint.Request`."""

    __slots__ = ("end", "authorization", "ctype", "idempotency_key", "close", "body")

    def __init__(
        self,
        end: int,
        authorization: str | None,
        ctype: str,
        idempotency_key: str | None,
        close: bool,
        body: bytes,
    ) -> None:
        self.end = end  # bytes of the buffer this request took
        self.authorization = authorization
        self.ctype = ctype
        self.idempotency_key = idempotency_key
        self.close = close
        self.body = body

    @property
    def content_type(self) -> str:
        return self.ctype

    @property
    def content_length(self) -> int:
        return len(self.body)

    async def read_body(self, limit: int) -> bytes:
        return self.body  # already read, and within the limit (see parse)


class _Fields:
    """llhttp's callbacks: the header fields, by lower-case name."""

    __slots__ = ("fields", "repeated")

    def __init__(self) -> None:
        self.fields: dict[bytes, bytes] = {}
        self.repeated = False  # a header we act on came twice: aiohttp's rules decide

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key in self.fields and key in _USED:
            self.repeated = True
        self.fields[key] = value.rstrip(b" \t")  # llhttp drops the leading whitespace


def _fields(head: bytes) -> _Fields | None:
    """The fields of an ASCII head (complete or not) as llhttp reads it; None if it refuses."""
    found = _Fields()
    try:
        httptools.HttpRequestParser(found).feed_data(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None  # refused, or an upgrade (which the fast path never takes)
    return found


def parse(buf: bytes, max_body: int) -> Parsed | Handoff | None:
    """The first request in ``buf``: Parsed, HANDOFF (aiohttp's), or None (need more bytes)."""
    end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:  # the head is not complete yet
        n = min(len(buf), len(REQUEST_LINE))
        if len(buf) > MAX_HEAD or buf[:n] != REQUEST_LINE[:n] or not buf.isascii():
            return HANDOFF
        # What has arrived must already be well-formed: aiohttp's llhttp rejects a bad line
        # as soon as it arrives, without waiting for the rest of the head.
        return None if _fields(buf) is not None else HANDOFF
    head = buf[: end + 4]
    if not head.startswith(REQUEST_LINE) or not head.isascii():
        return HANDOFF
    found = _fields(head)
    if found is None or found.repeated:
        return HANDOFF
    fields = found.fields
    if b"host" not in fields or not _ELSEWHERE.isdisjoint(fields):
        return HANDOFF  # no Host (aiohttp answers 400), or chunked, Expect, Upgrade
    length = fields.get(b"content-length", b"")
    if not (length.isdigit() and len(length) <= 6) or int(length) > max_body:
        return HANDOFF
    ctype = _CTYPES.get(fields.get(b"content-type", b"").lower())
    connection = fields.get(b"connection")
    close = _KEEP.get(connection.lower() if connection is not None else None)
    if ctype is None or close is None:
        return HANDOFF
    stop = end + 4 + int(length)
    if len(buf) < stop:
        return None
    auth = fields.get(b"authorization")
    idem = fields.get(b"idempotency-key")
    return Parsed(
        stop,
        auth.decode() if auth is not None else None,
        ctype,
        idem.decode() if idem is not None else None,
        close,
        buf[end + 4 : stop],
    )


_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_JSON_TYPE = b"Content-Type: application/json\r\n"
_date_cache: list[Any] = [-1, b""]


def _http_date(now: float) -> bytes:
    second = int(now)
    if _date_cache[0] != second:
        _date_cache[0], _date_cache[1] = second, formatdate(second, usegmt=True).encode()
    return bytes(_date_cache[1])


def render(answer: Answer, close: bool, now: float) -> bytes:
    """Status line, headers and body of one response."""
    extra = b""
    ctype = _JSON_TYPE
    if answer.headers:
        for name, value in answer.headers.items():
            line = b"%s: %s\r\n" % (name.encode(), value.encode())
            if name == "Content-Type":
                ctype = line
            else:
                extra += line
    return b"%s%sContent-Length: %d\r\nDate: %s\r\n%s%s\r\n%s" % (
        _STATUS_LINES[answer.status],
        ctype,
        len(answer.body),
        _http_date(now),
        extra,
        b"Connection: close\r\n" if close else b"",
        answer.body,
    )
