"""A lean HTTP/1.1 front for the one hot route, ``POST /v1/verify``; the rest is aiohttp's.

Every accepted connection starts here. A request :func:`verifier.service.http1.parse`
recognises with certainty is answered by the endpoint (:class:`Endpoint`), the same code
aiohttp's route calls, without building aiohttp's Request and Response objects.

At the first request it does not recognise (another route or method, chunked, HTTP/1.0, an
odd header, an oversized head or body …) the connection is handed to aiohttp's own protocol
together with the bytes not yet consumed, and stays there. So every other route and every
edge case of HTTP keeps aiohttp's behaviour, and this front only ever answers requests whose
framing is unambiguous. ``VERIFIER_FAST_PATH=false`` serves everything through aiohttp.

Requests on one connection are answered in order, one at a time (pipelined requests wait in
the buffer). Reading pauses while the buffer holds more than a request can take, and while the
socket's write buffer is full: a client that sends without reading what it is answered fills
its own socket, not the server's memory. Each head is looked at once, as its bytes arrive
(:class:`verifier.service.http1.Head`); one that arrives whole and was met before is looked
up instead. Timeouts and the connection cap are the
:class:`~verifier.service.connections.Governor`'s, the same for connections handed to aiohttp.
A head that is already malformed is handed over at once, before it is complete, because
aiohttp rejects it at once too.

Where the two differ on purpose (tests/service/test_service_fastpath.py shows the rest is the
same, byte for byte, on mutated requests): the front reads the whole (small) body before
answering, where aiohttp may refuse on the headers alone while the body is still on its way;
it answers a request whose sender then half-closes the connection (aiohttp drops it); and a
complete request followed by unparseable bytes in the same read gets its answer before the
rest goes to aiohttp (which answers only one 400 for the whole read).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

from verifier.service.connections import (
    BODY,
    BUSY,
    HEAD,
    IDLE,
    AiohttpConnection,
    ConnectionLimits,
    Governor,
    may_answer,
)
from verifier.service.endpoint import Endpoint
from verifier.service.http1 import Handoff, Head, Parsed, parse, render

# Unread bytes held before reading pauses: above the largest request (head and body), so a
# request that is still arriving is never paused.
_PAUSE_AT = 131072


class Front(Governor):
    """What the connections share: the endpoint, aiohttp's protocol factory, the governor.

    With ``fast=False`` every connection goes to aiohttp at once (still governed)."""

    def __init__(
        self,
        endpoint: Endpoint,
        aiohttp_protocol: Callable[[], asyncio.Protocol],
        max_body: int,
        limits: ConnectionLimits | None = None,
        fast: bool = True,
    ) -> None:
        super().__init__(limits or ConnectionLimits(), endpoint.m, self._timeout_answer)
        self.endpoint = endpoint
        self.aiohttp_protocol = aiohttp_protocol
        self.max_body = max_body
        self.fast = fast

    def _timeout_answer(self) -> bytes:
        return render(self.endpoint.request_timeout(), True, time.time())

    def protocol(self) -> asyncio.Protocol:
        if self.fast:
            return FastConnection(self)
        return AiohttpConnection(self, self.aiohttp_protocol())

    async def close(self, grace: float = 10.0) -> None:
        """Stop taking requests; let those in flight finish (up to ``grace`` s); close the fast
        path's connections (aiohttp's runner closes its own)."""
        self.stop_sweeping()
        mine = [c for c in self.connections if isinstance(c, FastConnection)]
        for conn in mine:
            if conn.phase != BUSY:
                conn.close()
        deadline = time.monotonic() + grace
        while any(c.phase == BUSY and c.transport for c in mine) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in mine:
            conn.close()


class FastConnection(asyncio.Protocol):
    __slots__ = (
        "front",
        "transport",
        "buf",
        "head",
        "eof",
        "reading",
        "writable",
        "phase",
        "since",
        "tick",
        "task",
    )

    def __init__(self, front: Front) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.buf: bytes | bytearray = b""
        self.head: Head | None = None  # the head arriving, parsed as far as it has come
        self.eof = False
        self.reading = True
        self.writable = True
        self.phase = self.since = self.tick = 0  # set by the governor (connections.py)
        self.task: asyncio.Task[None] | None = None  # the answer in progress (a strong ref)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.front.admit(self, transport):
            self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.leave(self)
        self.transport = None
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        if not buf:
            self.buf = data
        elif isinstance(buf, bytearray):
            buf += data
        else:  # a second piece: collect in place from now on, not by copying the whole
            self.buf = bytearray(buf) + data
        self.tick = self.front.tick
        if self.phase != BUSY:
            self._next()
        self._flow()

    def eof_received(self) -> bool:
        self.eof = True
        if self.phase != BUSY:
            self._next()
        return True  # keep the write side open for answers still to come

    def pause_writing(self) -> None:
        self.writable = False
        self._flow()

    def resume_writing(self) -> None:
        self.writable = True
        if self.phase != BUSY:
            self._next()
        self._flow()

    def _flow(self) -> None:
        """Read while the answers are being taken and the buffer is not full."""
        transport = self.transport
        if transport is None:
            return
        want = self.writable and len(self.buf) <= _PAUSE_AT
        if want != self.reading:
            self.reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def expire(self, timeout_answer: Callable[[], bytes]) -> None:
        transport = self.transport
        if transport is None:
            return
        if self.phase != IDLE and self.buf and may_answer(transport):
            transport.write(timeout_answer())
        transport.close()

    def _next(self) -> None:
        """Start answering the next buffered request, or hand the connection to aiohttp."""
        transport = self.transport
        if transport is None or not self.writable:
            return
        front = self.front
        if front.closing:
            transport.close()
            return
        if not self.buf:
            if self.eof:
                transport.close()
            return
        if self.phase == IDLE:
            self.phase, self.since = HEAD, front.tick
        if self.head is None:
            self.head = Head()
        parsed = parse(self.buf, front.max_body, self.head)
        if parsed is None:
            if self.eof:  # the peer stopped sending in the middle of a request
                self._handoff()
            elif self.head.end >= 0 and self.phase == HEAD:
                self.phase, self.since = BODY, front.tick
            return
        if isinstance(parsed, Handoff):
            self._handoff()
            return
        self.buf = self.buf[parsed.end :]
        self.head = None
        self.phase = BUSY
        self.task = asyncio.get_running_loop().create_task(
            self._answer(parsed, time.perf_counter())
        )

    async def _answer(self, req: Parsed, started: float) -> None:
        endpoint = self.front.endpoint
        try:
            answer = (
                endpoint.encoding_refusal(req.content_encoding)
                if req.content_encoding is not None
                else None
            ) or await endpoint.verify(req, started)
        except Exception:  # noqa: BLE001 - a bug: internal_error logs it with its traceback
            answer = endpoint.internal_error()
        transport = self.transport
        self.phase, self.since = IDLE, self.front.tick
        if transport is None:
            return
        transport.write(render(answer, req.close, time.time()))
        if req.close:
            transport.close()
        else:
            self._next()
            self._flow()

    def _handoff(self) -> None:
        """From here on this connection is aiohttp's, starting with the unconsumed bytes."""
        transport, buf, front = self.transport, self.buf, self.front
        assert transport is not None
        proto = AiohttpConnection(front, front.aiohttp_protocol())
        front.replace(self, proto)
        self.transport, self.buf, self.head = None, b"", None
        if not self.reading:
            transport.resume_reading()
        transport.set_protocol(proto)
        proto.took_over(transport, bool(buf))
        if buf:
            proto.data_received(bytes(buf))
        if self.eof:
            proto.eof_received()
