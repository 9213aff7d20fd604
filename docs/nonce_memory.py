"""Redis bytes per live nonce: 100 000 claims against a private redis-server (docs/PERFORMANCE.md)."""

import asyncio
import secrets
import socket
import subprocess
import time

import redis
import uvloop

from verifier.records import Holder
from verifier.store.redis import RedisStore

s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
p = subprocess.Popen(
    ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
    stdout=subprocess.DEVNULL,
)
time.sleep(0.5)
r = redis.Redis(port=port)


async def main():
    st = RedisStore(f"redis://127.0.0.1:{port}/0", deadline_ms=2000)
    holders = [Holder(f"bh-{i:05d}", "active", "employee", "110101", 120000) for i in range(10000)]
    await st.put_holders(holders)
    for rid in (None, "req"):
        r.execute_command("MEMORY PURGE") if False else None
        before = r.info("memory")["used_memory"]
        n = 100000
        for k in range(0, n, 1000):
            await asyncio.gather(
                *(
                    st.claim(
                        holders[i % 10000].sub,
                        secrets.token_urlsafe(16),
                        "s-0123456789ab",
                        (f"{rid}-{i}" if rid else None),
                        120000,
                    )
                    for i in range(k, k + 1000)
                )
            )
        after = r.info("memory")["used_memory"]
        print(
            f"request_id={'yes' if rid else 'no'}: {(after - before) / n:.1f} bytes per live nonce ({n} nonces)"
        )
    await st.close()


uvloop.run(main())
p.terminate()
