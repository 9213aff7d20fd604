"""A small connection pool for the Redis store, built for failing closed.

Why not redis-py's pools: in redis-py 8 their checkout check for dead or dirty connections is
skipped unless maintenance notifications are switched off; their release awaits a lock, so a
cancellation arriving then can leak the connection; and a connect is cut short by the caller's
deadline, so a burst of timeouts throws away every half-made connection and keeps the pool cold.
What this pool does instead:

* At most ``size`` connections, handed out under an ``asyncio.Semaphore``.
* :meth:`release` always gives the slot back. A connection not known to be in step (its call
  failed, timed out or was cancelled) is closed first, so a reply still on its way is never read
  by a later call. On checkout, a connection with unread bytes or a closed socket (server
  restarted) is reconnected.
* A connect runs in a task of its own, bounded by ``connect_timeout``, not by the caller's
  deadline: if the caller gives up, the new connection still joins the pool. Otherwise a burst
  of timeouts would throw away every half-made connection and keep the pool cold.

Connections are redis-py ``Connection`` objects (RESP, TLS, AUTH, SELECT) with retries off.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


class Pool:
    """Connections to the Redis server named by ``url`` (``redis://`` or ``rediss://``)."""

    def __init__(self, url: str, *, size: int, connect_timeout: float) -> None:
        kwargs: dict[str, Any] = dict(parse_url(url))
        self._connection_class: type[AbstractConnection] = kwargs.pop(
            "connection_class", Connection
        )
        self._kwargs = {
            **kwargs,
            # Calls are bounded by the caller's asyncio.timeout and connects by our own; a socket
            # timeout on top would only add a task per send.
            "socket_timeout": None,
            "socket_connect_timeout": connect_timeout,
            "retry": Retry(NoBackoff(), 0),  # redis-py's default retries 10 times
            "retry_on_timeout": False,
            "retry_on_error": [],
            "health_check_interval": 0,
        }
        self._connect_timeout = connect_timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[AbstractConnection] = []
        self._closed = False
        self._closing: set[asyncio.Future[None]] = set()  # keeps late closes from being GC'd

    async def acquire(self) -> AbstractConnection:
        """A connected connection in step with the server; waits while all are in use."""
        await self._slots.acquire()
        conn = self._idle.pop() if self._idle else self._connection_class(**self._kwargs)
        try:
            # Unread bytes (should not happen) or EOF (server gone): start this one afresh.
            if conn.is_connected and await conn.can_read():
                await conn.disconnect(nowait=True)
        except BaseException:
            await self.release(conn, in_step=False)
            raise
        if conn.is_connected:
            return conn
        connecting = asyncio.ensure_future(self._connect(conn))
        try:
            await asyncio.shield(connecting)
        except asyncio.CancelledError:
            # The caller gave up; the connect goes on and hands back the slot when done.
            connecting.add_done_callback(functools.partial(self._connected_late, conn))
            raise
        except BaseException:
            await self.release(conn, in_step=False)
            raise
        return conn

    async def _connect(self, conn: AbstractConnection) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                await conn.connect()
        except BaseException:
            await conn.disconnect(nowait=True)  # the handshake may be half done
            raise

    def _connected_late(self, conn: AbstractConnection, connecting: asyncio.Future[None]) -> None:
        if not connecting.cancelled() and connecting.exception() is None:
            if self._closed:
                self._closing.add(asyncio.ensure_future(conn.disconnect(nowait=True)))
                self._closing = {task for task in self._closing if not task.done()}
            else:
                self._idle.append(conn)
        self._slots.release()

    async def release(self, conn: AbstractConnection, *, in_step: bool) -> None:
        """Give ``conn`` back; unless ``in_step``, close its socket first."""
        try:
            if not in_step or self._closed:
                await conn.disconnect(nowait=True)  # closes without waiting for the peer
        finally:
            # Keep the slot count right even if interrupted; never keep a doubtful socket.
            if in_step or not conn.is_connected:
                self._idle.append(conn)
            self._slots.release()

    async def close(self) -> None:
        """Close idle connections now, and busy ones as they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect(nowait=True)
