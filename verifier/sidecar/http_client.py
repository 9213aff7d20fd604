"""A lean HTTP/1.1 client for one origin: a pool of kept-alive connections, one request at a
time on each, responses read with llhttp (httptools), as the fast path reads requests.

The sidecar sends every scan through here, so what a forward costs is what the sidecar adds to
a scan: a request head written by hand, one ``write``, and the parser's callbacks. It knows
only what :mod:`verifier.sidecar.upstream` needs: fixed-length bodies out, any framing in
(``Content-Length`` or chunked), ``Connection: close`` honoured. Errors: :class:`ConnectFailed`
when no connection can be made, another ``OSError`` (a ``ConnectionError``) when one breaks
before its response is complete; the caller bounds the time with ``asyncio.timeout``.
A connection whose request was cancelled (a timeout) is closed, never reused.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools

MAX_IDLE = 64  # kept-alive connections kept in the pool


class ConnectFailed(OSError):
    """No connection could be made (refused, unreachable, TLS handshake failed)."""


class Response(NamedTuple):
    """An answer as it came: status, body, and the Content-Type header."""

    status: int
    body: bytes
    content_type: str


class _Connection(asyncio.Protocol):
    """One connection; :meth:`send` writes a request and waits for its response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[Response] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._ctype = b""
        self._header = b""

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(ConnectionError(f"unreadable response: {err}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError("the server closed the connection"))

    # -- parser callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self._ctype = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        status = self._parser.get_status_code()
        if not self._parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(status, b"".join(self._body), self._ctype.decode("latin-1")))

    # -- use ------------------------------------------------------------------------------

    async def send(self, request: bytes) -> Response:
        assert self.transport is not None and self._waiter is None
        self._body, self._ctype = [], b""
        self._parser = httptools.HttpResponseParser(self)
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, err: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(err)


class Pool:
    """Connections to the origin of ``base_url`` (http:// or https://)."""

    def __init__(self, base_url: str, max_idle: int = MAX_IDLE) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the URL must be http://host[:port] or https://host[:port]")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        default = self.port == (443 if self.ssl else 80)
        self.host_header = self.host if default else f"{self.host}:{self.port}"
        self.max_idle = max_idle
        self._idle: list[_Connection] = []

    def head(self, method: str, path: str, headers: dict[str, str], length: int | None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def request(self, request: bytes, *, fresh: bool = False) -> Response:
        """Send ``request`` (head and body) on an idle connection, or a new one when there is
        none or ``fresh``."""
        conn = None
        while not fresh and self._idle:
            candidate = self._idle.pop()
            if not candidate.closed:
                conn = candidate
                break
        if conn is None:
            loop = asyncio.get_running_loop()
            try:
                _, conn = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl
                )
            except (OSError, ssl.SSLError) as err:
                raise ConnectFailed(f"cannot connect to {self.host_header}: {err}") from err
        try:
            response = await conn.send(request)
        except BaseException:
            conn.close()  # cancelled or broken: its response may still come; never reuse
            raise
        if not conn.closed and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        return response

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle = []
