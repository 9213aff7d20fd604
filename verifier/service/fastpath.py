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
the buffer, reading pauses when it grows); connections idle for ``keepalive_timeout`` are
closed, as aiohttp does. A head that is already malformed is handed over at once, before it
is complete, because aiohttp rejects it at once too.

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

from verifier.service.endpoint import Endpoint
from verifier.service.http1 import Handoff, Parsed, parse, render

_PAUSE_AT = 65536  # unread bytes held while a request is in flight


class Front:
    """What the connections share: the endpoint, aiohttp's protocol factory, the live set."""

    def __init__(
        self,
        endpoint: Endpoint,
        aiohttp_protocol: Callable[[], asyncio.Protocol],
        max_body: int,
        keepalive_timeout: float = 75.0,
        sweep_period: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
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
        endpoint = self.front.endpoint
        try:
            answer = await endpoint.verify(req, started)
        except Exception:  # noqa: BLE001 - a bug: internal_error logs it with its traceback
            answer = endpoint.internal_error()
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
