"""The open-loop HTTP/1.1 load generator: the only bench module that touches sockets.

One process runs one epoll loop written for this job (Linux), with ``C`` keep-alive
connections opened before the clock starts, each with at most one request in flight (no
pipelining). Each iteration: ``timeout = dispatcher.tick()`` (release due requests, close
seconds, do a slice of book-keeping; in closed loop only when a second or the end is due),
``epoll.poll(timeout)``, one clock reading, ``os.read`` on each readable connection, then
one ``Dispatcher.responses`` call with what was read (the per-response hot path, see
:mod:`bench.dispatch`); in closed loop it refills the freed connections together at the
end, as wrk does. Writes are ``os.write`` on the descriptor
(:meth:`Connection.send`): one ``read`` and one ``write`` per request, one ``epoll_wait``
shared by every response of a poll, no ``epoll_ctl`` on the hot path. We measured this
loop against asyncio Protocols on uvloop: it costs less CPU per request (numbers in
``docs/PERFORMANCE.md``, section 3).

Open loop (a pacer is given): request *n* is due at ``start + pacer offset n``. When it is
due it goes out on a free connection, or waits in a FIFO for the next connection to free
up. Latency is measured from the *intended* time, so that wait counts (no coordinated
omission); service time from the actual write; send lag is actual − intended. epoll sleeps
in whole milliseconds, so the loop sleeps until ~2 ms before the next due time and then
spins (``poll(0)``); every response also releases whatever has come due, so the pacing
error is microseconds. Spinning keeps one core busy per process; ``spin=False`` instead
blocks in ``select`` (microsecond timeout) until a response arrives or 200 µs before the
next due time: less CPU at modest rates, but waking an idle CPU shows up as send lag.

Closed loop (no pacer, ``--max``): every connection sends its next request as soon as its
response is in; latency = service time and there is no send lag.

A response's completion time is when ``poll`` returned it. Responses are parsed minimally
(:mod:`bench.http1`); one identical to the previous response, or found in a small cache,
skips the parse. The hot path writes the next request before book-keeping the last one.
"""

from __future__ import annotations

import errno
import gc
import os
import select
import socket
from collections.abc import Callable
from functools import partial

from bench.connection import Connection
from bench.dispatch import QUIET_POLL_S, Dispatcher, ShardPlan, clock
from bench.shard import SecondStats, ShardResult

_READ_SIZE = 16384
_FD_SETSIZE = 1024
_RETRY_NS = 100_000_000


class EngineError(RuntimeError):
    """The load could not be generated at all (e.g. the target refused every connection)."""


class _Engine:
    """Sockets and the loop for one :class:`Dispatcher`."""

    def __init__(self, plan: ShardPlan, progress: Callable[[SecondStats], None] | None) -> None:
        try:
            found = socket.getaddrinfo(plan.host, plan.port, type=socket.SOCK_STREAM)
        except OSError as err:
            raise EngineError(f"cannot resolve {plan.host}: {err}") from err
        self.family: socket.AddressFamily = found[0][0]
        self.address: tuple[str, int] = found[0][4][:2]  # type: ignore[assignment]
        self.plan = plan
        self.run = Dispatcher(plan, progress)
        self.poller = select.epoll()
        self.conns: dict[int, Connection] = {}
        self.socks: dict[int, socket.socket] = {}
        self.connecting: dict[int, socket.socket] = {}
        self.fds: list[int] = []
        self.missing, self.retry_at = 0, 0
        if not plan.spin:
            self.run.idle_wait = self._idle_wait

    def open_all(self) -> None:
        """Open every connection before the clock starts (blocking, 5 s timeout each)."""
        for _ in range(self.plan.connections):
            try:
                sock = socket.create_connection(self.address, timeout=5)
            except OSError as err:
                self.close_all()
                raise EngineError(
                    f"cannot connect to {self.plan.host}:{self.plan.port}: {err}"
                ) from err
            self.run.free.append(self._adopt(sock))

    def _adopt(self, sock: socket.socket) -> Connection:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fd = sock.fileno()
        conn = Connection(self.run, fd, partial(os.write, fd), self._want_write, self.drop)
        self.socks[fd] = sock
        self.conns[conn.fd] = conn
        self.fds.append(conn.fd)
        self.poller.register(conn.fd, select.EPOLLIN)
        return conn

    def loop(self) -> None:
        """Run until the dispatcher says it is finished."""
        run, poll, read, conns = self.run, self.poller.poll, os.read, self.conns
        readable, quiet = select.EPOLLIN, QUIET_POLL_S
        now = 0
        while not run.finished:
            # Closed loop: between seconds there is nothing to tick (see Dispatcher.tick).
            timeout = run.tick() if now >= run.quiet_until else quiet
            if self.missing and run.sending:
                self._reconnect()
            events = poll(timeout)
            now = clock()
            if not events:
                continue
            batch = []
            for fd, mask in events:
                try:
                    conn = conns[fd]
                except KeyError:  # not a connection yet: a reconnect finished (or failed)
                    self._connected(fd)
                    continue
                if mask != readable and not self._unusual(conn, mask):
                    continue
                try:
                    data = read(fd, _READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError as err:
                    self.drop(conn, f"connection lost: {err}")
                    continue
                if data:
                    batch.append((conn, data))
                else:
                    self.drop(conn, "connection lost: closed by peer")
            if batch:
                run.responses(batch, now)

    def _want_write(self, conn: Connection) -> None:
        self.poller.modify(conn.fd, select.EPOLLIN | select.EPOLLOUT)

    def _unusual(self, conn: Connection, mask: int) -> bool:
        """Writable (a long request's rest) or error: handle it; True if readable too."""
        if mask & select.EPOLLOUT and conn.out:
            try:
                written = os.write(conn.fd, conn.out)
            except OSError as err:
                self.drop(conn, f"write failed: {err}")
                return False
            conn.out = conn.out[written:]
            if not conn.out:
                self.poller.modify(conn.fd, select.EPOLLIN)
        return bool(mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR))

    def drop(self, conn: Connection, reason: str) -> None:
        """Close *conn*, fail its request, and (while sending) open a replacement."""
        if not conn.alive:
            return
        conn.alive = False
        self.conns.pop(conn.fd, None)
        self.fds.remove(conn.fd)
        self.poller.unregister(conn.fd)
        self.socks.pop(conn.fd).close()
        self.run.lost(conn, reason)
        if self.run.sending:
            self.missing += 1

    def _reconnect(self) -> None:
        if clock() < self.retry_at:
            return
        while self.missing:
            sock = socket.socket(self.family, socket.SOCK_STREAM)
            sock.setblocking(False)
            error = sock.connect_ex(self.address)
            if error == 0:
                self.run.add(self._adopt(sock))
            elif error == errno.EINPROGRESS:  # epoll says when it is done
                self.connecting[sock.fileno()] = sock
                self.poller.register(sock.fileno(), select.EPOLLOUT)
            else:
                sock.close()
                self.run.connect_failed(f"reconnect failed: {os.strerror(error)}")
                self.retry_at = clock() + _RETRY_NS
                return
            self.missing -= 1

    def _connected(self, fd: int) -> None:
        sock = self.connecting.pop(fd, None)
        if sock is None:  # a connection dropped earlier in this batch of events
            return
        self.poller.unregister(fd)
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            sock.close()
            self.run.connect_failed(f"reconnect failed: {os.strerror(error)}")
            self.missing += 1
            self.retry_at = clock() + _RETRY_NS
            return
        self.run.add(self._adopt(sock))

    def _idle_wait(self, timeout_s: float) -> object:
        # select takes a microsecond timeout where epoll rounds to milliseconds.
        if self.fds and max(self.fds) < _FD_SETSIZE:
            try:
                return select.select(self.fds, (), (), timeout_s)
            except (OSError, ValueError):  # a descriptor closed under us: just spin
                return None
        return None

    def close_all(self) -> None:
        """Close every socket (after the run, or when it cannot start)."""
        for conn in self.conns.values():
            conn.alive = False
        for sock in [*self.socks.values(), *self.connecting.values()]:
            sock.close()
        self.conns.clear()
        self.socks.clear()
        self.connecting.clear()
        self.poller.close()


def run_shard(
    plan: ShardPlan,
    *,
    start_at: Callable[[], int] | None = None,
    progress: Callable[[SecondStats], None] | None = None,
) -> ShardResult:
    """Generate the load described by *plan* and return what was measured.

    Connects first; then ``start_at()`` (if given) returns the common start time on the
    :data:`~bench.dispatch.clock` (how several processes start together), else the run
    starts at once. ``progress`` is called with each completed second of the window.
    """
    engine = _Engine(plan, progress)
    engine.open_all()
    # The hot path makes no reference cycles, but allocates enough for the cyclic GC to
    # run often and walk the (large) request list each time: freeze what exists, pause it.
    gc.collect()
    gc.freeze()
    was_enabled = gc.isenabled()
    gc.disable()
    before = os.times()
    try:
        engine.run.begin(start_at() if start_at is not None else clock() + 1_000_000)
        engine.loop()
    finally:
        after = os.times()
        engine.close_all()
        if was_enabled:
            gc.enable()
        gc.unfreeze()
    result = engine.run.result()
    result.cpu_user_s = after.user - before.user
    result.cpu_system_s = after.system - before.system
    return result


__all__ = ["EngineError", "ShardPlan", "clock", "run_shard"]
