"""User-space instructions per request of the bench's closed loop: a count, not a timing.

Timings on a shared VM drift by ±15 % from one run to the next; an instruction count under
``valgrind --tool=callgrind`` does not. This drives the real ``bench.engine`` loop and
``Dispatcher`` with fake sockets (every connection answers on every poll with the no-op
server's response; reads and writes are C calls that return at once) and a fake clock
(0.7 µs per reading), runs it under callgrind for N and 3N requests, and prints the
difference per request: start-up cancels out, system calls are not counted.

    python experiments/engine_instructions.py [CONNECTIONS] [N]      # needs valgrind

docs/PERFORMANCE.md ("Bench vs wrk") quotes its counts.
"""

from __future__ import annotations

import itertools
import os
import select
import subprocess
import sys
import tempfile
import types
from pathlib import Path


def drive(requests: int, connections: int) -> None:
    """Run the closed loop over *requests* fake responses (the part callgrind counts)."""
    import bench.dispatch
    import bench.engine
    from bench.connection import Connection
    from bench.http1 import build_request
    from bench.noop_server import RESPONSE

    ticks = itertools.count(0, 700)
    bench.dispatch.clock = bench.engine.clock = lambda: next(ticks)  # type: ignore[assignment]
    request = build_request("127.0.0.1", 8080, "/v1/verify", "s", "text/plain", b"v4.public.x")
    plan = bench.dispatch.ShardPlan(
        host="127.0.0.1",
        port=8080,
        requests=[request] * requests,
        expected=["ok"] * requests,
        connections=connections,
        pacer=None,
        duration_ns=1 << 60,
    )
    fds = range(100, 100 + connections)
    events = [(fd, select.EPOLLIN) for fd in fds]
    engine = bench.engine._Engine.__new__(bench.engine._Engine)
    engine.plan, engine.run = plan, bench.dispatch.Dispatcher(plan, None)
    run = engine.run
    engine.conns, engine.socks, engine.connecting, engine.fds = {}, {}, {}, list(fds)
    engine.missing = engine.retry_at = 0
    poll = types.SimpleNamespace(poll=lambda timeout=-1: events if run.inflight else [])
    engine.poller = poll  # type: ignore[assignment]
    for fd in fds:
        conn = Connection(run, fd, len, None, engine.drop)  # write: len(), a C call
        engine.conns[fd] = conn
        run.free.append(conn)
    answers = dict.fromkeys(fds, RESPONSE)  # read(fd, size) -> answers.get(fd, size)
    bench.engine.os = types.SimpleNamespace(read=answers.get)  # type: ignore[assignment]
    run.begin(0)
    engine.loop()
    assert run.result().completed == requests


def count(requests: int, connections: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "--drive", str(requests), str(connections)],
            check=True, capture_output=True,
        )  # fmt: skip
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
        return int(totals[0].split()[1])


def main() -> None:
    if sys.argv[1:2] == ["--drive"]:
        drive(int(sys.argv[2]), int(sys.argv[3]))
        return
    connections = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    per_request = (count(3 * n, connections) - count(n, connections)) / (2 * n)
    print(f"closed loop, {connections} connections: {per_request:.0f} instructions/request")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
