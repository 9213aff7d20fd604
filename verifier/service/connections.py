"""Connection governance, the same for every framing: timeouts, a cap, and who gives way.

Every accepted connection is counted here, whichever framing answers it (the fast path's
:class:`~verifier.service.fastpath.FastConnection`, or :class:`AiohttpConnection`, which sits
between the socket and aiohttp's own protocol and only watches). A connection is always in
one phase, and each phase has its deadline, counted from the moment it entered the phase:

=========  =============================================  ==========================
phase      what the server waits for                      deadline
=========  =============================================  ==========================
IDLE       the next request on a kept-alive connection    ``keepalive_timeout``
HEAD       the rest of a request head (or its first byte  ``header_timeout``, then a
           on a new connection)                           408 if bytes had come
BODY       the rest of a body (fast path)                 ``body_timeout``, then 408
HANDLER    aiohttp's handler, which reads the body         ``body_timeout``
BUSY       the fast path's answer (the endpoint)          none
=========  =============================================  ==========================

At ``max_connections`` a new connection makes room: the connection that has been silent the
longest among those waiting for a client (IDLE, HEAD, BODY) is closed; only when every
connection is being answered is the new one closed at once. So slow clients cannot crowd out
a scanner: they are the ones that give way. Every close is counted in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from verifier.errors import ConfigError
from verifier.service.logs import event
from verifier.service.metrics import Metrics

log = logging.getLogger("verifier.http")

IDLE, HEAD, BODY, HANDLER, BUSY = range(5)
# The metrics label of a timeout in each phase.
PHASE_NAMES = ("keepalive", "header", "body", "body", "")
# Descriptors a worker needs beside its connections: listening sockets, store, logs, files.
RESERVED_DESCRIPTORS = 256


@dataclass(frozen=True)
class ConnectionLimits:
    """Per worker: ``VERIFIER_HEADER_TIMEOUT_SECONDS``, ``VERIFIER_BODY_TIMEOUT_SECONDS``,
    ``VERIFIER_KEEPALIVE_SECONDS``, ``VERIFIER_MAX_CONNECTIONS``."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 75.0
    max_connections: int = 4096


def ensure_descriptors(max_connections: int) -> int:
    """Raise the soft RLIMIT_NOFILE so ``max_connections`` fit, or refuse to start.

    Returns the soft limit in force."""
    need = max_connections + RESERVED_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise ConfigError(
                f"VERIFIER_MAX_CONNECTIONS: {max_connections} connections need {need} file "
                f"descriptors, and this process may open at most {hard} (ulimit -n); lower "
                f"the setting or raise the limit"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        soft = need
    return int(soft)


class Governed(Protocol):
    """What the governor knows of one connection; each framing's protocol is one."""

    transport: asyncio.Transport | None
    phase: int
    since: int  # the governor's tick when the phase began
    tick: int  # the governor's tick of the last bytes received

    def expire(self, timeout_answer: Callable[[], bytes]) -> None:
        """The phase's deadline passed: answer 408 if one can be written, and close."""
        ...


class Governor:
    """The connections of one site (one worker), their deadlines and their cap."""

    def __init__(
        self, limits: ConnectionLimits, metrics: Metrics, timeout_answer: Callable[[], bytes]
    ) -> None:
        self.limits = limits
        self.m = metrics
        self.timeout_answer = timeout_answer  # a whole 408 response, Connection: close
        shortest = min(limits.header_timeout, limits.body_timeout, limits.keepalive_timeout)
        self.sweep_period = min(1.0, shortest / 4)
        self.connections: set[Governed] = set()
        self.tick = 0  # advanced by the sweeper; connections note it on activity
        self.closing = False
        self._sweeper: asyncio.Task[None] | None = None

    # -- membership -------------------------------------------------------------------------

    def admit(self, conn: Governed, transport: asyncio.BaseTransport) -> bool:
        """A new connection: counted in (making room if the cap is reached), or closed."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        if len(self.connections) >= self.limits.max_connections and not self._make_room():
            self.m.connections_refused["limit"] += 1
            cast(asyncio.Transport, transport).abort()
            return False
        conn.phase, conn.since, conn.tick = HEAD, self.tick, self.tick
        self.connections.add(conn)
        self.m.connections_open = len(self.connections)
        return True

    def replace(self, old: Governed, new: Governed) -> None:
        """``new`` carries on ``old``'s connection (a hand-off to aiohttp), phase and all."""
        self.connections.discard(old)
        new.phase, new.since, new.tick = old.phase, old.since, old.tick
        self.connections.add(new)

    def leave(self, conn: Governed) -> None:
        self.connections.discard(conn)
        self.m.connections_open = len(self.connections)

    def _make_room(self) -> bool:
        """Close the connection silent the longest among those waiting for their client."""
        oldest: Governed | None = None
        for conn in self.connections:
            if conn.phase < HANDLER and (oldest is None or conn.tick < oldest.tick):
                oldest = conn
        if oldest is None:
            return False
        self.m.connections_refused["evicted"] += 1
        self.leave(oldest)
        transport = oldest.transport
        if transport is not None:
            transport.abort()
        return True

    # -- deadlines --------------------------------------------------------------------------

    async def _sweep(self) -> None:
        period = self.sweep_period
        lim = self.limits
        ticks = [
            math.ceil(t / period)
            for t in (lim.keepalive_timeout, lim.header_timeout, lim.body_timeout)
        ]
        deadlines = (ticks[0], ticks[1], ticks[2], ticks[2], -1)
        while True:
            await asyncio.sleep(period)
            self.tick += 1
            for conn in list(self.connections):
                deadline = deadlines[conn.phase]
                if deadline >= 0 and self.tick - conn.since > deadline:
                    self.m.connection_timeouts[PHASE_NAMES[conn.phase]] += 1
                    self.leave(conn)
                    conn.expire(self.timeout_answer)

    def stop_sweeping(self) -> None:
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()


def may_answer(transport: asyncio.Transport) -> bool:
    """True if nothing of an earlier answer is still waiting to be written."""
    return not transport.is_closing() and transport.get_write_buffer_size() == 0


class AiohttpConnection(asyncio.Protocol):
    """Between the socket and aiohttp's protocol: passes everything on, notes the phase.

    aiohttp's route marks a request's handler (``handling`` / ``handled``, a middleware in
    ``app.py``); bytes that arrive while no handler runs belong to a head."""

    __slots__ = ("gov", "inner", "transport", "phase", "since", "tick", "more")

    def __init__(self, gov: Governor, inner: asyncio.Protocol) -> None:
        self.gov = gov
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.phase = self.since = self.tick = 0
        self.more = False  # bytes came since the last handler began: a head is under way

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.gov.admit(self, transport):
            self.transport = cast(asyncio.Transport, transport)
            self.inner.connection_made(transport)

    def took_over(self, transport: asyncio.Transport, buffered: bool) -> None:
        """Start on a connection the fast path had (``Governor.replace`` was called)."""
        self.transport, self.more = transport, buffered
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        gov = self.gov
        self.tick = gov.tick
        self.more = True
        if self.phase == IDLE:
            self.phase, self.since = HEAD, gov.tick
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gov.leave(self)
        if self.transport is not None:
            self.transport = None
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def handling(self) -> None:
        self.phase, self.since, self.more = HANDLER, self.gov.tick, False

    def handled(self) -> None:
        self.phase, self.since = (HEAD if self.more else IDLE), self.gov.tick

    def expire(self, timeout_answer: Callable[[], bytes]) -> None:
        transport = self.transport
        if transport is None:
            return
        # A head under way: aiohttp has written nothing for it, so a 408 can go out once the
        # last answer is all written.
        if self.phase == HEAD and self.more and may_answer(transport):
            transport.write(timeout_answer())
        transport.close()


class RefusalLog:
    """One log line per request refused before it could be parsed (cause and peer, never
    the request's bytes), at most ``burst`` lines per ``period`` seconds; the lines left out
    are counted in the next one."""

    def __init__(self, burst: int = 10, period: float = 10.0) -> None:
        self.burst, self.period = burst, period
        self.window = -period
        self.logged = 0
        self.left_out = 0

    def refused(self, cause: str, peer: str | None) -> None:
        now = time.monotonic()
        if now - self.window >= self.period:
            self.window, self.logged = now, 0
        if self.logged >= self.burst:
            self.left_out += 1
            return
        self.logged += 1
        left_out, self.left_out = self.left_out, 0
        more = f" ({left_out} more not logged)" if left_out else ""
        event(
            log,
            logging.WARNING,
            "malformed_request",
            f"refused a request that is not well-formed HTTP/1.1 from {peer}: {cause}{more}",
            cause=cause,
            peer=peer,
            not_logged=left_out,
        )
