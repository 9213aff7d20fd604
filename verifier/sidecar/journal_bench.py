"""Durable offline acceptances per second: ``python -m verifier.sidecar.journal_bench``.

Two ways to load the journal, for ``--seconds``, with fresh acceptances (a new holder and nonce
each time, so the budget never refuses):

- closed loop (default): ``--clients`` tasks each journal one acceptance after another, as
  fast as their commits return: the most the journal can take;
- open loop (``--rate N``): N acceptances per second on a fixed schedule, whatever the commits
  do; latency counts from each acceptance's scheduled time, so a stall is not hidden by the
  requests it delayed: what scanners would see at that rate.

Every acceptance counted has been committed with ``synchronous=FULL`` (fsynced), exactly as the
sidecar commits before answering. Prints one JSON line: acceptances/s, latency p50/p99/max
(to the durable answer), commits and the mean group size.

This measures the journal alone (no HTTP, no token verification): the floor under the
sidecar's offline path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from verifier.sidecar.budget import OfflineBudget
from verifier.sidecar.journal import NEW, Acceptance, Journal


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


TOKEN = "v4.public." + "A" * 300  # a token's typical size; never parsed here


def _item(n: int, i: int) -> Acceptance:
    return Acceptance(
        f"H{n}-{i}", f"J{n}-{i}", TOKEN, f"R{n}-{i}", f"S{n}", int(time.time() * 1000)
    )


async def run(path: Path, clients: int, seconds: float, rate: int = 0) -> dict[str, object]:
    journal = await Journal.open(path, budget=OfflineBudget())
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            t0 = time.perf_counter()
            rec = await journal.record(_item(n, i))
            latencies.append(time.perf_counter() - t0)
            assert rec.outcome == NEW

    async def one(i: int, due: float) -> None:
        rec = await journal.record(_item(0, i))
        latencies.append(time.perf_counter() - due)
        assert rec.outcome == NEW

    async def paced() -> None:
        tasks, start = [], time.perf_counter()
        for i in range(int(rate * seconds)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i, due)))
        await asyncio.gather(*tasks)

    started = time.perf_counter()
    if rate:
        await paced()
    else:
        await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    commits = journal.commits
    await journal.close()
    latencies.sort()
    return {
        "mode": f"open loop at {rate}/s" if rate else f"closed loop, {clients} clients",
        "seconds": round(elapsed, 2),
        "acceptances": len(latencies),
        "acceptances_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(_quantile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_quantile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else 0.0,
        "commits": commits,
        "mean_group": round(len(latencies) / commits, 1) if commits else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m verifier.sidecar.journal_bench")
    p.add_argument("--clients", type=int, default=64, help="concurrent scans (default 64)")
    p.add_argument("--rate", type=int, default=0, help="open loop: acceptances per second")
    p.add_argument("--seconds", type=float, default=5.0, help="duration (default 5)")
    p.add_argument("--dir", default=None, help="where the journal file goes (default: a temp dir)")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop, as the service does")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        path = Path(tmp) / "bench.db"
        if a.uvloop:
            import uvloop

            result = uvloop.run(run(path, a.clients, a.seconds, a.rate))
        else:
            result = asyncio.run(run(path, a.clients, a.seconds, a.rate))
        result["journal_bytes"] = sum(
            os.path.getsize(f) for f in Path(tmp).iterdir() if f.is_file()
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
