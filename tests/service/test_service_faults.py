"""Store faults under load: the real app on the real Redis, paused (SIGSTOP) or killed (SIGKILL).

What must hold: every answer is a decided 200 verdict or a 503 ``store_unavailable`` with
Retry-After (never a 500, never a dropped connection); the service recovers by itself; and no
token is ever accepted twice, even when a claim timed out on our side but ran on the server.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from redis_server import RedisServer
from service_world import HOSPITAL, PHARMACY, Service, World, running

from verifier.errors import ALL_REASONS
from verifier.store.redis import RedisStore

DEADLINE_MS = 80  # per store call: small, so that an outage turns into 503s quickly
WORKERS = 20
MAX_PER_WORKER = 400  # a bound on the load, whatever the timing
ANSWER_TIMEOUT = aiohttp.ClientTimeout(total=5)  # "answers within 5 s", generously
RECOVERY_S = 10.0  # generous: the machine may be busy, and Redis has a backlog to clear
DECIDE_TRIES = 40  # a verification step retries a 503 (as a client would), this many times
_STORE_ERRORS = re.compile(r"^verifier_store_errors_total (\d+)$", re.M)


@dataclass
class Attempt:
    token: str
    request_id: str | None
    inst: str
    started: float
    ended: float = 0.0
    status: int = 0  # 0: no HTTP answer at all
    doc: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # transport error

    @property
    def reason(self) -> str | None:
        return self.doc.get("reason") if self.status == 200 else None

    def identity(self, serial: int) -> tuple[str, str]:
        """Who presented: one (scanner, request id) is one presentation, however often retried."""
        return (self.inst, self.request_id) if self.request_id else ("-", str(serial))


def verdict_of(a: Attempt) -> dict[str, Any]:
    return {k: v for k, v in a.doc.items() if k != "request_id"}


async def present(
    svc: Service, token: str, request_id: str | None = None, inst: str = HOSPITAL
) -> Attempt:
    body: dict[str, Any] = {"token": token}
    if request_id is not None:
        body["request_id"] = request_id
    a = Attempt(token, request_id, inst, time.monotonic())
    headers = {"Authorization": f"Bearer {svc.world.credentials[inst]}"}
    try:
        async with svc.http.post(
            svc.url + "/v1/verify", json=body, headers=headers, timeout=ANSWER_TIMEOUT
        ) as resp:
            a.status = resp.status
            a.headers = dict(resp.headers)
            raw = await resp.read()
        a.doc = orjson.loads(raw)
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as err:
        a.problem = f"{type(err).__name__}: {err}"
    a.ended = time.monotonic()
    return a


async def present_until_decided(
    svc: Service,
    token: str,
    request_id: str | None = None,
    inst: str = HOSPITAL,
    log: list[Attempt] | None = None,
) -> Attempt:
    """Present until the answer is not a 503 (bounded); every attempt is also added to ``log``."""
    for _ in range(DECIDE_TRIES):
        a = await present(svc, token, request_id, inst)
        if log is not None:
            log.append(a)
        if a.status != 503:
            return a
        await asyncio.sleep(0.05)
    return a


def wrong_answers(attempts: Iterable[Attempt]) -> list[tuple[int, Any]]:
    """Answers that are neither a decided 200 verdict nor a 503 store_unavailable + Retry-After."""
    bad = []
    for a in attempts:
        if a.status == 200 and a.doc.get("reason") in ALL_REASONS:
            continue
        if (
            a.status == 503
            and a.doc.get("error") == "store_unavailable"
            and a.headers.get("Retry-After")
        ):
            continue
        bad.append((a.status, a.problem or a.doc))
    return bad


class Load:
    """WORKERS concurrent clients presenting fresh tokens of alice until stopped (or the bound)."""

    def __init__(self, svc: Service, request_ids: bool) -> None:
        self.svc = svc
        self.request_ids = request_ids
        self.attempts: list[Attempt] = []
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _worker(self, w: int) -> None:
        for n in range(MAX_PER_WORKER):
            if self.stop.is_set():
                return
            # Half the workers send a request id (retry-safe presentations), half do not.
            rid = f"w{w}-{n}" if self.request_ids and w % 2 else None
            self.attempts.append(await present(self.svc, self.svc.world.token("alice"), rid))

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(w)) for w in range(WORKERS)]

    async def until_accepted_after(self, since: float, timeout: float = RECOVERY_S) -> None:
        """Keep the load on until a request started after ``since`` was accepted (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(a.reason == "ok" and a.started > since for a in self.attempts):
                return
            await asyncio.sleep(0.05)

    async def finish(self) -> list[Attempt]:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), 30)
        return self.attempts


async def store_errors(svc: Service) -> int:
    async with svc.http.get(svc.url + "/metrics", timeout=ANSWER_TIMEOUT) as r:
        text = await r.text()
    m = _STORE_ERRORS.search(text)
    assert m, "verifier_store_errors_total is missing from /metrics"
    return int(m[1])


async def readyz(svc: Service) -> int:
    async with svc.http.get(svc.url + "/readyz", timeout=ANSWER_TIMEOUT) as r:
        return r.status


async def answers_ok_again(svc: Service) -> Attempt:
    """Fresh tokens until one is accepted (the service recovered by itself), or give up."""
    deadline = time.monotonic() + RECOVERY_S
    while True:
        a = await present(svc, svc.world.token("bob"))
        if a.reason == "ok" or time.monotonic() > deadline:
            return a
        await asyncio.sleep(0.05)


def test_redis_paused_mid_load_fails_closed_and_never_accepts_twice(
    tmp_path, redis_server: RedisServer, redis_url: str
):
    world = World(tmp_path)

    async def scenario(svc: Service, redis: RedisServer) -> None:
        await present(svc, world.token("bob"))  # warm up: scanner cached, pool connected
        errors_before = await store_errors(svc)
        load = Load(svc, request_ids=True)
        load.start()
        await load.until_accepted_after(0.0)  # the load is flowing
        await asyncio.sleep(0.2)
        redis.pause()
        try:
            paused_at = time.monotonic()
            await asyncio.sleep(0.5)
            ready_while_paused = await readyz(svc)
            await asyncio.sleep(0.5)
        finally:
            redis.resume()
        resumed_at = time.monotonic()
        await load.until_accepted_after(resumed_at)
        attempts = await load.finish()

        # 1. Only decided verdicts or fail-closed 503s, and both really happened.
        assert wrong_answers(attempts) == []
        down = [a for a in attempts if a.status == 503]
        assert any(a.reason == "ok" and a.ended < paused_at for a in attempts)
        assert len(down) >= WORKERS, "the pause produced (almost) no 503s"
        assert ready_while_paused == 503
        # A fresh token is never "replayed" on its first presentation: that would mean a late
        # reply to someone else's claim was read as ours.
        assert {a.reason for a in attempts if a.status == 200} == {"ok"}
        # 2. Back by itself: answered ok after the resume, and ready again.
        assert any(a.reason == "ok" and a.started > resumed_at for a in attempts)
        assert (await answers_ok_again(svc)).reason == "ok"
        assert await readyz(svc) == 200
        # 3. Every 503 was counted.
        assert await store_errors(svc) - errors_before >= len(down)

        # 4. Retries with the same request id of claims that timed out: the claim may have run
        # on the server after all (the script ran when Redis woke up). Either way the retry is
        # accepted once (RETRY returns the original verdict, NEW is the first acceptance), a
        # second retry gets the very same verdict, and any other presentation is refused.
        retried = [a for a in down if a.request_id]
        assert retried, "no timed-out claim carried a request id"
        follow_ups: list[Attempt] = []
        for a in retried:
            first = await present_until_decided(svc, a.token, a.request_id, log=follow_ups)
            second = await present_until_decided(svc, a.token, a.request_id, log=follow_ups)
            assert first.reason == "ok", (first.status, first.problem or first.doc)
            assert verdict_of(second) == verdict_of(first)
            assert second.doc["request_id"] == a.request_id
        # The same for accepted presentations with a request id: RETRY, same verdict.
        for a in [a for a in attempts if a.reason == "ok" and a.request_id][:50]:
            retry = await present_until_decided(svc, a.token, a.request_id, log=follow_ups)
            assert verdict_of(retry) == verdict_of(a)

        # 5. Re-present EVERY token that got ok or 503, twice, without a request id, from two
        # scanners: a token accepted before is now replayed; none is accepted twice overall.
        sem = asyncio.Semaphore(WORKERS)
        again: list[Attempt] = []  # every attempt, 503s included

        async def twice(token: str) -> list[Attempt]:
            async with sem:
                return [
                    await present_until_decided(svc, token, log=again),
                    await present_until_decided(svc, token, inst=PHARMACY, log=again),
                ]

        candidates = sorted({a.token for a in attempts if a.reason == "ok" or a.status == 503})
        decided = list(itertools.chain(*await asyncio.gather(*(twice(t) for t in candidates))))
        assert wrong_answers(again) == []
        assert all(a.status == 200 for a in decided), "the store did not come back for good"
        accepted_before = {a.token for a in attempts if a.reason == "ok"}
        assert all(a.reason == "replayed" for a in decided if a.token in accepted_before)

        accepted_by: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for serial, a in enumerate(attempts + follow_ups + again):
            if a.reason == "ok":
                accepted_by[a.token].add(a.identity(serial))
        twice_accepted = {t[:40]: ids for t, ids in accepted_by.items() if len(ids) > 1}
        assert twice_accepted == {}

    async def main() -> None:
        async with running(
            world, redis_url, store_deadline_ms=DEADLINE_MS, auth_cache_seconds=60
        ) as svc:
            await scenario(svc, redis_server)

    asyncio.run(main())


def test_redis_killed_mid_load_accepts_nothing_and_recovers_after_restart(
    tmp_path, redis_server: RedisServer, redis_url: str
):
    # Redis here runs without persistence, so SIGKILL forgets every nonce: after the restart a
    # token accepted before the crash could be accepted again. That is why production Redis must
    # persist (appendonly yes, appendfsync always/everysec) or be replicated with failover; the
    # service cannot make up for it. What it can guarantee, and what is asserted: while the
    # store is gone nothing is accepted, and it recovers without a restart of its own.
    world = World(tmp_path)

    async def scenario(svc: Service) -> None:
        await present(svc, world.token("bob"))
        errors_before = await store_errors(svc)
        load = Load(svc, request_ids=False)
        load.start()
        await load.until_accepted_after(0.0)  # the load is flowing
        await asyncio.sleep(0.2)
        redis_server.kill()
        killed_at = time.monotonic()
        await asyncio.sleep(0.4)
        ready_while_down = await readyz(svc)
        await asyncio.sleep(0.3)
        attempts = await load.finish()
        errors_during = await store_errors(svc)

        assert wrong_answers(attempts) == []
        while_down = [a for a in attempts if a.started > killed_at]
        assert len(while_down) >= WORKERS, "too few requests while Redis was down"
        accepted_while_down = [a.doc for a in while_down if a.status != 503]
        assert accepted_while_down == []
        assert any(a.reason == "ok" and a.ended < killed_at for a in attempts)
        assert ready_while_down == 503
        assert errors_during - errors_before >= len(while_down)

        # A new, empty Redis on the same port. Its records are gone too: an operator re-loads
        # them (here through a separate client, so that the service's own connections must
        # find the new server by themselves).
        await asyncio.to_thread(redis_server.restart)
        loader = RedisStore(redis_server.url)
        try:
            await world.seed(loader)  # fresh scanner credentials, same holders
        finally:
            await loader.close()
        recovered = await answers_ok_again(svc)
        assert recovered.reason == "ok", (recovered.status, recovered.problem or recovered.doc)
        assert await readyz(svc) == 200
        token = world.token("alice")
        assert (await present_until_decided(svc, token)).reason == "ok"
        assert (await present_until_decided(svc, token)).reason == "replayed"

    async def main() -> None:
        async with running(
            world, redis_url, store_deadline_ms=DEADLINE_MS, auth_cache_seconds=60
        ) as svc:
            await scenario(svc)

    asyncio.run(main())
