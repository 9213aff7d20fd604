"""One keep-alive connection's side of the conversation.

No sockets here: the engine (``bench.engine``) gives each :class:`Connection` its
descriptor number, a ``write`` function (``os.write`` bound to the descriptor: a C call,
no Python frame; :meth:`Connection.send` wraps it) and two hooks, for a request the
socket could not take at once and for dropping the connection. The per-response hot path
is :meth:`bench.dispatch.Dispatcher.responses`, once per poll; a response that is not
byte for byte the previous one comes here (:meth:`Connection.recognise`: join partial
reads, a small cache, else :func:`bench.http1.parse_response`).
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

    def recognise(self, data: bytes) -> tuple[bytes, str] | None:
        """The whole response and its verdict, for bytes that are not simply the last
        response again (:meth:`Dispatcher.responses` checks that first): joins a partial
        read, looks in the cache, else parses. ``None`` when the response is not complete
        yet (the bytes are kept for the next read) or unreadable (the connection is dropped).
        """
        if self.buf:
            data = self.buf + data
            self.buf = b""
        verdict = self.run.cache.get(data) or self._parse(data)
        return None if verdict is None else (data, verdict)

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
            self.rest(data, written)

    def rest(self, data: bytes, written: int) -> None:
        """The socket took only the first *written* bytes of *data*: the rest goes out when
        it can (the engine watches for the socket to become writable)."""
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
