"""Redis bytes per live nonce: 100 000 claims against a private redis-server.

    python experiments/nonce_memory.py      # needs redis-server on PATH and redis-py (.[dev])

Imports 10 000 holders, then claims 100 000 fresh nonces twice (without and with a request
id) through :class:`verifier.store.redis.RedisStore`, and prints Redis's ``used_memory``
growth per claim. The figures are the "Memory" table in docs/PERFORMANCE.md.
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
from verifier.store.redis import RedisStore

HOLDERS = 10_000
CLAIMS = 100_000
BATCH = 1_000


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
    await store.put_holders(holders)
    for rid in (None, "req"):
        before = int(client.info("memory")["used_memory"])
        for start in range(0, CLAIMS, BATCH):
            await asyncio.gather(
                *(
                    store.claim(
                        holders[i % HOLDERS].sub,
                        secrets.token_urlsafe(16),
                        "s-0123456789ab",
                        f"{rid}-{i}" if rid else None,
                        120000,
                    )
                    for i in range(start, start + BATCH)
                )
            )
        after = int(client.info("memory")["used_memory"])
        print(
            f"request_id={'yes' if rid else 'no'}: "
            f"{(after - before) / CLAIMS:.1f} bytes per live nonce ({CLAIMS} nonces)"
        )
    await store.close()


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
