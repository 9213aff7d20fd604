"""The least a Python load generator can do: the floor under ``bench calibrate --max``.

A closed loop like the bench's, against the same no-op server, with the same request, but
nothing else: no oracle check, no histogram, no clock per response, no progress. Reads
every response a poll returns, then writes the next request on each of those connections
(as the bench and wrk do). What it reaches is what CPython's own per-call costs around
``epoll``/``read``/``write`` allow; the bench's distance from it is the price of checking
and timing every answer. ``scripts/vs-wrk`` runs it as the variant ``minimal``.

    python experiments/minimal_client.py CONNECTIONS SECONDS [PORT]

Prints one JSON line: ``achieved_rps`` and the process's user and system CPU-µs per request.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time

REQUEST = (
    b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer calibrate\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 19\r\n\r\nv4.public.calibrate"
)


def main() -> None:
    connections, seconds = int(sys.argv[1]), float(sys.argv[2])
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 8095
    poller, socks = select.epoll(), []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        poller.register(sock.fileno(), select.EPOLLIN)
        socks.append(sock)
    read, write, poll, clock = os.read, os.write, poller.poll, time.monotonic_ns
    for sock in socks:
        write(sock.fileno(), REQUEST)
    done, started, before = 0, clock(), os.times()
    end = started + int(seconds * 1e9)
    while clock() < end:
        ready = []
        for fd, _ in poll(1):
            read(fd, 16384)
            ready.append(fd)
        for fd in ready:
            write(fd, REQUEST)
        done += len(ready)
    after, elapsed = os.times(), (clock() - started) / 1e9
    print(
        json.dumps(
            {
                "achieved_rps": done / elapsed,
                "user_us": (after.user - before.user) / done * 1e6,
                "system_us": (after.system - before.system) / done * 1e6,
            }
        )
    )


if __name__ == "__main__":
    main()
