"""Redis bytes per scan: 100 000 claims against a private redis-server.

    python experiments/nonce_memory.py      # needs redis-server on PATH and redis-py (.[dev])

Imports 10 000 holders, then claims 100 000 fresh nonces three times, each on an emptied
server (without a request id, with one, and with one and nonces that expire at once) through :class:`verifier.store.redis.RedisStore`, and prints Redis's ``used_memory``
growth per claim, and ``MEMORY USAGE`` of a sample of 1 000 nonce keys and of the use records
kept beside them for the reconcile window. The figures are the "Memory" table in
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import time

import redis
import uvloop

from verifier.records import Holder
from verifier.store.keys import nonce_key, use_key
from verifier.store.redis import RedisStore

HOLDERS = 10_000
CLAIMS = 100_000
BATCH = 1_000
SAMPLE = 1_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _measure(port: int, client: redis.Redis) -> None:
    store = RedisStore(f"redis://127.0.0.1:{port}/0", deadline_ms=2000)
    holders = [
        Holder(f"bh-{i:05d}", "active", "employee", "110101", 120000) for i in range(HOLDERS)
    ]
    # Each round on an emptied server. The last round's nonces live 1 s: what stays for the
    # reconcile window is the use record.
    for rid, ttl_ms in ((None, 120_000), ("req", 120_000), ("req", 1_000)):
        client.flushall()
        await store.put_holders(holders)
        before = int(client.info("memory")["used_memory"])
        claimed = [(holders[i % HOLDERS].sub, secrets.token_urlsafe(16)) for i in range(CLAIMS)]
        for start in range(0, CLAIMS, BATCH):
            await asyncio.gather(
                *(
                    store.claim(
                        *claimed[i],
                        "s-0123456789ab",
                        f"{rid}-{i}" if rid else None,
                        ttl_ms,
                    )
                    for i in range(start, start + BATCH)
                )
            )
        if ttl_ms < 120_000:
            await asyncio.sleep(ttl_ms / 1000 + 1)
            sum(1 for _ in client.scan_iter(match="vn:*", count=1000))  # SCAN drops the expired
        after = int(client.info("memory")["used_memory"])
        sample = claimed[-SAMPLE:]
        nonce = sum(_usage(client, nonce_key(sub, jti)) for sub, jti in sample) / SAMPLE
        use = sum(_usage(client, use_key(sub, jti)) for sub, jti in sample) / SAMPLE
        print(
            f"request_id={'yes' if rid else 'no'}, nonce {'expired' if ttl_ms < 120_000 else 'live'}: "
            f"{(after - before) / CLAIMS:.1f} bytes per scan ({CLAIMS} scans); MEMORY USAGE "
            f"of the nonce {nonce:.1f}, of the use record {use:.1f}"
        )
    await store.close()


def _usage(client: redis.Redis, key: str) -> int:
    return int(client.memory_usage(key, samples=0) or 0)


def main() -> None:
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
        uvloop.run(_measure(port, client))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
