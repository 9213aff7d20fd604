"""What one claim costs: Redis CPU per claim script call, and the client's view of it.

    python experiments/claim_cost.py [ROUNDS]      # needs redis-server on PATH and redis-py

Starts a private redis-server, imports 10 000 holders, then per round: 20 000 claims one at a
time (each awaited before the next: the round trip), and 100 000 claims in batches of 1 000
issued together (auto-pipelined: throughput). Prints, per round, the median round trip, the
claims per second of the batches, and Redis's own ``usec_per_call`` of ``EVALSHA`` (INFO
commandstats: the script's CPU on the server). Every claim is a fresh nonce with a request id,
as a sidecar's forwards are. Run it on two checkouts (``PYTHONPATH=<checkout>``) to compare.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import statistics
import subprocess
import sys
import time

import redis
import uvloop

from verifier.records import Holder
from verifier.store.redis import RedisStore

HOLDERS = 10_000
SEQUENTIAL = 20_000
BATCHED = 100_000
BATCH = 1_000
TTL_MS = 330_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _evalsha_usec(client: redis.Redis) -> float:
    stats = client.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", 0.0))


async def _round(store: RedisStore, client: redis.Redis, holders: list[Holder], n: int) -> None:
    subs = [h.sub for h in holders]
    client.config_resetstat()
    rtts = []
    for i in range(SEQUENTIAL):
        jti = secrets.token_urlsafe(16)
        started = time.perf_counter()
        await store.claim(subs[i % HOLDERS], jti, "s-0123456789ab", f"rq-{n}-{i}", TTL_MS)
        rtts.append(time.perf_counter() - started)
    jtis = [secrets.token_urlsafe(16) for _ in range(BATCHED)]
    started = time.perf_counter()
    for start in range(0, BATCHED, BATCH):
        await asyncio.gather(
            *(
                store.claim(subs[i % HOLDERS], jtis[i], "s-0123456789ab", f"rb-{n}-{i}", TTL_MS)
                for i in range(start, start + BATCH)
            )
        )
    rate = BATCHED / (time.perf_counter() - started)
    print(
        f"round {n}: round trip median {statistics.median(rtts) * 1e6:.1f} µs, "
        f"batched {rate:,.0f} claims/s, redis EVALSHA {_evalsha_usec(client):.2f} µs/call",
        flush=True,
    )


async def _measure(port: int, client: redis.Redis, rounds: int) -> None:
    store = RedisStore(f"redis://127.0.0.1:{port}/0", deadline_ms=2000)
    holders = [
        Holder(f"bh-{i:05d}", "active", "employee", "110101", 120000) for i in range(HOLDERS)
    ]
    await store.put_holders(holders)
    for n in range(rounds):
        await _round(store, client, holders, n)
        client.flushall()
        await store.put_holders(holders)
    await store.close()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(100):  # wait until it answers (at most ~5 s)
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        uvloop.run(_measure(port, client, rounds))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
