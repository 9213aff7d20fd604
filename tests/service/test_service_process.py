"""The `verifier` command as an operator runs it: real processes, real signals, real Redis.

`serve` is started through the console script with VERIFIER_* settings on a World's files; the
records it needs are loaded into the test Redis beforehand, as `verifier registry ...` would.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from redis_server import RedisServer
from service_process import (
    VERIFIER,
    ServeProcess,
    base_env,
    free_port,
    http_get,
    run_verifier,
    world_env,
)
from service_world import HOSPITAL, World

from verifier.store.redis import RedisStore

GENEROUS_DEADLINE_MS = "2000"  # a busy 2-core machine must not turn into 503s here
_VERDICTS = re.compile(r'^verifier_verdicts_total\{reason="(\w+)"\} (\d+)$', re.M)
_TRUST_VERSION = re.compile(r"^verifier_trust_list_version (\d+)$", re.M)


def seed(world: World, url: str) -> None:
    """Institutions, scanners and holders of ``world`` into the Redis at ``url``."""

    async def main() -> None:
        store = RedisStore(url)
        try:
            await world.seed(store)
        finally:
            await store.close()

    asyncio.run(main())


def present_all(url: str, world: World, tokens: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """Present every token at once, each on its own connection (kernel picks the worker)."""

    async def main() -> list[tuple[int, dict[str, Any]]]:
        headers = {"Authorization": f"Bearer {world.credentials[HOSPITAL]}"}
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

            async def one(token: str) -> tuple[int, dict[str, Any]]:
                async with http.post(
                    url + "/v1/verify", json={"token": token}, headers=headers
                ) as r:
                    return r.status, orjson.loads(await r.read())

            return list(await asyncio.gather(*(one(t) for t in tokens)))

    return asyncio.run(main())


def reasons(url: str, world: World, tokens: list[str]) -> list[str]:
    out = []
    for status, doc in present_all(url, world, tokens):
        assert status == 200, doc
        out.append(doc["reason"])
    return out


def metrics(url: str) -> str:
    status, body = http_get(url + "/metrics")
    assert status == 200
    return body.decode()


def verdict_counts(text: str) -> tuple[int, int]:
    counts = {reason: int(n) for reason, n in _VERDICTS.findall(text)}
    return counts.get("ok", 0), counts.get("replayed", 0)


def wait_for_totals(url: str, counts: tuple[int, int], timeout: float = 10.0) -> None:
    """Until a scrape of ``/metrics`` shows ``counts`` (ok, replayed)."""
    deadline = time.monotonic() + timeout
    while (seen := verdict_counts(metrics(url))) != counts:
        assert time.monotonic() < deadline, f"totals {seen}, expected {counts}"
        time.sleep(0.1)


def wait_for_log(proc: ServeProcess, needle: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(needle in line for line in list(proc.stderr)) < count:
        assert time.monotonic() < deadline, f"{count}x {needle!r} not logged:\n{proc.log()}"
        assert proc.proc.poll() is None, f"serve exited:\n{proc.log()}"
        time.sleep(0.02)


def rotate_out_nhsa(world: World) -> None:
    keys = world.issuer_keys()
    del keys[world.nhsa.kid]
    world.write_trust(version=2, keys=keys)


def nhsa_tokens(world: World, n: int) -> list[str]:
    return [world.token("alice") for _ in range(n)]


def mohrss_tokens(world: World, n: int) -> list[str]:
    return [world.token("alice", card="ss-ecard") for _ in range(n)]


def test_two_workers_accept_one_token_once_and_share_the_load(tmp_path, redis_url):
    world = World(tmp_path)
    seed(world, redis_url)
    env = world_env(world, redis_url, free_port(), VERIFIER_STORE_DEADLINE_MS=GENEROUS_DEADLINE_MS)
    with ServeProcess(env, "--workers", "2") as serve:
        serve.wait_ready(workers=2)
        workers = serve.worker_pids()
        assert len(workers) == 2 and serve.pid not in workers

        # 100 connections present the same token at once, across both processes.
        token = world.token("alice")
        got = reasons(serve.url, world, [token] * 100)
        assert sorted(set(got)) == ["ok", "replayed"]
        assert got.count("ok") == 1 and got.count("replayed") == 99

        # 100 fresh tokens: all accepted.
        assert reasons(serve.url, world, [world.token("bob") for _ in range(100)]) == ["ok"] * 100

        # Whichever worker answers a scrape reports the whole service: once the workers'
        # snapshots (about once a second) have caught up, every scrape shows everything.
        wait_for_totals(serve.url, (101, 99))
        for _ in range(10):
            assert verdict_counts(metrics(serve.url)) == (101, 99)

        # SIGTERM: the parent forwards it, the workers drain and exit, the parent exits 0.
        started = time.monotonic()
        assert serve.stop() == 0, serve.log()
        assert time.monotonic() - started < 10
        assert "Traceback" not in serve.log()


def test_sighup_reloads_the_trust_list_in_every_worker(tmp_path, redis_url):
    world = World(tmp_path)
    seed(world, redis_url)
    env = world_env(
        world,
        redis_url,
        free_port(),
        VERIFIER_STORE_DEADLINE_MS=GENEROUS_DEADLINE_MS,
        VERIFIER_TRUST_POLL_SECONDS="3600",  # so that only SIGHUP can cause a reload here
    )
    with ServeProcess(env, "--workers", "2") as serve:
        serve.wait_ready(workers=2)
        rotate_out_nhsa(world)
        # Not reloaded yet: the new file is on disk, the old list is in force.
        assert set(reasons(serve.url, world, nhsa_tokens(world, 10))) == {"ok"}

        serve.signal(signal.SIGHUP)  # to the parent only: it forwards to both workers
        wait_for_log(serve, "trust list version 2 loaded", count=2)
        assert set(reasons(serve.url, world, nhsa_tokens(world, 30))) == {"unknown_key"}
        assert set(reasons(serve.url, world, mohrss_tokens(world, 10))) == {"ok"}
        versions = {_TRUST_VERSION.search(metrics(serve.url))[1] for _ in range(20)}  # type: ignore[index]
        assert versions == {"2"}

        # A broken file: both workers refuse it and keep version 2.
        (world.dir / "trust.paseto").write_text("v4.public.garbage")
        serve.signal(signal.SIGHUP)
        wait_for_log(serve, "trust list reload refused", count=2)
        assert set(reasons(serve.url, world, mohrss_tokens(world, 30))) == {"ok"}
        assert set(reasons(serve.url, world, nhsa_tokens(world, 10))) == {"unknown_key"}
        assert http_get(serve.url + "/readyz")[0] == 200
        assert serve.stop() == 0, serve.log()


def test_trust_list_file_changes_are_picked_up_by_polling(tmp_path, redis_url):
    world = World(tmp_path)
    seed(world, redis_url)
    env = world_env(
        world,
        redis_url,
        free_port(),
        VERIFIER_STORE_DEADLINE_MS=GENEROUS_DEADLINE_MS,
        VERIFIER_TRUST_POLL_SECONDS="0.2",
    )
    with ServeProcess(env) as serve:  # one worker: the process itself serves
        serve.wait_ready(workers=1)
        assert set(reasons(serve.url, world, nhsa_tokens(world, 5))) == {"ok"}
        rotate_out_nhsa(world)
        wait_for_log(serve, "trust list version 2 loaded", count=1)
        assert set(reasons(serve.url, world, nhsa_tokens(world, 5))) == {"unknown_key"}

        # An invalid new file is refused on the next poll; the old list stays in force.
        (world.dir / "trust.paseto").write_text("not a trust list at all")
        wait_for_log(serve, "trust list reload refused", count=1)
        assert set(reasons(serve.url, world, mohrss_tokens(world, 5))) == {"ok"}
        assert _TRUST_VERSION.search(metrics(serve.url))[1] == "2"  # type: ignore[index]
        started = time.monotonic()
        assert serve.stop() == 0, serve.log()
        assert time.monotonic() - started < 10


def _catches_sighup(pid: int) -> bool:
    """True once ``pid`` has a handler for SIGHUP (Linux: the SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (signal.SIGHUP - 1)))


def test_sighup_while_workers_start_does_not_stop_the_service(tmp_path, redis_url):
    # An operator's deploy rotates the trust list and sends SIGHUP; if the service happens to be
    # (re)starting, the parent forwards the signal to workers that cannot handle it yet.
    world = World(tmp_path)
    seed(world, redis_url)
    env = world_env(world, redis_url, free_port(), VERIFIER_STORE_DEADLINE_MS=GENEROUS_DEADLINE_MS)
    with ServeProcess(env, "--workers", "2") as serve:
        deadline = time.monotonic() + 20
        while not _catches_sighup(serve.pid):  # the parent's forwarder is installed
            assert serve.proc.poll() is None and time.monotonic() < deadline, serve.log()
            time.sleep(0.002)
        serve.signal(signal.SIGHUP)
        serve.wait_ready(workers=2)
        assert set(reasons(serve.url, world, nhsa_tokens(world, 5))) == {"ok"}
        assert serve.stop() == 0, serve.log()


# --- start-up refusals -----------------------------------------------------------------------

# name -> (extra arguments, what the single stderr line must mention)
REFUSALS: dict[str, tuple[list[str], list[str]]] = {
    # Redis that may evict nonces (allkeys-lru) is refused unless explicitly allowed.
    "evicting_redis": ([], ["maxmemory-policy", "allkeys-lru", "VERIFIER_ALLOW_EVICTION"]),
    # No trust list file where VERIFIER_TRUST_LIST points.
    "missing_trust_list": ([], ["missing.paseto"]),
    # A trust list signed by another root key.
    "foreign_root": ([], ["root key"]),
    # A trust list that has expired.
    "expired_trust_list": ([], ["expired"]),
    # The memory store lives in one process: two workers would not share nonces.
    "workers_with_memory_store": (["--workers", "2", "--store", "memory://"], ["VERIFIER_WORKERS"]),
    # HOST:PORT that is not one.
    "bad_listen": ([], ["VERIFIER_LISTEN"]),
    # A worker count that is not a number.
    "workers_not_a_number": ([], ["VERIFIER_WORKERS", "abc"]),
    # Redis not reachable: nothing listens on the port.
    "redis_unreachable": ([], ["redis"]),
}


@pytest.fixture(scope="module")
def refusals(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    """Every refused start-up, run in parallel (each is a whole interpreter start)."""
    redis_server.ensure_running()
    url = redis_server.url
    world = World(tmp_path_factory.mktemp("refusals"))
    other = World(tmp_path_factory.mktemp("other-root"))
    expired = World(tmp_path_factory.mktemp("expired"))
    expired.write_trust(version=1, ttl=-5)  # issued 10 s ago, expired 5 s ago

    def env(w: World, **values: str) -> dict[str, str]:
        return world_env(w, url, free_port(), **values)

    envs = {
        "evicting_redis": env(world),
        "missing_trust_list": env(world, VERIFIER_TRUST_LIST=str(world.dir / "missing.paseto")),
        "foreign_root": env(world, VERIFIER_TRUST_LIST=str(other.dir / "trust.paseto")),
        "expired_trust_list": env(expired),
        "workers_with_memory_store": env(world),
        "bad_listen": env(world, VERIFIER_LISTEN="127.0.0.1"),
        "workers_not_a_number": env(world, VERIFIER_WORKERS="abc"),
        "redis_unreachable": env(world, VERIFIER_STORE=f"redis://127.0.0.1:{free_port()}/0"),
    }
    client = redis_server.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        procs = {
            name: subprocess.Popen(
                [VERIFIER, "serve", *REFUSALS[name][0]],
                env=envs[name],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in REFUSALS
        }
        results = {}
        for name, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.close()
    yield results


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_startup_refusal_is_one_clear_line(refusals, case):
    result = refusals[case]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode not in (0, None), f"started anyway:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("verifier: error: "), lines[0]
    for needle in REFUSALS[case][1]:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_allow_eviction_starts_on_an_evicting_redis(tmp_path, redis_server, redis_url, how):
    world = World(tmp_path)
    seed(world, redis_url)
    extra = {"VERIFIER_STORE_DEADLINE_MS": GENEROUS_DEADLINE_MS}
    if how == "environment":
        extra["VERIFIER_ALLOW_EVICTION"] = "1"
    args = ["--allow-eviction"] if how == "flag" else []
    client = redis_server.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with ServeProcess(world_env(world, redis_url, free_port(), **extra), *args) as serve:
            serve.wait_ready(workers=1)
            assert "allkeys-lru" in serve.log()  # started, but said loudly that it is unsafe
            assert reasons(serve.url, world, nhsa_tokens(world, 3)) == ["ok"] * 3
            assert serve.stop() == 0, serve.log()
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.close()


def test_demo_once_passes_its_self_check_without_redis():
    env = base_env()  # no VERIFIER_STORE, no Redis anywhere
    result = run_verifier(["demo", "--once", "--listen", "127.0.0.1:0"], env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Self-check passed" in result.stdout
    assert "Traceback" not in result.stderr
