"""Client CPU per claim: our cluster store against our single-node store and redis-py's cluster.

    python experiments/cluster_client_cpu.py [ROUNDS] [CLAIMS]     # defaults 5 and 20000

Starts a private 3-master + 3-replica cluster and one plain redis-server with a replica (the
test fixtures in tests/support), imports 10 000 holders into each, then per round and per
client claims ``CLAIMS`` fresh nonces with 256 claims in flight (256 coroutines in a loop,
uvloop) and prints this process's CPU time (user + system) per claim, claims per wall second,
and the Redis servers' CPU per claim (``INFO cpu`` before and after: masters, and replicas
apart); the clients take turns within each round, and the summary is the median over rounds.
Every variant does the same work per claim: the claim script (holder, nonce and use-record
keys), and the reply turned into a Claim.

* ``single``       :class:`verifier.store.redis.RedisStore` on the plain server
* ``cluster``      :class:`verifier.store.cluster.ClusterStore` on the cluster
* ``cluster-wait`` the same with ``min_replicas=1`` (one WAIT per turn per connection)
* ``redis-py``     redis-py's ``redis.asyncio.RedisCluster.evalsha`` (pool raised to 256)
* ``redis-py-pipe`` the same through its pipeline, 256 claims per ``execute()``

Redis runs on the same two cores, so claims per second are only indicative; CPU per claim is
the figure that decides which client to extend. Redis CPU per claim gives claims per second
per Redis core (1e6 / µs), the capacity of one cluster node.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis
import uvloop
from redis.asyncio.cluster import RedisCluster as PyCluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from redis_cluster import RedisCluster  # noqa: E402
from redis_server import RedisServer  # noqa: E402

from verifier.records import Holder  # noqa: E402
from verifier.store.base import claim_result  # noqa: E402
from verifier.store.claim_script import CLAIM_LUA, parse_claim_reply  # noqa: E402
from verifier.store.cluster import ClusterStore  # noqa: E402
from verifier.store.keys import holder_key, nonce_key, use_key  # noqa: E402
from verifier.store.redis import RedisStore  # noqa: E402

HOLDERS = 10_000
IN_FLIGHT = 256
TTL_MS = 600_000

KEEP_MS = 72 * 3600 * 1000  # the use record's life, as the stores' default reconcile window

Claimer = Callable[[str, str], Awaitable[object]]


def _keys(sub: str, jti: str) -> tuple[str, str, str]:
    """The claim script's keys, as the stores pass them (holder, nonce, use record)."""
    return holder_key(sub), nonce_key(sub, jti), use_key(sub, jti)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


Result = tuple[float, float, float, float]  # client µs, claims/s, master µs, replica µs


def _cpu(ports: list[int]) -> float:
    """Total user + system CPU seconds of the Redis servers on ``ports``."""
    total = 0.0
    for port in ports:
        with redis.Redis(port=port) as client:
            info = client.info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


async def _run(claim: Claimer, prefix: str, n: int) -> tuple[float, float]:
    """(CPU µs per claim, claims per second) for ``n`` claims, IN_FLIGHT at a time."""
    counter = itertools.count()

    async def worker() -> None:
        while (i := next(counter)) < n:
            await claim(f"h{i % HOLDERS}", f"{prefix}-{i}")

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / n * 1e6, n / wall


async def _pipelined(py: PyCluster, sha: str, prefix: str, n: int) -> tuple[float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, n, IN_FLIGHT):
        pipe = py.pipeline(transaction=False)
        for i in range(start, min(n, start + IN_FLIGHT)):
            sub = f"h{i % HOLDERS}"
            pipe.evalsha(sha, 3, *_keys(sub, f"{prefix}-{i}"), "s", "", TTL_MS, KEEP_MS, _now_ms())
        for reply in await pipe.execute():
            claim_result(*parse_claim_reply(reply))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / n * 1e6, n / wall


async def main(rounds: int, n: int) -> None:
    holders = [Holder(f"h{i}", "active", "employee", "110101", 1000) for i in range(HOLDERS)]
    with RedisServer() as server, RedisServer() as copy:
        # The single node gets a replica too, as every cluster master has: feeding it is part
        # of a master's work per claim.
        with redis.Redis(port=copy.port) as c:
            c.replicaof("127.0.0.1", server.port)
        cluster = RedisCluster()
        try:
            single = RedisStore(server.url, deadline_ms=2000)
            ours = ClusterStore(cluster.url, deadline_ms=2000)
            waiting = ClusterStore(cluster.url, deadline_ms=2000, min_replicas=1)
            host, port = cluster.url.removeprefix("redis+cluster://").split(",")[0].split(":")
            py = PyCluster(host=host, port=int(port), max_connections=IN_FLIGHT)
            await single.put_holders(holders)
            await ours.put_holders(holders)
            sha = await py.script_load(CLAIM_LUA)

            async def py_claim(sub: str, jti: str) -> object:
                reply = await py.evalsha(
                    sha, 3, *_keys(sub, jti), "s", "", TTL_MS, KEEP_MS, _now_ms()
                )
                return claim_result(*parse_claim_reply(reply))

            masters = [port for port, _, _ in cluster.masters()]
            replicas = [cluster.replica_of(port) for port in masters]
            on_cluster = (masters, replicas)
            variants: dict[
                str,
                tuple[Callable[[str], Awaitable[tuple[float, float]]], tuple[list[int], list[int]]],
            ] = {
                "single": (
                    lambda p: _run(lambda s, j: single.claim(s, j, "s", None, TTL_MS), p, n),
                    ([server.port], [copy.port]),
                ),
                "cluster": (
                    lambda p: _run(lambda s, j: ours.claim(s, j, "s", None, TTL_MS), p, n),
                    on_cluster,
                ),
                "cluster-wait": (
                    lambda p: _run(lambda s, j: waiting.claim(s, j, "s", None, TTL_MS), p, n),
                    on_cluster,
                ),
                "redis-py": (lambda p: _run(py_claim, p, n), on_cluster),
                "redis-py-pipe": (lambda p: _pipelined(py, sha, p, n), on_cluster),
            }
            for name, (run, _) in variants.items():  # warm-up: connections, script caches
                await run(f"warm-{name}")
            results: dict[str, list[Result]] = {name: [] for name in variants}
            for r in range(rounds):
                for name, (run, (primaries, copies)) in variants.items():
                    before = _cpu(primaries), _cpu(copies)
                    cpu, rate = await run(f"r{r}-{name}")
                    server_cpu = (_cpu(primaries) - before[0]) / n * 1e6
                    replica_cpu = (_cpu(copies) - before[1]) / n * 1e6
                    results[name].append((cpu, rate, server_cpu, replica_cpu))
                    print(
                        f"round {r + 1} {name:14} client {cpu:6.1f} µs/claim {rate:8.0f} claims/s"
                        f"  redis {server_cpu:5.1f} µs/claim (replicas {replica_cpu:4.1f})"
                    )
            print(f"\nmedian of {rounds} rounds, {n} claims each, {IN_FLIGHT} in flight:")
            print("variant         client µs/claim  claims/s  redis µs/claim  replicas µs/claim")
            for name, rows in results.items():
                med = [statistics.median(row[k] for row in rows) for k in range(4)]
                print(f"{name:14} {med[0]:16.1f} {med[1]:9.0f} {med[2]:15.1f} {med[3]:18.1f}")
            for store in (single, ours, waiting):
                await store.close()
            await py.aclose()
        finally:
            cluster.stop()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    uvloop.run(main(*args) if args else main(5, 20_000))
