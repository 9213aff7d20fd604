"""One cluster node as the cluster store sees it: a pipelined connection, and its WAIT group.

:class:`NodeConnection` is :class:`verifier.store.resp.PipelinedConnection` plus two things the
cluster needs and plain calls cannot give: commands that must follow each other on one TCP
stream (``ASKING`` then the command it unlocks; claims then the ``WAIT`` that confirms them),
and knowing which stream a reply came on. A stream is the connection's current protocol object;
if it is lost, every command queued on it fails together, so "same stream" is a guarantee.

Group commit of replica confirmations (``VERIFIER_MIN_REPLICAS``). ``WAIT n timeout`` counts the
replicas that have acknowledged every write *this client* made before it. So the WAIT must go
on the very stream the claims went on (a reconnected stream has made no writes, and its WAIT
would confirm nothing), and after them. :meth:`Node.confirm` appends one WAIT per event-loop
turn behind all claims queued on a stream in that turn; each claim awaits that WAIT's answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from verifier.store.resp import ConnectionDown, PipelinedConnection, pack
from verifier.store.slots import Address

Stream = Any  # the connection's protocol object; compared by identity only


class NodeConnection(PipelinedConnection):
    """A pipelined connection that can queue several commands back to back on one stream."""

    def stream(self) -> Stream | None:
        """The live stream, or None when not connected."""
        proto = self._proto
        return proto if proto is not None and not proto.lost else None

    async def open_stream(self) -> Stream:
        """The live stream, connecting first if needed (bounded by ``connect_timeout``)."""
        return self.stream() or await self._ready()

    def send_on(
        self, stream: Stream, packed: bytes, deadline: float | None = None
    ) -> asyncio.Future[Any]:
        """Queue ``packed`` on ``stream`` now (after everything queued on it so far).

        The future fails with ConnectionDown if the stream is no longer the live one.
        """
        proto = self._proto
        if proto is None or proto.lost or stream is not proto:
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(ConnectionDown("the connection was replaced"))
            return fut
        return self._send(proto, packed, deadline)


class Node:
    """A cluster node: its address, its connection, and the WAIT group of the current turn."""

    __slots__ = (
        "address",
        "conn",
        "failed_at",
        "checked_at",
        "_replicas",
        "_wait",
        "_wait_stream",
        "_wait_end",
    )

    def __init__(self, address: Address, conn: NodeConnection, replicas: int) -> None:
        self.address = address
        self.conn = conn
        self.failed_at = 0.0  # monotonic time of the last connection failure, 0 when none
        self.checked_at = 0.0  # monotonic time its identity was last read (see cluster_identity)
        self._replicas = replicas
        self._wait: asyncio.Future[int] | None = None
        self._wait_stream: Stream | None = None
        self._wait_end = 0.0

    @property
    def host(self) -> str:
        return self.address[0]

    def confirm(self, stream: Stream, end: float) -> asyncio.Future[int]:
        """How many replicas a WAIT queued after this call on ``stream`` reports.

        Call it right after queueing a write on ``stream``. The WAIT goes out once per
        event-loop turn for every caller of that turn, with a server-side timeout that ends at
        the first caller's ``end`` (monotonic seconds; later callers of the turn end later, so
        this is the strictest). The future fails with TimeoutError at ``end``, or with
        ConnectionDown if the stream is lost first; callers shield it (it is shared).
        """
        if self._wait is None or self._wait_stream is not stream:
            loop = asyncio.get_running_loop()
            group: asyncio.Future[int] = loop.create_future()
            group.add_done_callback(_retrieve)  # it may end with nobody awaiting it
            timer = loop.call_later(max(0.0, end - time.monotonic()), _expire, group)
            group.add_done_callback(lambda _: timer.cancel())
            self._wait, self._wait_stream, self._wait_end = group, stream, end
            loop.call_soon(self._send_wait)
        return self._wait

    def _send_wait(self) -> None:
        group, stream = self._wait, self._wait_stream
        self._wait = self._wait_stream = None
        assert group is not None
        if group.done():
            return
        # WAIT 0 would block for ever: never less than 1 ms.
        timeout_ms = max(1, int((self._wait_end - time.monotonic()) * 1000))
        reply = self.conn.send_on(stream, pack("WAIT", self._replicas, timeout_ms))
        reply.add_done_callback(lambda done: _settle(group, done))


def _retrieve(fut: asyncio.Future[int]) -> None:
    if not fut.cancelled():
        fut.exception()


def _expire(group: asyncio.Future[int]) -> None:
    if not group.done():
        group.set_exception(TimeoutError())


def _settle(group: asyncio.Future[int], reply: asyncio.Future[Any]) -> None:
    if reply.cancelled():
        err: BaseException | None = ConnectionDown("WAIT was cancelled")
    else:
        err = reply.exception()
    if group.done():
        return
    if err is not None:
        group.set_exception(err)
    else:
        value = reply.result()
        # An error reply or anything odd counts as no confirmation at all.
        group.set_result(value if isinstance(value, int) else -1)
