"""The service on a real Redis Cluster (3 masters + 3 replicas on loopback), end to end.

The app in this process for the request rules (valid, replay, retry, batch); real `verifier`
processes for the rest: the admin commands write the records, several `verifier serve
--workers 2` share the cluster, and the cluster changes under them (a master SIGKILLed, a live
`redis-cli --cluster reshard`). What is asserted is what a scanner sees: a verdict or a 503,
never a 500, and never one token accepted twice.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from service_process import ServeProcess, base_env, free_port, run_verifier, world_env
from service_world import HOSPITAL, PHARMACY, Service, World, running

from verifier.registry import holder_from_fields
from verifier.store import ClusterStore
from verifier.store.slots import key_slot

if TYPE_CHECKING:  # imported by pytest_plugins, so that pytest imports it first
    pass

pytest_plugins = ["redis_cluster"]

DEADLINE_MS = "500"  # a busy 2-core machine must not turn into 503s; a failover still does
FAILOVER_S = 20.0  # node timeout 2 s: promotion in ~3-4 s; generous for a loaded machine


def holder_row(sub: str) -> dict[str, str]:
    return {"sub": sub, "status": "active", "scheme": "employee", "region": "110101"}


def admin(env: dict[str, str], *args: str) -> str:
    done = run_verifier(list(args), env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def seed_with_admin_commands(world: World, url: str, subs: list[str]) -> None:
    """Institutions, a scanner each, and ``subs`` as holders, written by the admin commands."""
    env = base_env(VERIFIER_STORE=url)
    for inst, cards in ((HOSPITAL, "mi-voucher,ss-ecard"), (PHARMACY, "mi-voucher")):
        admin(env, "institutions", "put", inst, "--name", inst, "--cards", cards)
        world.credentials[inst] = admin(env, "scanners", "add", "--institution", inst).strip()
    path = world.dir / "holders.jsonl"
    path.write_text("".join(json.dumps(holder_row(s)) + "\n" for s in subs))
    out = admin(env, "registry", "import", str(path))
    assert out.strip() == f"imported {len(subs)} holder(s) from {path}"


def seed_in_process(world: World, url: str, subs: list[str]) -> None:
    async def main() -> None:
        store = ClusterStore(url, deadline_ms=2000)
        try:
            await world.seed(store)
            for sub in subs:
                await store.put_holder(
                    holder_from_fields(
                        sub, "active", "employee", "110101", None, None, "9.00", "active"
                    )
                )
        finally:
            await store.close()

    asyncio.run(main())


@contextmanager
def fleet(world: World, url: str, count: int, **env: str) -> Iterator[list[ServeProcess]]:
    """``count`` × `verifier serve --workers 2` on the cluster, each on its own port."""
    with ExitStack() as stack:
        procs = []
        for _ in range(count):
            e = world_env(world, url, free_port(), VERIFIER_STORE_DEADLINE_MS=DEADLINE_MS, **env)
            procs.append(stack.enter_context(ServeProcess(e, "--workers", "2")))
        for p in procs:
            p.wait_ready(workers=2)
        yield procs


async def present(
    http: aiohttp.ClientSession, url: str, world: World, token: str, **body: Any
) -> tuple[int, str]:
    """(status, reason) of one presentation; the reason is the body's error code if not 200."""
    headers = {"Authorization": f"Bearer {world.credentials[HOSPITAL]}"}
    async with http.post(url + "/v1/verify", json={"token": token, **body}, headers=headers) as r:
        doc = orjson.loads(await r.read())
        return r.status, doc.get("reason") or doc.get("error", "")


# -- the request rules, in this process -------------------------------------------------------


def test_valid_replay_retry_and_batch_on_a_cluster(tmp_path, cluster_url, redis_cluster):
    world = World(tmp_path)
    subs = [s for per in redis_cluster.subs_by_master(1, prefix="c").values() for s in per]

    async def scenario(svc: Service) -> None:
        for sub in ("alice", *subs):  # a holder on every master
            await svc.runtime.store.put_holder(
                holder_from_fields(
                    sub, "active", "employee", "110101", None, None, "9.00", "active"
                )
            )
            token = world.token(sub)
            _, first = await svc.verify(token)
            assert (first["valid"], first["reason"], first["covered"]) == (True, "ok", True)
            _, again = await svc.verify(token)
            assert (again["valid"], again["reason"]) == (False, "replayed")
        body = {"token": world.token("bob"), "request_id": "r-1"}
        _, a = await svc.verify(json=body)
        _, b = await svc.verify(json=body)  # the scanner's retry: the original verdict
        assert a["reason"] == b["reason"] == "ok" and b["request_id"] == "r-1"
        _, c = await svc.verify(json={**body, "request_id": "r-2"})
        assert c["reason"] == "replayed"
        items = [{"token": world.token(s)} for s in subs]
        items.append(dict(items[0]))  # the same token twice in one batch
        status, doc = await svc.verify(json={"items": items}, path="/v1/verify/batch")
        assert status == 200
        assert Counter(r["reason"] for r in doc["results"]) == {"ok": len(subs), "replayed": 1}

    async def main() -> None:
        async with running(world, cluster_url) as svc:
            await scenario(svc)

    asyncio.run(main())


# -- admin commands and many verifier processes -----------------------------------------------


def test_three_services_of_two_workers_accept_each_token_once(tmp_path, cluster_url, redis_cluster):
    """Records written by the admin commands; 100 concurrent presentations of one token, spread
    over 3 processes of 2 workers, for a holder on every master: exactly one `ok`."""
    world = World(tmp_path)
    by_master = redis_cluster.subs_by_master(1, prefix="m")
    subs = [per[0] for per in by_master.values()]
    seed_with_admin_commands(world, cluster_url, subs)
    tokens = [world.token(sub) for sub in subs]

    async def storm(urls: list[str]) -> dict[str, Counter[tuple[int, str]]]:
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            jobs = [
                present(http, urls[i % len(urls)], world, token)
                for token in tokens
                for i in range(100)
            ]
            answers = await asyncio.gather(*jobs)
        return {sub: Counter(answers[k * 100 : (k + 1) * 100]) for k, sub in enumerate(subs)}

    with fleet(world, cluster_url, 3) as procs:
        seen = asyncio.run(storm([p.url for p in procs]))
        for p in procs:
            assert len(p.worker_pids()) == 2
    for sub in subs:
        assert seen[sub] == {(200, "ok"): 1, (200, "replayed"): 99}, (sub, seen[sub])


# -- the cluster changing under load -----------------------------------------------------------


class Load:
    """Fresh tokens presented in a loop by ``lanes`` clients per service; every answer kept."""

    def __init__(self, world: World, urls: dict[str, str], subs: list[str]) -> None:
        self.world, self.urls, self.subs = world, urls, subs
        self.answers: list[tuple[str, str, str, float, int, str]] = []  # fleet, sub, token…
        self.stop = asyncio.Event()

    async def lane(self, http: aiohttp.ClientSession, name: str, subs: Iterator[str]) -> None:
        while not self.stop.is_set():
            sub = next(subs)
            token = self.world.token(sub)
            try:
                status, reason = await present(http, self.urls[name], self.world, token)
            except (TimeoutError, aiohttp.ClientError) as err:
                status, reason = 0, type(err).__name__
            self.answers.append((name, sub, token, time.monotonic(), status, reason))

    async def run(self, lanes: int, during: Any) -> Any:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            tasks = [
                asyncio.create_task(self.lane(http, name, itertools.cycle(self.subs[i::lanes])))
                for name in self.urls
                for i in range(lanes)
            ]
            try:
                return await asyncio.to_thread(during)
            finally:
                self.stop.set()
                await asyncio.gather(*tasks)

    def accepted_again(self, name: str) -> tuple[int, Counter[str]]:
        """Present every token ``name`` accepted once more: (accepted a second time, reasons)."""
        tokens = [t for n, _, t, _, s, r in self.answers if n == name and (s, r) == (200, "ok")]

        async def again() -> list[tuple[int, str]]:
            async with aiohttp.ClientSession() as http:
                sem = asyncio.Semaphore(32)

                async def one(token: str) -> tuple[int, str]:
                    async with sem:
                        return await present(http, self.urls[name], self.world, token)

                return await asyncio.gather(*(one(t) for t in tokens))

        seen = Counter(f"{s} {r}" for s, r in asyncio.run(again()))
        return seen["200 ok"], seen


def test_a_master_killed_under_load_only_verdicts_or_503_and_no_double_accept_with_replicas(
    tmp_path, cluster_url, redis_cluster
):
    world = World(tmp_path)
    by_master = redis_cluster.subs_by_master(4, prefix="f")
    victim = sorted(by_master)[0]
    victim_subs = set(by_master[victim])
    subs = [s for per in by_master.values() for s in per]
    seed_in_process(world, cluster_url, subs)
    slot = key_slot(by_master[victim][0].encode())
    marks: dict[str, float] = {}

    def kill_and_heal() -> None:
        time.sleep(1.5)
        marks["kill"] = time.monotonic()
        redis_cluster.kill(victim)
        promoted = redis_cluster.wait_for_master(slot, not_port=victim, timeout=FAILOVER_S)
        marks["promoted"] = time.monotonic()
        assert promoted != victim
        # The old master rejoins, empty, as the new master's replica: MIN_REPLICAS=1 can
        # confirm claims on that shard again once it has synchronised.
        redis_cluster.restart(victim)
        time.sleep(6)

    with (
        fleet(world, cluster_url, 1, VERIFIER_MIN_REPLICAS="0") as (zero,),
        fleet(world, cluster_url, 1, VERIFIER_MIN_REPLICAS="1") as (one,),
    ):
        load = Load(world, {"n=0": zero.url, "n=1": one.url}, subs)
        asyncio.run(load.run(4, kill_and_heal))
        twice = {name: load.accepted_again(name) for name in load.urls}
        assert zero.proc.poll() is None and one.proc.poll() is None  # never restarted

    kill = marks["kill"]
    report = {}
    for name in load.urls:
        mine = [a for a in load.answers if a[0] == name]
        odd = Counter((s, r) for _, _, _, _, s, r in mine if s not in (200, 503))
        assert not odd, (name, odd)  # no 500, no dropped connection: a verdict or a 503
        after = [a for a in mine if a[3] > kill and a[1] in victim_subs]
        down = [a[3] for a in after if a[4] == 503]
        back = next(
            (a[3] for a in after if (a[4], a[5]) == (200, "ok") and down and a[3] > down[0]), None
        )
        assert back is not None, f"{name}: the victim's holders were never served again"
        report[name] = {
            "ok": sum((a[4], a[5]) == (200, "ok") for a in mine),
            "503": sum(a[4] == 503 for a in mine),
            "outage_s": round(back - kill, 2),
            "accepted_twice": twice[name][0],
            "answers": dict(Counter(f"{s} {r}" for _, _, _, _, s, r in mine)),
        }
    print(f"failover (promoted {marks['promoted'] - kill:.2f} s after the kill): {report}")
    assert report["n=1"]["accepted_twice"] == 0, twice["n=1"]
    assert report["n=0"]["ok"] > 0 and report["n=1"]["ok"] > 0


def test_a_live_reshard_under_load_gives_no_500_and_no_double_accept(
    tmp_path, cluster_url, redis_cluster
):
    world = World(tmp_path)
    masters = redis_cluster.masters()
    (source, source_id, ranges), (_, target_id, _) = masters[0], masters[1]
    first = ranges[0][0]
    moved = 64  # redis-cli moves the source's lowest slots first
    subs = []
    for i in itertools.count():
        if len(subs) == 24:
            break
        if first <= key_slot(f"r{i}".encode()) < first + moved:
            subs.append(f"r{i}")
    seed_in_process(world, cluster_url, subs)

    def reshard() -> subprocess.CompletedProcess[str]:
        time.sleep(1.0)
        return subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "reshard",
                f"127.0.0.1:{source}",
                "--cluster-from",
                source_id,
                "--cluster-to",
                target_id,
                "--cluster-slots",
                str(moved),
                "--cluster-pipeline",
                "100",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    with fleet(world, cluster_url, 1) as (svc,):
        load = Load(world, {"svc": svc.url}, subs)
        done = asyncio.run(load.run(6, reshard))
        twice, seen = load.accepted_again("svc")
        redirects = store_redirects(svc.url)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert redis_cluster.master_of(first) != source  # the slots did move
    answers = Counter((s, r) for *_, s, r in load.answers)
    assert set(answers) <= {(200, "ok"), (503, "store_unavailable")}, answers
    assert answers[(200, "ok")] > 0
    assert twice == 0, seen
    # The service had the map from before: it reached the moved slots by following MOVED
    # (ASK and TRYAGAIN only when a request met a slot in mid-move).
    assert redirects["moved"] > 0, redirects
    print(f"reshard of {moved} slots under load: {dict(answers)}, redirects {redirects}")


def store_redirects(url: str) -> dict[str, int]:
    """``verifier_store_redirects_total`` by kind, from the service's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("verifier_store_redirects_total{"):
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            found[kind] = int(line.rsplit(" ", 1)[1])
    return found
