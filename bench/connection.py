"""One keep-alive connection's side of the conversation: the per-response hot path.

No sockets here: the engine (``bench.engine``) gives each :class:`Connection` its
descriptor number, a ``write`` function (``os.write`` bound to the descriptor: a C call,
no Python frame; :meth:`Connection.send` wraps it) and two hooks, for a request the
socket could not take at once and for dropping the connection.
:meth:`Connection.received` does, per response: join partial reads, recognise the verdict
(same bytes as the previous response, or a small cache, else
:func:`bench.http1.parse_response`), free the connection and send the next request
*before* book-keeping, then record latency, service time and the oracle's verdict.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.dispatch import Dispatcher
from bench.http1 import ProtocolError, parse_response

_CACHE_LIMIT = 4096


class Connection:
    """One keep-alive connection; ``index`` is the request in flight (-1 when idle)."""

    __slots__ = ("run", "fd", "write", "out", "buf", "alive", "index", "intended", "sent",
                 "_on_rest", "_on_drop")  # fmt: skip

    def __init__(
        self,
        run: Dispatcher,
        fd: int = -1,
        write: Callable[[bytes], int] = len,
        on_rest: Callable[[Connection], object] | None = None,
        on_drop: Callable[[Connection, str], object] | None = None,
    ) -> None:
        self.run, self.fd, self.write = run, fd, write
        self._on_rest, self._on_drop = on_rest, on_drop
        self.out = self.buf = b""
        self.alive = True
        self.index = -1
        self.intended = self.sent = 0

    def received(self, data: bytes, now: int) -> None:
        """Bytes arrived (``now`` = when the poll returned): the per-response hot path."""
        run = self.run
        if self.buf:
            data = self.buf + data
            self.buf = b""
        verdict: str | None
        if data == run.last_response:  # a memcmp: cheaper than hashing for the cache
            verdict = run.last_verdict
        else:
            verdict = run.cache.get(data) or self._parse(data)
            if verdict is None:
                return
            run.last_response, run.last_verdict = data, verdict
        index, intended, sent = self.index, self.intended, self.sent
        if index < 0:
            run.protocol_error(self, "response with no request in flight")
            return
        run.inflight -= 1
        self.index = -1
        # Free the connection first: the next request goes out before book-keeping.
        if run.closed_loop:
            run.refills.append(self)
        else:
            if now >= run.next_due:
                run.release(now)
            if run.backlog:
                next_index, next_intended = run.backlog.popleft()
                run.send(self, next_index, next_intended)
            else:
                run.free.append(self)
        if intended >= run.measure_start:
            if not run.closed_loop:
                run.service.record(now - sent)
            run.sec_completed += 1
            expected = run.expected[index]
            if verdict == expected:
                run.sec_by_expected[expected].record(now - intended)
            else:
                run.mismatch(index, expected, verdict, data, now - intended)
        else:
            run.warmup_completed += 1

    def _parse(self, data: bytes) -> str | None:
        try:
            parsed = parse_response(data)
        except ProtocolError as err:
            self.run.protocol_error(self, str(err))
            return None
        if parsed is None:
            self.buf = data
            return None
        consumed, verdict = parsed
        if consumed != len(data):
            self.run.protocol_error(self, "bytes after the response")
            return None
        cache = self.run.cache
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[data] = verdict
        return verdict

    def send(self, data: bytes) -> None:
        """Write one request; what the socket does not take at once goes out when it can.

        A failed write drops the connection (which fails the request in flight).
        """
        try:
            written = self.write(data)
        except OSError as err:
            self.drop(f"write failed: {err}")
            return
        if written != len(data):  # rare: a body larger than the socket's send buffer
            self.out = data[written:]
            if self._on_rest is not None:
                self._on_rest(self)

    def drop(self, reason: str) -> None:
        """Close this connection (the engine replaces it while the run is sending)."""
        if self._on_drop is not None:
            self._on_drop(self, reason)
        else:
            self.alive = False
            self.run.lost(self, reason)
