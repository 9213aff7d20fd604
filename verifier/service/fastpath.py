"""A lean HTTP/1.1 front for the one hot route, ``POST /v1/verify``; the rest is aiohttp's.

Every accepted connection starts here. A request this front recognises with certainty — the
exact request line ``POST /v1/verify HTTP/1.1``, well-formed ASCII header lines, one
Content-Length within the body limit, no Transfer-Encoding, Expect or Upgrade, a JSON or plain
text body, a Host — is answered by the same :class:`Handlers` code as aiohttp's route
(``admit`` → ``decide``), without building aiohttp's Request and Response objects.

At the first request it does not recognise (another route or method, chunked, HTTP/1.0, an
odd header, an oversized head or body …) the connection is handed to aiohttp's own protocol
together with the bytes not yet consumed, and stays there. So every other route and every
edge case of HTTP keeps aiohttp's behaviour, and this front only ever answers requests whose
framing is unambiguous. ``VERIFIER_FAST_PATH=false`` serves everything through aiohttp.

Requests on one connection are answered in order, one at a time (pipelined requests wait in
the buffer, reading pauses when it grows); connections idle for ``keepalive_timeout`` are
closed, as aiohttp does. A head line that is already malformed is handed over at once, before
the head is complete, because aiohttp rejects it at once too.

Where the two differ on purpose (tests/test_service_fastpath.py shows the rest is the same,
byte for byte, on 300 mutated requests): the front reads the whole (small) body before
answering, where aiohttp may refuse on the headers alone while the body is still on its way;
it answers a request whose sender then half-closes the connection (aiohttp drops it); and a
complete request followed by unparseable bytes in the same read gets its answer before the
rest goes to aiohttp (which answers only one 400 for the whole read).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast

from verifier.service.app import Answer, Handlers

log = logging.getLogger("verifier.http")

_REQUEST_LINE = b"POST /v1/verify HTTP/1.1\r\n"
_MAX_HEAD = 8190  # longer heads go to aiohttp, which applies its own limits
_PAUSE_AT = 65536  # unread bytes held while a request is in flight
_TCHAR = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"
# The whole head: field lines "name: value" with visible ASCII, spaces and tabs only.
_HEAD = re.compile(rb"(?:" + _TCHAR + rb"+:[\t\x20-\x7e]*\r\n)*")
_BARE_LF = re.compile(rb"(?<!\r)\n")
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
_INTERNAL = Answer(500, b'{"error":"internal_error","message":"internal error; see the log"}')


class Handoff:
    """Marker: this request is aiohttp's."""


HANDOFF = Handoff()


class Parsed:
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
        self.end = end
        self.authorization = authorization
        self.ctype = ctype
        self.idempotency_key = idempotency_key
        self.close = close
        self.body = body


def parse(buf: bytes, max_body: int) -> Parsed | Handoff | None:
    """The first request in ``buf``: Parsed, HANDOFF (aiohttp's), or None (need more bytes)."""
    end = buf.find(b"\r\n\r\n", 0, _MAX_HEAD + 4)
    if end < 0:  # the head is not complete yet
        if len(buf) > _MAX_HEAD or _BARE_LF.search(buf) is not None:
            return HANDOFF  # too long, or lines that do not end in CRLF: aiohttp's to judge
        n = min(len(buf), len(_REQUEST_LINE))
        if buf[:n] != _REQUEST_LINE[:n]:
            return HANDOFF
        # The header lines complete so far must already be well-formed: aiohttp rejects a
        # bad one as soon as it arrives, without waiting for the rest of the head.
        done = buf.rfind(b"\r\n") + 2
        if done > n and _HEAD.fullmatch(buf, n, done) is None:
            return HANDOFF
        return None
    if not buf.startswith(_REQUEST_LINE):
        return HANDOFF
    head = buf[len(_REQUEST_LINE) : end + 2]
    if _HEAD.fullmatch(head) is None:
        return HANDOFF
    fields: dict[bytes, bytes] = {}
    for line in head[:-2].split(b"\r\n"):  # each line is "name:value" (checked above)
        name, _, value = line.partition(b":")
        key = name.lower()
        if key in fields and key in _USED:
            return HANDOFF  # a repeated header we act on: let aiohttp's rules decide
        fields[key] = value.strip(b" \t")
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


_STATUS_LINES = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\nContent-Type: application/json\r\n".encode()
    for s in HTTPStatus
}
_date_cache: list[Any] = [-1, b""]


def _http_date(now: float) -> bytes:
    second = int(now)
    if _date_cache[0] != second:
        _date_cache[0], _date_cache[1] = second, formatdate(second, usegmt=True).encode()
    return bytes(_date_cache[1])


def render(answer: Answer, close: bool, now: float) -> bytes:
    """Status line, headers and body of one response."""
    extra = b""
    if answer.headers:
        for name, value in answer.headers.items():
            extra += b"%s: %s\r\n" % (name.encode(), value.encode())
    return b"%sContent-Length: %d\r\nDate: %s\r\n%s%s\r\n%s" % (
        _STATUS_LINES[answer.status],
        len(answer.body),
        _http_date(now),
        extra,
        b"Connection: close\r\n" if close else b"",
        answer.body,
    )


class Front:
    """What the connections share: the handlers, aiohttp's protocol factory, the live set."""

    def __init__(
        self,
        handlers: Handlers,
        aiohttp_protocol: Callable[[], asyncio.Protocol],
        max_body: int,
        keepalive_timeout: float = 75.0,
        sweep_period: float = 5.0,
    ) -> None:
        self.handlers = handlers
        self.aiohttp_protocol = aiohttp_protocol
        self.max_body = max_body
        self.keepalive_timeout = keepalive_timeout  # aiohttp's default too
        self.sweep_period = sweep_period
        self.connections: set[FastConnection] = set()
        self.tick = 0  # advanced by the sweeper; connections note it on activity
        self.closing = False
        self._sweeper: asyncio.Task[None] | None = None

    def protocol(self) -> FastConnection:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return FastConnection(self)

    async def _sweep(self) -> None:
        """Close connections that sat idle (nothing in flight) for keepalive_timeout."""
        while True:
            await asyncio.sleep(self.sweep_period)
            self.tick += 1
            idle_ticks = max(1, round(self.keepalive_timeout / self.sweep_period))
            for conn in list(self.connections):
                if not conn.busy and self.tick - conn.tick > idle_ticks:
                    conn.close()

    async def close(self, grace: float = 10.0) -> None:
        """Stop taking requests; let those in flight finish (up to ``grace`` s); close all."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            if not conn.busy:
                conn.close()
        deadline = time.monotonic() + grace
        while any(c.busy for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.close()


class FastConnection(asyncio.Protocol):
    __slots__ = ("front", "transport", "buf", "busy", "eof", "reading", "writable", "tick", "task")

    def __init__(self, front: Front) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy = False  # a request is being answered
        self.eof = False
        self.reading = True
        self.writable = True
        self.tick = front.tick
        self.task: asyncio.Task[None] | None = None  # the answer in progress (a strong ref)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        self.front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self.transport = None
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        self.tick = self.front.tick
        if not self.busy:
            self._next()
        elif len(self.buf) > _PAUSE_AT and self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        if not self.busy:
            self._next()
        return True  # keep the write side open for answers still to come

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        if not self.busy:
            self._next()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _next(self) -> None:
        """Start answering the next buffered request, or hand the connection to aiohttp."""
        transport = self.transport
        if transport is None or not self.writable:
            return
        if self.front.closing:
            transport.close()
            return
        if not self.reading and len(self.buf) <= _PAUSE_AT:
            self.reading = True
            transport.resume_reading()
        if not self.buf:
            if self.eof:
                transport.close()
            return
        parsed = parse(self.buf, self.front.max_body)
        if parsed is None:
            if self.eof:  # the peer stopped sending in the middle of a request
                self._handoff()
            return
        if isinstance(parsed, Handoff):
            self._handoff()
            return
        self.buf = self.buf[parsed.end :]
        self.busy = True
        self.task = asyncio.get_running_loop().create_task(
            self._answer(parsed, time.perf_counter())
        )

    async def _answer(self, req: Parsed, started: float) -> None:
        h = self.front.handlers
        try:
            # A scanner seen moments ago needs no await (the fast path only takes JSON or text).
            admitted = h.rt.scanners.cached(req.authorization) or await h.admit(
                req.authorization, req.ctype
            )
            if isinstance(admitted, Answer):
                answer = admitted
            else:
                answer = await h.decide(admitted, req.ctype, req.body, req.idempotency_key, started)
        except Exception:
            log.exception("verify failed")
            answer = _INTERNAL
        transport = self.transport
        self.busy = False
        if transport is None:
            return
        transport.write(render(answer, req.close, time.time()))
        if req.close:
            transport.close()
        else:
            self._next()

    def _handoff(self) -> None:
        """From here on this connection is aiohttp's, starting with the unconsumed bytes."""
        transport, buf = self.transport, self.buf
        assert transport is not None
        self.front.connections.discard(self)
        self.transport, self.buf = None, b""
        if not self.reading:
            transport.resume_reading()
        proto = self.front.aiohttp_protocol()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        if buf:
            proto.data_received(buf)
        if self.eof:
            proto.eof_received()
