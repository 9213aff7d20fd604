"""Clock skew between verifiers: two real ``verifier serve`` processes on one Redis, one of them
under libfaketime with its clock 30 s ahead (or behind) of the other's.

The documented time rules, judged by each verifier on its own clock ``now``: a token is
``expired`` once ``now > exp + 30`` (exp leeway), ``issued_in_future`` while ``iat > now + 5``
and ``not_yet_valid`` while ``nbf > now + 5`` (future leeway). Each edge token below sits 2 s
inside or outside one verifier's edge (room for a slow machine), and is presented to both.

- Every token gets, from each verifier, the verdict the rules give for that verifier's clock,
  except that the second acceptance of one token is ``replayed``: no token is accepted by both.
- The same once the faster verifier's own acceptance window has closed: the nonce it claimed
  must outlive the slower verifier's window too (it once lived only as long as the claiming
  verifier's clock said, and the slower one accepted the token again).

libfaketime comes from Debian's ``faketime`` package (.ci/run installs it).
"""

from __future__ import annotations

import asyncio
import glob
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp
import pytest
from redis_server import RedisServer
from service_process import ServeProcess, free_port, world_env
from service_world import HOSPITAL, World

from verifier import trust
from verifier.store import open_store

pytestmark = pytest.mark.timeout(120)

SKEW_S = 30
EXP_LEEWAY_S = 30  # the defaults, documented in docs/OPERATIONS.md and policy.py
FUTURE_LEEWAY_S = 5
MARGIN_S = 2  # how far inside or outside an edge each token sits
LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")) + sorted(
    glob.glob("/usr/lib/faketime/libfaketime.so.1")
)


@dataclass
class Verifier:
    name: str
    offset: float  # seconds its clock is ahead of the real one
    proc: ServeProcess


@pytest.fixture(scope="module", params=[+SKEW_S, -SKEW_S], ids=["ahead", "behind"])
def pair(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[World, Verifier, Verifier]]:
    """(world, a verifier on the real clock, one ``param`` seconds off), on one Redis."""
    if not LIBFAKETIME:
        pytest.skip("libfaketime is not installed: apt-get install -y faketime (.ci/run does)")
    redis_server.ensure_running()
    client = redis_server.client()
    client.flushall()
    client.close()
    world = World(tmp_path_factory.mktemp("skew"))
    now = time.time()  # a trust list both clocks see as in force
    token = trust.sign(world.issuer_keys(), world.root.secret, 2, now - 600, now + 86400)
    (world.dir / "trust.paseto").write_text(token)

    async def seed() -> None:
        store = await open_store(redis_server.url)
        try:
            await world.seed(store)
        finally:
            await store.close()

    asyncio.run(seed())
    offset = float(request.param)
    common = {"VERIFIER_AUTH_CACHE_SECONDS": "0", "VERIFIER_STORE_DEADLINE_MS": "2000"}
    real_env = world_env(world, redis_server.url, free_port(), **common)
    skewed_env = world_env(
        world,
        redis_server.url,
        free_port(),
        **common,
        LD_PRELOAD=LIBFAKETIME[0],
        FAKETIME=f"{offset:+.0f}s",
        FAKETIME_DONT_FAKE_MONOTONIC="1",  # timers and timeouts keep the real pace
    )
    with ServeProcess(real_env) as real, ServeProcess(skewed_env) as skewed:
        real.wait_ready()
        skewed.wait_ready()
        yield world, Verifier("real", 0.0, real), Verifier(f"{offset:+.0f}s", offset, skewed)


def expected(v: Verifier, iat: float, exp: float, nbf: float | None, t: float) -> str:
    """The documented verdict of verifier ``v`` at real time ``t`` (core rules, then ok)."""
    now = t + v.offset
    if iat > now + FUTURE_LEEWAY_S:
        return "issued_in_future"
    if nbf is not None and nbf > now + FUTURE_LEEWAY_S:
        return "not_yet_valid"
    if now > exp + EXP_LEEWAY_S:
        return "expired"
    return "ok"


def edge_tokens(a: Verifier, b: Verifier, t: float) -> list[tuple[str, float, float, float | None]]:
    """(name, iat, exp, nbf) at each verifier's exp / iat / nbf edges, MARGIN_S either side."""
    out: list[tuple[str, float, float, float | None]] = []
    for v in (a, b):
        now = t + v.offset
        for side, d in (("inside", -MARGIN_S), ("outside", +MARGIN_S)):
            exp = now - EXP_LEEWAY_S - d  # inside: still accepted; outside: expired
            out.append((f"{v.name} exp edge {side}", exp - 60, exp, None))
            iat = now + FUTURE_LEEWAY_S + d
            out.append((f"{v.name} iat edge {side}", iat, iat + 60, None))
            nbf = now + FUTURE_LEEWAY_S + d
            out.append((f"{v.name} nbf edge {side}", now - 10, now + 120, nbf))
    return out


async def present(v: Verifier, world: World, token: str) -> str:
    headers = {"Authorization": f"Bearer {world.credentials[HOSPITAL]}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            v.proc.url + "/v1/verify", json={"token": token}, headers=headers
        ) as r:
            doc = await r.json()
            assert r.status == 200, doc
            return str(doc["reason"])


def test_edge_tokens_get_each_verifiers_documented_verdict_and_one_acceptance(pair):
    world, a, b = pair
    t = time.time()
    judged = []
    for n, (name, iat, exp, nbf) in enumerate(edge_tokens(a, b, t)):
        token = world.token("alice", iat=iat, ttl=round(exp - iat), nbf=nbf)
        first, second = (a, b) if n % 2 == 0 else (b, a)  # both orders
        want_first = expected(first, iat, exp, nbf, time.time())
        got_first = asyncio.run(present(first, world, token))
        want_second = expected(second, iat, exp, nbf, time.time())
        got_second = asyncio.run(present(second, world, token))
        if want_first == "ok" and want_second == "ok":
            want_second = "replayed"
        judged.append(
            (name, first.name, got_first, want_first, second.name, got_second, want_second)
        )
    wrong = [j for j in judged if j[2] != j[3] or j[5] != j[6]]
    assert wrong == [], "\n".join(map(str, wrong))
    both = [j for j in judged if j[2] == "ok" and j[5] == "ok"]
    assert both == []


def test_the_clocks_differ_by_the_skew(pair):
    _, a, b = pair
    dates = []
    for v in (a, b):
        with urllib.request.urlopen(v.proc.url + "/healthz", timeout=5) as resp:
            dates.append(parsedate_to_datetime(resp.headers["Date"]).timestamp())
    assert abs((dates[1] - dates[0]) - b.offset) <= 2, dates


def test_no_token_is_accepted_by_both_after_the_first_nonce_expires(pair, redis_server):
    world, a, b = pair
    fast, slow = (b, a) if b.offset > a.offset else (a, b)
    t = time.time()
    # Accepted by the fast clock 2 s before its own exp + leeway edge. Kept only by that clock,
    # its nonce would be gone ~3 s later; the claim policy keeps it clock_skew longer.
    exp = t + fast.offset - EXP_LEEWAY_S + MARGIN_S
    token = world.token("alice", iat=exp - 60, ttl=60)
    assert asyncio.run(present(fast, world, token)) == "ok"
    client = redis_server.client()
    try:
        deadline = time.monotonic() + 4  # past where the nonce used to expire
        while client.keys("vn:*") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        client.close()
    # The slow clock is 30 s behind: by its own rules the token is 25 s from its edge.
    assert expected(slow, exp - 60, exp, None, time.time()) == "ok"
    assert asyncio.run(present(slow, world, token)) != "ok", "accepted by both verifiers"
