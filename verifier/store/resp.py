"""A pipelined Redis connection for the hot path (RESP2 over one asyncio transport).

Every call appends its command to a write buffer that is flushed once per event-loop turn, so
all claims issued in the same turn travel in one write and their replies come back in one
read (auto-pipelining). Replies are matched to calls strictly in order through a FIFO of
futures. A caller that gives up (deadline, cancellation) leaves its future in the FIFO, so its
reply, when it arrives, is consumed by that abandoned future and can never be handed to a
later call: the stream stays in step without closing the connection.

Failing closed:

* Nothing is retried here. A lost connection fails every outstanding call (the caller answers
  503); the next call reconnects.
* Deadlines cost no timer per call: a sweeper that runs while commands are outstanding fails
  every call older than ``deadline`` with TimeoutError (its future stays queued for its reply).
* If the oldest unanswered command has waited longer than ``stall_timeout`` (the server is
  paused, the network is gone), the connection is declared dead and closed, so memory does not
  grow without bound while calls keep timing out.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis

from verifier.errors import ConfigError


class RespError(Exception):
    """An error reply from Redis (``-ERR …``), returned as a value by :meth:`call`."""

    @property
    def code(self) -> str:
        """The reply's first word, e.g. ``ERR``, ``NOSCRIPT``, ``OOM``, ``WRONGTYPE``."""
        return str(self).split(" ", 1)[0]


class ConnectionDown(ConnectionError):
    """The connection was lost, refused or declared stalled."""


class AuthFailed(ConnectionDown):
    """Redis refused the handshake's AUTH; the message is :func:`auth_failure`'s."""


# How a store URL carries credentials: said by every authentication error.
URL_FORMS = (
    "the store URL carries them as redis://:PASSWORD@host:port/db (requirepass), or "
    "redis://USER:PASSWORD@host:port/db for an ACL user (rediss:// alike)"
)


# TLS alerts a server sends when it does not take our client certificate (or got none).
_CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "UNSUPPORTED_CERTIFICATE",
)


def client_certificate_refused(exc: BaseException | None) -> str | None:
    """A one-line explanation when ``exc`` is a TLS server refusing our client certificate
    (a TLS 1.3 server says so only after the handshake, on the first read), else None."""
    if not isinstance(exc, ssl.SSLError):
        return None
    alert = str(exc.reason or "")
    if not alert.endswith(_CLIENT_CERT_ALERTS):
        return None
    return (
        f"the Redis server refused the TLS client certificate ({alert}): set "
        "VERIFIER_REDIS_CERT_FILE and VERIFIER_REDIS_KEY_FILE to a certificate and key signed "
        "by a CA the server trusts (tls-ca-cert-file)"
    )


def auth_failure(reply: RespError) -> str | None:
    """A one-line explanation when ``reply`` is Redis refusing authentication, else None.

    NOAUTH (a password is required and none was sent), WRONGPASS and the older "invalid
    password" (wrong password or user), "AUTH … called without any password configured" (the
    URL has a password this Redis does not use). Redis never repeats the password it got.
    """
    text = str(reply)
    if reply.code == "NOAUTH":
        why = "this Redis requires a password and the store URL has none"
    elif reply.code == "WRONGPASS" or text.startswith(("ERR invalid password", "ERR invalid user")):
        why = "the password (or ACL user) in the store URL is not accepted"
    elif text.startswith("ERR AUTH") and "without any password configured" in text:
        why = "the store URL has a password but this Redis requires none; remove it"
    else:
        return None
    return f"Redis authentication failed: {why} ({text.rstrip('.')}); {URL_FORMS}"


def tls_context(ca_file: str = "", cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """The TLS context of a ``rediss://`` connection: the server is verified against
    ``ca_file`` (default: the system's CAs), and ``cert_file``/``key_file`` (PEM) are the
    client certificate when Redis asks for one (``tls-auth-clients``). ConfigError naming the
    setting of a file that cannot be read."""
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"VERIFIER_REDIS_CA_FILE: cannot use {ca_file}: {err}") from err
    if cert_file:
        try:
            ctx.load_cert_chain(cert_file, key_file or None)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(
                f"VERIFIER_REDIS_CERT_FILE, VERIFIER_REDIS_KEY_FILE: cannot use {cert_file} "
                f"with {key_file}: {err}"
            ) from err
    return ctx


def pack(*args: bytes | str | int) -> bytes:
    """Encode one command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if type(a) is not bytes:
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedConnection) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=RespError)
        # (future, sent at, give up at), in the order the replies will come
        self.pending: deque[tuple[asyncio.Future[Any], float, float]] = deque()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports

    def data_received(self, data: bytes) -> None:
        reader, pending = self.reader, self.pending
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError:
                self.fail(ConnectionDown("protocol error from Redis"))
                return
            if reply is False:
                return
            if not pending:
                self.fail(ConnectionDown("unexpected reply from Redis"))
                return
            fut = pending.popleft()[0]
            if not fut.done():  # an abandoned call's reply is dropped here, in step
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        refused = client_certificate_refused(exc)
        if refused is not None:
            self.fail(AuthFailed(refused))
        else:
            self.fail(ConnectionDown(f"connection to Redis lost: {exc or 'closed by server'}"))

    def fail(self, err: Exception) -> None:
        self.lost = True
        while self.pending:
            fut = self.pending.popleft()[0]
            if not fut.done():
                fut.set_exception(err)
        self.out.clear()
        if self.transport is not None:
            self.transport.abort()
        self.owner._forget(self)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out and not self.lost and self.transport is not None:
            data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
            self.out.clear()
            self.transport.write(data)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class PipelinedConnection:
    """One auto-pipelined connection to the server named by a ``redis://``/``rediss://`` URL."""

    def __init__(
        self,
        url: str,
        *,
        deadline: float = 0.05,
        connect_timeout: float = 2.0,
        stall_timeout: float = 1.0,
        tls: ssl.SSLContext | None = None,
        greeting: Callable[[], Sequence[bytes]] | None = None,
        on_greeting: Callable[[list[Any]], None] | None = None,
    ) -> None:
        """``tls`` is the context of a ``rediss://`` URL (default: :func:`tls_context`).

        ``greeting()``: packed commands sent on every new connection right after AUTH/SELECT,
        in the same write; their replies (error replies as RespError values) go to
        ``on_greeting`` before the connection carries any call. It may raise ConnectionDown
        to refuse the connection (the store's identity check, :mod:`verifier.store.identity`).
        """
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.tls = parts.scheme == "rediss"
        self.ssl_context = (tls or tls_context()) if self.tls else None
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self.db = int(path) if path.isdigit() else 0
        self.connect_timeout = connect_timeout
        self.greeting = greeting
        self.on_greeting = on_greeting
        self.stall_timeout = stall_timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self.deadline = deadline
        self._sweep_every = max(0.002, deadline / 5)
        self._sweeper: asyncio.TimerHandle | None = None

    def _forget(self, proto: _Protocol) -> None:
        if self._proto is proto:
            self._proto = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            lambda: _Protocol(self), self.host, self.port, ssl=self.ssl_context
        )
        handshake = []
        if self.password is not None:
            auth = (
                ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            )
            handshake.append(pack(*auth))
        if self.db:
            handshake.append(pack("SELECT", self.db))
        futures = [self._send(proto, cmd) for cmd in handshake]
        greeted = [self._send(proto, cmd) for cmd in (self.greeting() if self.greeting else ())]
        for fut in greeted:
            fut.add_done_callback(_retrieve)  # a refused handshake leaves them unread
        for fut in futures:
            reply = await fut
            if isinstance(reply, RespError):
                proto.fail(ConnectionDown("Redis refused the handshake"))
                why = auth_failure(reply)
                if why is not None:
                    raise AuthFailed(why)
                raise ConnectionDown(f"Redis refused AUTH/SELECT: {reply}")
        if self.on_greeting is not None:
            replies = [await fut for fut in greeted]
            try:
                self.on_greeting(replies)
            except ConnectionDown as err:
                proto.fail(err)
                raise
        return proto

    async def _ready(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.lost:
            return proto
        if self._connecting is None:
            # One connect for all waiting callers, bounded by its own timeout (not the callers').
            task = asyncio.ensure_future(asyncio.wait_for(self._connect(), self.connect_timeout))
            self._connecting = task
            task.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, task: asyncio.Future[_Protocol]) -> None:
        self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._proto = task.result()

    def _send(
        self, proto: _Protocol, packed: bytes, deadline: float | None = None
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        now = time.monotonic()
        proto.pending.append((fut, now, now + max(deadline or 0.0, self.deadline)))
        proto.out.append(packed)
        if not proto.flush_scheduled:
            proto.flush_scheduled = True
            loop.call_soon(proto.flush)
        if self._sweeper is None and proto is self._proto:
            self._sweeper = loop.call_later(self._sweep_every, self._sweep)
        return fut

    async def call(self, packed: bytes, deadline: float | None = None) -> Any:
        """Send one packed command and return its reply (RespError for an error reply).

        Raises ConnectionDown or OSError on connection problems, and TimeoutError once the
        command has waited ``deadline`` seconds (at least the connection's) for its reply. Connecting is bounded by
        ``connect_timeout`` only: a caller wanting less applies its own (``asyncio.timeout``).
        """
        proto = self._proto
        if proto is None or proto.lost:
            proto = await self._ready()
        return await self._send(proto, packed, deadline)

    @property
    def connected(self) -> bool:
        return self._proto is not None and not self._proto.lost

    def _sweep(self) -> None:
        """Fail calls past their deadline (their replies stay queued, in step) and close a
        connection whose oldest command has gone unanswered for ``stall_timeout``."""
        self._sweeper = None
        proto = self._proto
        if proto is None or not proto.pending:
            return
        now = time.monotonic()
        oldest = proto.pending[0][1]
        if now - oldest > self.stall_timeout:
            proto.fail(ConnectionDown(f"Redis did not answer for {self.stall_timeout:g} s"))
            return
        recent = now - self.deadline  # nothing sent after this can be due (shortest deadline)
        for fut, sent, due in proto.pending:
            if sent > recent:
                break
            if due <= now and not fut.done():
                fut.set_exception(TimeoutError())
        self._sweeper = asyncio.get_running_loop().call_later(self._sweep_every, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._proto is not None:
            self._proto.fail(ConnectionDown("connection closed"))
        if self._connecting is not None:
            self._connecting.cancel()
