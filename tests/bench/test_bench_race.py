"""`bench race`: the same token on 50 connections at once, against the real service."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

import pytest
from service_world import HOSPITAL, Service, World, running

from bench import race as race_module
from bench.race import RaceError, RaceOptions, RaceResult, run_race
from verifier import paserk


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("redis_url")


# The race tests single use, not latency: with the default 100 ms store deadline of
# service_world, 50 claims at once on a cold Redis connection pool (or a busy 2-core test
# machine) can answer 503 store_unavailable, which is failing closed but not "replayed".
DEADLINE_MS = 2000


def _race(
    world: World, store_url: str, token_for: str, copies: int, json_body: bool = False
) -> RaceResult:
    async def main() -> RaceResult:
        async with running(world, store_url, store_deadline_ms=DEADLINE_MS) as svc:
            target, credential = f"{svc.url}/v1/verify", world.credentials[HOSPITAL]
            opts = RaceOptions(target, credential, world.token(token_for), copies, json_body)
            return await run_race(opts)

    return asyncio.run(main())


@pytest.mark.parametrize("json_body", [False, True])
def test_exactly_one_of_50_copies_is_valid(tmp_path, store_url, json_body):
    result = _race(World(tmp_path), store_url, "alice", copies=50, json_body=json_body)
    assert result.valid == 1
    assert result.verdicts == {"ok": 1, "replayed": 49}
    assert result.passed


def test_an_unenrolled_holder_still_wins_only_once(tmp_path, store_url):
    result = _race(World(tmp_path), store_url, "nobody", copies=20)
    assert result.verdicts == {"not_enrolled": 1, "replayed": 19}
    assert result.valid == 1 and result.passed


def test_verdict_counts_decide_pass_or_fail():
    assert RaceResult(3, Counter(ok=1, replayed=2), valid=1).passed
    assert not RaceResult(3, Counter(ok=2, replayed=1), valid=2).passed  # two winners
    assert not RaceResult(3, Counter(expired=3), valid=0).passed  # no winner
    assert not RaceResult(3, Counter(ok=1, http_503=2), valid=1).passed  # losers not replayed


@pytest.mark.parametrize(
    "target, copies",
    [
        ("http://10.1.2.3:8080/v1/verify", 5),  # not loopback
        ("https://127.0.0.1/v1/verify", 5),  # only plain http
        ("http://127.0.0.1:8080/v1/verify", 0),  # no copies
    ],
)
def test_bad_options_are_refused_before_any_traffic(target, copies):
    with pytest.raises(RaceError):
        asyncio.run(run_race(RaceOptions(target, "s-000000000000.x", "t", copies)))


def test_a_non_ascii_token_is_refused():
    with pytest.raises(RaceError, match="ASCII"):
        asyncio.run(run_race(RaceOptions("http://127.0.0.1:1/v1/verify", "c", "v4.public.é")))


def test_command_line_mints_with_key_and_exits_0(tmp_path, capsys):
    world = World(tmp_path)
    key = tmp_path / "nhsa.secret"
    key.write_text(paserk.secret_to_paserk(world.nhsa.secret))
    parser = argparse.ArgumentParser()
    race_module.add_parser(parser.add_subparsers())

    async def scenario(svc: Service) -> tuple[int, int]:
        base = ["race", "--target", f"{svc.url}/v1/verify", "--credential"]
        args = parser.parse_args(
            [*base, world.credentials[HOSPITAL], "--key", str(key), "--iss", "nhsa"]
            + ["--sub", "bob", "--copies", "30"]
        )
        won = await asyncio.to_thread(args.handler, args)
        used = world.token("alice")
        first, _ = await svc.verify(used)
        again = parser.parse_args([*base, world.credentials[HOSPITAL], "--token", used])
        lost = await asyncio.to_thread(again.handler, again)
        return won, lost

    async def main() -> tuple[int, int]:
        async with running(world, "memory://", store_deadline_ms=DEADLINE_MS) as svc:
            return await scenario(svc)

    won, lost = asyncio.run(main())
    out = capsys.readouterr().out
    assert won == 0 and "PASS: exactly one copy valid, 29 replayed" in out
    assert lost == 1 and "FAIL: 0 valid" in out  # a token already used: no copy may win


def test_command_line_exits_2_when_nothing_listens(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    race_module.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["race", "--target", "http://127.0.0.1:9/v1/verify", "--credential", "c"]
        + ["--token", "v4.public.x", "--copies", "2", "--timeout", "5"]
    )
    assert args.handler(args) == 2
    assert "connection to 127.0.0.1:9 failed" in capsys.readouterr().err
