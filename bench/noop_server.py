"""A built-in no-op HTTP/1.1 server: the trivial target for ``bench calibrate``.

It answers every request with the same small ``200`` JSON body,
``{"valid":true,"reason":"ok"}``, over keep-alive connections. It does the least
work an honest HTTP server can do: find the end of the headers, honour
``Content-Length`` so the body is skipped, write a fixed response. Measuring the
bench (or ``wrk``) against it shows the generator's own noise floor and ceiling.

It is the target, not the generator: the engine (``bench.engine``) is the only module
that *drives* sockets; this one only serves them, always on a loopback address.

Run it in its own process with :func:`start_in_process`; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import cast

BODY = b'{"valid":true,"reason":"ok"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
    b"\r\n" + BODY
)
_MAX_HEADER = 64 * 1024


class NoopProtocol(asyncio.Protocol):
    """Answers each complete request on the connection with :data:`RESPONSE`."""

    __slots__ = ("_transport", "_buf", "_skip")

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._skip = 0  # body bytes still to discard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        transport = self._transport
        assert transport is not None
        while True:
            if self._skip:
                taken = min(self._skip, len(buf))
                self._skip -= taken
                buf = buf[taken:]
                if self._skip:
                    break
                transport.write(RESPONSE)
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEADER:
                    transport.close()
                break
            head = buf[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 17)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            buf = buf[end + 4 :]
            if length <= len(buf):
                buf = buf[length:]
                transport.write(RESPONSE)
            else:
                self._skip = length - len(buf)
                buf = b""
        self._buf = buf


async def serve(sock: socket.socket, ready: Callable[[], object] | None = None) -> None:
    """Serve :class:`NoopProtocol` on an already bound, listening socket until cancelled.

    ``ready`` is called once the server is accepting and answering.
    """
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NoopProtocol, sock=sock, backlog=1024)
    async with server:
        if ready is not None:
            ready()
        await server.serve_forever()


def _run(sock: socket.socket, ready: Callable[[], object] | None = None) -> None:
    try:
        import uvloop

        uvloop.run(serve(sock, ready))
    except ImportError:
        asyncio.run(serve(sock, ready))
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
