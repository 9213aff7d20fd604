"""A built-in no-op HTTP/1.1 server: the trivial target for ``bench calibrate``.

It answers every request with the same small ``200`` JSON body,
``{"valid":true,"reason":"ok"}``, over keep-alive connections. It does the least
work an honest HTTP server can do: find the end of the headers, honour
``Content-Length`` so the body is skipped (requests may be pipelined or split across
reads), write a fixed response. Measuring the bench (or ``wrk``) against it shows the
generator's own noise floor and ceiling.

One process, one plain ``epoll`` loop (``os.read``/``os.write`` on the descriptors, as
in ``bench.engine``): it costs less CPU per request than asyncio Protocols on uvloop,
so the target is less often what limits a calibration. A read whose bytes are exactly
those of the last read that held one whole request (and nothing else), on a connection
with nothing buffered, is answered without parsing it again: the parse would give the
same answer.

It is the target, not the generator: the engine (``bench.engine``) is the only module
that *drives* sockets; this one only serves them, always on a loopback address.

Run it in its own process with :func:`start_in_process`; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import socket
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

BODY = b'{"valid":true,"reason":"ok"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
    b"\r\n" + BODY
)
_MAX_HEADER = 64 * 1024
_READ_SIZE = 65536
_LENGTH = b"\r\ncontent-length:"


class RequestError(ValueError):
    """The bytes are not a request this server can answer: close the connection."""


def count_requests(buf: bytes, skip: int = 0) -> tuple[int, bytes, int]:
    """Complete requests in *buf*: ``(count, rest, skip)``. Pure: the server's parser.

    *skip* is how many body bytes of an earlier request are still to come (and be
    discarded). Returns how many requests are complete (each gets one response), the
    bytes of an incomplete request to keep for the next read, and the new *skip*.
    Raises :class:`RequestError` for an unreadable ``Content-Length`` or a header larger
    than 64 KiB.
    """
    count = 0
    if skip:
        if skip > len(buf):
            return 0, b"", skip - len(buf)
        buf, skip, count = buf[skip:], 0, 1
    while buf:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEADER:
                raise RequestError("request header too large")
            break
        head = buf[:end].lower()
        at = head.find(_LENGTH)
        length = 0
        if at >= 0:
            stop = head.find(b"\r\n", at + len(_LENGTH))
            value = head[at + len(_LENGTH) : stop if stop >= 0 else len(head)].strip()
            if not value.isdigit():
                raise RequestError(f"bad Content-Length {value[:20]!r}")
            length = int(value)
        buf = buf[end + 4 :]
        if length > len(buf):
            return count, b"", length - len(buf)
        buf = buf[length:]
        count += 1
    return count, buf, 0


class _Server:
    """The listening socket, its connections and the loop."""

    def __init__(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        self.listener = listener
        self.poller = select.epoll()
        self.poller.register(listener.fileno(), select.EPOLLIN)
        self.socks: dict[int, socket.socket] = {}
        # Per-connection parser state, only while not idle: fd -> (rest, skip).
        self.partial: dict[int, tuple[bytes, int]] = {}
        self.out: dict[int, bytes] = {}  # responses the socket has not taken yet
        self.known = b""  # the last read that was exactly one whole request

    def serve_forever(self) -> None:
        listen_fd, poll, read, write = self.listener.fileno(), self.poller.poll, os.read, os.write
        partial, out, readable = self.partial, self.out, select.EPOLLIN
        while True:
            for fd, mask in poll():
                if fd == listen_fd:
                    self._accept()
                    continue
                if mask != readable and not self._unusual(fd, mask):
                    continue
                try:
                    data = read(fd, _READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError:
                    self._close(fd)
                    continue
                if not data:
                    self._close(fd)
                elif data == self.known and fd not in partial and fd not in out:
                    try:  # the hot path: the same request again
                        written = write(fd, RESPONSE)
                    except OSError:
                        self._close(fd)
                        continue
                    if written != len(RESPONSE):
                        self._queue(fd, RESPONSE[written:])
                else:
                    self._received(fd, data)

    def _received(self, fd: int, data: bytes) -> None:
        rest, skip = self.partial.pop(fd, (b"", 0))
        fresh = not rest and not skip
        try:
            count, rest, skip = count_requests(rest + data if rest else data, skip)
        except RequestError:
            self._close(fd)
            return
        if rest or skip:
            self.partial[fd] = rest, skip
        elif fresh and count == 1:
            self.known = data
        if count:
            self._respond(fd, RESPONSE * count)

    def _respond(self, fd: int, data: bytes) -> None:
        if fd in self.out:  # still sending earlier responses: keep the order
            self.out[fd] += data
            return
        written = self._write(fd, data)
        if written is not None and written != len(data):
            self._queue(fd, data[written:])

    def _write(self, fd: int, data: bytes) -> int | None:
        """Bytes the socket took (0 if it is full); None if the connection failed (closed)."""
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            self._close(fd)
            return None

    def _queue(self, fd: int, data: bytes) -> None:
        self.out[fd] = data
        self.poller.modify(fd, select.EPOLLIN | select.EPOLLOUT)

    def _unusual(self, fd: int, mask: int) -> bool:
        """Writable (queued responses) or error: handle it; True if readable too."""
        if mask & select.EPOLLOUT and fd in self.out:
            data = self.out.pop(fd)
            written = self._write(fd, data)
            if written is None:
                return False
            if written != len(data):
                self.out[fd] = data[written:]
            else:
                self.poller.modify(fd, select.EPOLLIN)
        return bool(mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR))

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of descriptors: try again on the next event
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socks[sock.fileno()] = sock
            self.poller.register(sock.fileno(), select.EPOLLIN)

    def _close(self, fd: int) -> None:
        sock = self.socks.pop(fd, None)
        if sock is None:
            return
        self.partial.pop(fd, None)
        self.out.pop(fd, None)
        self.poller.unregister(fd)
        sock.close()


def serve(sock: socket.socket, ready: Callable[[], object] | None = None) -> None:
    """Serve on an already bound, listening socket until interrupted.

    ``ready`` is called once the server is accepting and answering.
    """
    server = _Server(sock)
    if ready is not None:
        ready()
    server.serve_forever()


def _run(sock: socket.socket, ready: Callable[[], object] | None = None) -> None:
    try:
        serve(sock, ready)
    except KeyboardInterrupt:
        pass


@dataclass
class RunningServer:
    """A no-op server in a child process; ``url`` is where to point the bench."""

    process: BaseProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/verify"

    def stop(self) -> None:
        """Terminate the child process and wait for it."""
        self.process.terminate()
        self.process.join(timeout=5)


def start_in_process(port: int = 0) -> RunningServer:
    """Bind 127.0.0.1:*port* (0 = any free port) here, then serve from a fresh process.

    Returns once the child is answering (so its start-up is not measured); raises
    RuntimeError if it is not within 10 seconds.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    process = ctx.Process(
        target=_run, args=(sock, ready.set), name="bench-noop-server", daemon=True
    )
    process.start()
    bound_port = sock.getsockname()[1]
    sock.close()
    server = RunningServer(process=process, port=bound_port)
    if not ready.wait(10):
        server.stop()
        raise RuntimeError("the no-op server did not start within 10 s")
    return server


def serve_foreground(port: int) -> None:
    """Serve on 127.0.0.1:*port* in this process until interrupted (for ``wrk`` runs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    print(f"no-op server on http://127.0.0.1:{sock.getsockname()[1]}/v1/verify", flush=True)
    _run(sock)


if __name__ == "__main__":
    import sys

    serve_foreground(int(sys.argv[1]) if len(sys.argv) > 1 else 8089)
