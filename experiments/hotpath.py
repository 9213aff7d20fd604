"""CPU cost of the engine's per-request work, measured without sockets.

Drives the real :class:`bench.connection.Connection` / :class:`bench.dispatch.Dispatcher` code
with connections whose ``write`` is ``len`` (sends nothing) and a canned response, so the
figure is the Python hot path alone: release from the pacer, queueing, the write call,
response cache, oracle check and histogram records. Kernel socket work comes on top
(compare the process CPU per request that ``bench calibrate`` prints, and ``wrk``'s, on the
same machine).

    python experiments/hotpath.py [REQUESTS]
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from bench.connection import Connection
from bench.dispatch import Dispatcher, ShardPlan, clock
from bench.http1 import build_request
from bench.noop_server import RESPONSE
from bench.pacer import ConstantPacer


@dataclass(frozen=True)
class HotPathCost:
    """CPU microseconds per request for the open-loop and closed-loop hot paths."""

    open_loop_us: float
    closed_loop_us: float
    requests: int


def _measure(requests: int, connections: int, open_loop: bool) -> float:
    body = b"v4.public." + b"A" * 200
    request = build_request("127.0.0.1", 8080, "/v1/verify", "scanner", "text/plain", body)
    # A pacer far faster than the loop keeps a backlog, so every request is released by
    # the pacer, queued, sent from the queue and completed: the whole open-loop path.
    plan = ShardPlan(
        host="127.0.0.1",
        port=8080,
        requests=[request] * requests,
        expected=["ok"] * requests,
        connections=connections,
        pacer=ConstantPacer(5_000_000.0) if open_loop else None,
        duration_ns=3600 * 1_000_000_000,
    )
    run = Dispatcher(plan, None)
    conns = [Connection(run) for _ in range(connections)]  # write() is len(): sends nothing
    run.free.extend(conns)
    run.begin(clock())
    started = time.process_time_ns()
    busy: list[Connection] = []
    while run.sending or busy:
        # One loop iteration as in the engine: one clock reading, every busy connection
        # gets its response (the closed loop refills the freed connections in that call).
        run.responses([(conn, RESPONSE) for conn in busy], clock())
        busy = [c for c in conns if c.index >= 0]
        if not busy and run.sending:
            run.release(clock())
            busy = [c for c in conns if c.index >= 0]
    elapsed = time.process_time_ns() - started
    return elapsed / 1000 / max(1, run.sec_completed)  # no second was closed: all here


def measure(requests: int = 200_000, connections: int = 32) -> HotPathCost:
    """Run both hot paths over *requests* canned responses; best of three rounds each."""
    open_us = min(_measure(requests, connections, True) for _ in range(3))
    closed_us = min(_measure(requests, connections, False) for _ in range(3))
    return HotPathCost(open_us, closed_us, requests)


def main() -> None:
    """Print the hot-path cost per request."""
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    cost = measure(requests)
    print(f"hot path, open loop:   {cost.open_loop_us:.2f} CPU-µs/request")
    print(f"hot path, closed loop: {cost.closed_loop_us:.2f} CPU-µs/request")


if __name__ == "__main__":
    main()
