"""A master SIGKILLed under load: the outage window and the acknowledged claims lost, with
VERIFIER_MIN_REPLICAS 0 and 1 side by side.

    python experiments/cluster_failover.py [TRIALS]      # default 3 of each scenario

Starts a private 3-master + 3-replica cluster (tests/support/redis_cluster.py, node timeout
2 s). Two ClusterStores run 8 claimers each on holders of every master, fresh nonces only:
``safe`` (min_replicas=1) and ``fast`` (min_replicas=0), deadline 500 ms. Per trial one master
is SIGKILLed, in one of two scenarios:

* ``kill``  as it is, under load;
* ``lag``   right after its replica fell behind: the replica is paused (SIGSTOP), 32 MB are
            written to the master (more than the socket buffers hold), claims go on for 0.3 s,
            then the master is killed and the replica resumed.

Once ``fast`` claims on the victim's holders again (the replica was promoted and the store
found it: the "fast outage"), the killed node is restarted, empty; it rejoins as the new
master's replica, and ``safe`` claims there again (the "safe outage", from the kill). Then
every nonce a store acknowledged as NEW is presented again by a third store: NEW again means
the acknowledged claim was lost (its token would be accepted twice). Nothing here is asserted;
tests/store/test_store_cluster_faults.py asserts the behaviour.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from redis_cluster import RedisCluster  # noqa: E402

from verifier.errors import StoreUnavailable  # noqa: E402
from verifier.records import Holder  # noqa: E402
from verifier.store import NEW, ClusterStore  # noqa: E402

TTL_MS = 600_000
WORKERS = 8


@dataclass
class Trial:
    fast_back_s: float | None  # from the kill to fast's first NEW on the victim's holders
    safe_back_s: float | None  # the same for safe (the restart of the killed node included)
    acked: Counter[str]  # nonces acknowledged as NEW, by store
    lost: Counter[str]  # of those, NEW again when presented afterwards
    unavailable: Counter[str]  # 503s after the kill, by store
    other: Counter[str]  # any answer but NEW or 503 (fresh nonces: should be none)


async def trial(cluster: RedisCluster, scenario: str) -> Trial:
    by_master = cluster.subs_by_master(8)
    victim = next(iter(by_master))
    victim_subs = by_master[victim]
    subs = [s for group in by_master.values() for s in group]
    replica = cluster.replica_of(victim)
    answers: list[tuple[str, str, str, str, float]] = []  # store, sub, jti, outcome, when
    stores = {
        "safe": ClusterStore(cluster.url, deadline_ms=500, min_replicas=1),
        "fast": ClusterStore(cluster.url, deadline_ms=500),
    }
    await stores["fast"].put_holders(
        Holder(sub=s, status="active", scheme="employee", region="110105") for s in subs
    )
    stop = asyncio.Event()

    async def load(name: str, worker: int) -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            sub, jti = subs[(worker + i) % len(subs)], f"{name}-{worker}-{i}"
            try:
                outcome = (await stores[name].claim(sub, jti, name, jti, TTL_MS)).outcome
            except StoreUnavailable:
                outcome = "503"
            answers.append((name, sub, jti, outcome, time.monotonic()))
            if outcome == "503":
                await asyncio.sleep(0.01)

    def back_after(name: str, since: float) -> float | None:
        """Seconds from ``since`` to the first NEW on the victim's holders after its outage
        began (a claim already answered as the kill landed does not count)."""
        mine = [(t, o) for n, s, _, o, t in answers if n == name and s in victim_subs and t > since]
        down = next((t for t, o in mine if o == "503"), None)
        back = [t for t, o in mine if o == NEW and down is not None and t > down]
        return min(back) - since if back else None

    workers = [asyncio.ensure_future(load(n, w)) for n in stores for w in range(WORKERS)]
    try:
        await asyncio.sleep(1.0)
        if scenario == "lag":
            cluster.pause(replica)
            with cluster.node(victim).client() as c:
                c.set(f"junk:{{{victim_subs[0]}}}", b"x" * (32 << 20))
            await asyncio.sleep(0.3)
        killed = time.monotonic()
        cluster.kill(victim)
        if scenario == "lag":
            cluster.resume(replica)
        while back_after("fast", killed) is None and time.monotonic() - killed < 60:
            await asyncio.sleep(0.05)
        cluster.restart(victim)
        while back_after("safe", killed) is None and time.monotonic() - killed < 90:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*workers)
    checker = ClusterStore(cluster.url, deadline_ms=5_000)
    acknowledged = sorted({(n, s, j) for n, s, j, o, _ in answers if o == NEW})
    lost: Counter[str] = Counter()
    for start in range(0, len(acknowledged), 500):
        chunk = acknowledged[start : start + 500]
        again = await asyncio.gather(
            *(checker.claim(s, j, "checker", None, TTL_MS) for _, s, j in chunk)
        )
        lost.update(n for (n, _, _), c in zip(chunk, again, strict=True) if c.outcome == NEW)
    for store in [*stores.values(), checker]:
        await store.close()
    return Trial(
        back_after("fast", killed),
        back_after("safe", killed),
        Counter(n for n, _, _ in acknowledged),
        lost,
        Counter(n for n, _, _, o, t in answers if t >= killed and o == "503"),
        Counter(o for *_, o, _ in answers if o not in (NEW, "503")),
    )


async def main(trials: int) -> None:
    cluster = RedisCluster()
    try:
        for scenario in ("kill", "lag"):
            for t in range(trials):
                cluster.ensure_healthy()
                cluster.flush()
                r = await trial(cluster, scenario)
                print(
                    f"{scenario} #{t + 1}: fast back after {r.fast_back_s or 0:.2f} s, "
                    f"safe back after {r.safe_back_s or 0:.2f} s (restart included); "
                    f"acknowledged fast {r.acked['fast']}, safe {r.acked['safe']}; "
                    f"lost fast {r.lost['fast']}, safe {r.lost['safe']}; "
                    f"503 after the kill fast {r.unavailable['fast']}, "
                    f"safe {r.unavailable['safe']}; other answers {dict(r.other)}",
                    flush=True,
                )
    finally:
        cluster.stop()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
