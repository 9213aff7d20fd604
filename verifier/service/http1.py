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
from typing import Any, NamedTuple

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
        b"content-encoding",
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

    __slots__ = (
        "end",
        "authorization",
        "ctype",
        "idempotency_key",
        "close",
        "body",
        "content_encoding",
    )

    def __init__(
        self,
        end: int,
        authorization: str | None,
        ctype: str,
        idempotency_key: str | None,
        close: bool,
        body: bytes,
        content_encoding: str | None = None,
    ) -> None:
        self.end = end  # bytes of the buffer this request took
        self.authorization = authorization
        self.ctype = ctype
        self.idempotency_key = idempotency_key
        self.close = close
        self.body = body
        self.content_encoding = content_encoding  # the endpoint decides (identity only)

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

    __slots__ = ("fields", "repeated", "complete")

    def __init__(self) -> None:
        self.fields: dict[bytes, bytes] = {}
        self.repeated = False  # a header we act on came twice: aiohttp's rules decide
        self.complete = False  # llhttp saw the end of the head

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key in self.fields and key in _USED:
            self.repeated = True
        self.fields[key] = value.rstrip(b" \t")  # llhttp drops the leading whitespace

    def on_headers_complete(self) -> None:
        self.complete = True


class Head:
    """One request head as it arrives, each byte looked at once (a head sent a byte at a
    time costs what it costs in one piece): llhttp is fed only the new bytes. The parser is
    made at the first piece: a head that arrives whole is looked up first (:func:`parse`)."""

    __slots__ = ("found", "parser", "fed", "end", "info")

    def __init__(self) -> None:
        self.found: _Fields | None = None
        self.parser: Any = None  # httptools.HttpRequestParser, made at the first feed
        self.fed = 0  # bytes of the buffer checked and fed to llhttp
        self.end = -1  # where the body starts, once the head is complete
        self.info: HeadInfo | Handoff | None = None  # what the complete head says

    def feed(self, buf: bytes | bytearray) -> bool | None:
        """True: the head is complete (``end``); None: need more; False: aiohttp's."""
        if self.parser is None:
            self.found = _Fields()
            self.parser = httptools.HttpRequestParser(self.found)
        start = self.fed
        stop = buf.find(b"\r\n\r\n", max(0, start - 3), MAX_HEAD + 4)
        if stop < 0 and len(buf) > MAX_HEAD:
            return False
        chunk = buf[start:] if stop < 0 else buf[start : stop + 4]
        if start < len(REQUEST_LINE):
            n = min(len(buf), len(REQUEST_LINE))
            if buf[:n] != REQUEST_LINE[:n]:
                return False
        if not chunk.isascii():
            return False
        # What has arrived must already be well-formed: aiohttp's llhttp rejects a bad line
        # as soon as it arrives, without waiting for the rest of the head.
        try:
            self.parser.feed_data(chunk)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            return False  # refused, or an upgrade (which the fast path never takes)
        self.fed = start + len(chunk)
        assert self.found is not None
        if self.found.complete != (stop >= 0):
            return False  # llhttp ended the head elsewhere (a bare CR or LF): aiohttp's 400
        if stop < 0:
            return None
        self.end = stop + 4
        return True


class HeadInfo(NamedTuple):
    """What a complete head of a plain verify request says (everything but the body)."""

    length: int
    ctype: str
    close: bool
    authorization: str | None
    idempotency_key: str | None
    content_encoding: str | None


def _head_info(found: _Fields) -> HeadInfo | Handoff:
    """The fields of a complete, well-formed head, judged: HeadInfo, or HANDOFF."""
    if found.repeated:
        return HANDOFF
    fields = found.fields
    if b"host" not in fields or not _ELSEWHERE.isdisjoint(fields):
        return HANDOFF  # no Host (aiohttp answers 400), or chunked, Expect, Upgrade
    length = fields.get(b"content-length", b"")
    if not (length.isdigit() and len(length) <= 6):
        return HANDOFF
    ctype = _CTYPES.get(fields.get(b"content-type", b"").lower())
    connection = fields.get(b"connection")
    close = _KEEP.get(connection.lower() if connection is not None else None)
    if ctype is None or close is None:
        return HANDOFF
    auth = fields.get(b"authorization")
    idem = fields.get(b"idempotency-key")
    encoding = fields.get(b"content-encoding")
    return HeadInfo(
        int(length),
        ctype,
        close,
        auth.decode() if auth is not None else None,
        idem.decode() if idem is not None else None,
        encoding.decode() if encoding is not None else None,
    )


# Complete heads met lately, with what they say. The head alone decides everything but the
# body, and a scanner sends the same head again and again (the token's length aside, and an
# Idempotency-Key if it sends one), so a head met before costs one lookup, not llhttp and its
# callbacks. Bounded: emptied when full.
_SEEN: dict[bytes, HeadInfo | Handoff] = {}
SEEN_MAX = 4096


def _seen(head: bytes) -> HeadInfo | Handoff:
    """What the complete ``head`` says, from :data:`_SEEN` or by parsing it whole."""
    info = _SEEN.get(head)
    if info is None:
        whole = Head()
        info = _head_info(whole.found) if whole.feed(head) and whole.found else HANDOFF
        if len(_SEEN) >= SEEN_MAX:
            _SEEN.clear()
        _SEEN[head] = info
    return info


def parse(
    buf: bytes | bytearray, max_body: int, head: Head | None = None
) -> Parsed | Handoff | None:
    """The first request in ``buf``: Parsed, HANDOFF (aiohttp's), or None (need more bytes).

    ``head`` carries what earlier calls learnt of the same request (a fresh one if None)."""
    if head is None:
        head = Head()
    info = head.info
    if info is None:
        if head.fed == 0 and (stop := buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)) >= 0:
            head.end = stop + 4  # arrived whole
            info = _seen(bytes(buf[: head.end]))
        else:  # arriving in pieces: each piece goes to llhttp as it comes
            state = head.feed(buf)
            if state is None:
                return None
            info = _head_info(head.found) if state and head.found else HANDOFF
        head.info = info
    if isinstance(info, Handoff) or info.length > max_body:
        return HANDOFF
    end = head.end
    stop = end + info.length
    if len(buf) < stop:
        return None
    return Parsed(
        stop,
        info.authorization,
        info.ctype,
        info.idempotency_key,
        info.close,
        bytes(buf[end:stop]),
        info.content_encoding,
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
