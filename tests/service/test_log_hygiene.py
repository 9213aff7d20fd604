"""Log hygiene: no log line and no answer holds a full token, an 18-character ID number or a
credential's secret, whatever a client sends.

One real ``verifier serve`` (Redis store, access log on, the fast path on, as deployed) gets,
case by case: every row of the service catalogue, the malformed-request corpus and the rest of
the fast-path fuzz corpus (tests/fuzz/corpus/http1, the placeholder credential swapped for
the scanner's real one), every token of the token-core fuzz corpus (as JSON and as text), and
store faults (Redis paused, then back). The service's output is attributed to the case that was
being sent when it was written; each group is judged on its own, naming the cases that leak.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest
import test_service_catalogue as cat
from redis_server import RedisServer
from service_process import ServeProcess, free_port, world_env
from service_world import HOLDERS, HOSPITAL, World
from test_service_process import seed

from verifier.idnumber import check_char

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import seeds  # noqa: E402  (tests/fuzz/seeds.py: the placeholder credential)

pytestmark = pytest.mark.timeout(240)

FUZZ = Path(__file__).resolve().parents[1] / "fuzz" / "corpus"
GROUPS = ("catalogue", "malformed", "fuzz-http1", "fuzz-core", "faults")
EXCHANGE_TIMEOUT_S = 2.0
_TOKEN = re.compile(rb"v[0-9]\.(?:public|local)\.[A-Za-z0-9_-]{40,}(?:\.[A-Za-z0-9_-]+)?")
_ID = re.compile(rb"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
ID_NUMBERS = [row[5].encode() for row in HOLDERS if row[5]]


@dataclass
class Case:
    group: str
    name: str
    sent: bytes  # what the client sent (for the tokens it holds)
    answers: bytes = b""
    log: list[str] = field(default_factory=list)


def _is_id_number(text: bytes) -> bool:
    s = text.decode().upper()
    return check_char(s[:17]) == s[17]


def leaks(case: Case, secret: str) -> list[str]:
    """What of the secrets ``case`` carried shows up in its log lines or its answers."""
    found = []
    tokens = {m[0] for m in _TOKEN.finditer(case.sent)}
    for where, text in (("log", "\n".join(case.log).encode()), ("answer", case.answers)):
        if secret.encode() in text:
            found.append(f"{where}: the credential's secret")
        for token in tokens:
            if token in text:
                found.append(f"{where}: a full token ({token[:24].decode()}…)")
        for m in _ID.finditer(text):
            if m[0] in ID_NUMBERS or _is_id_number(m[0]):
                found.append(f"{where}: an ID number")
    return found


async def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; whatever comes back within the timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = b""
    try:
        writer.write(data)
        await writer.drain()
        deadline = time.monotonic() + EXCHANGE_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                break
            if not chunk:
                break
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if sep and m and len(body) >= int(m[1]):
                break  # one whole answer: enough to judge (pipelined cases send the rest)
    except ConnectionError:
        pass
    finally:
        writer.close()
    return got


@dataclass
class Run:
    cases: list[Case]
    secret: str


def _send_all(world: World, proc: ServeProcess, redis_server: RedisServer) -> Run:
    port = int(proc.url.rsplit(":", 1)[1])
    credential = world.credentials[HOSPITAL]
    cases: list[Case] = []
    starts: list[tuple[int, int]] = []  # (stderr, stdout) lines before each case

    async def one(case: Case, send) -> None:  # type: ignore[no-untyped-def]
        starts.append((len(proc.stderr), len(proc.stdout)))
        case.answers = await send()
        await asyncio.sleep(0.02)  # the service's lines for this case arrive meanwhile
        cases.append(case)

    async def main() -> None:
        ctx = cat.Ctx(world)
        for row in cat.ROWS:
            req = row.make(ctx)
            sent = b"".join([req.encode(credential)[0], *req.encode(credential)[1]])
            case = Case("catalogue", row.name, sent + (req.secret or "").encode())

            async def send(req: cat.Req = req) -> bytes:
                a = await cat.exchange(port, req, credential)
                return a.head + a.body

            await one(case, send)
        for path in sorted((FUZZ / "http1").iterdir()):
            data = path.read_bytes().replace(seeds.CREDENTIAL.encode(), credential.encode())
            group = "malformed" if path.name.startswith("malformed-") else "fuzz-http1"

            async def send(data: bytes = data) -> bytes:
                return await _raw(port, data)

            await one(Case(group, path.name, data), send)
        headers = {"Authorization": f"Bearer {credential}"}
        async with aiohttp.ClientSession() as http:
            for path in sorted((FUZZ / "core").glob("*.token")):
                token = path.read_bytes()

                async def send(token: bytes = token) -> bytes:
                    out = b""
                    bodies = [("text/plain", token)]
                    try:
                        bodies.append(("application/json", orjson.dumps({"token": token.decode()})))
                    except UnicodeDecodeError:
                        pass
                    for ctype, body in bodies:
                        h = {**headers, "Content-Type": ctype}
                        async with http.post(proc.url + "/v1/verify", data=body, headers=h) as r:
                            out += f"{r.status} {r.headers}".encode() + await r.read()
                    return out

                await one(Case("fuzz-core", path.name, token), send)
            # Faults: the store stops answering, then comes back.
            for name in ("redis_paused", "redis_back"):
                if name == "redis_paused":
                    redis_server.pause()
                else:
                    redis_server.resume()
                tokens = [world.token("alice") for _ in range(3)]

                async def send(tokens: list[str] = tokens) -> bytes:
                    out = b""
                    for t in tokens:
                        body = orjson.dumps({"token": t, "request_id": "r-" + t[-8:]})
                        h = {**headers, "Content-Type": "application/json"}
                        async with http.post(proc.url + "/v1/verify", data=body, headers=h) as r:
                            out += f"{r.status} {r.headers}".encode() + await r.read()
                    return out

                await one(Case("faults", name, "\n".join(tokens).encode()), send)
        await asyncio.sleep(0.5)
        # Each case's lines: from its start to the next case's start (the last: to the end).
        ends = [*starts[1:], (len(proc.stderr), len(proc.stdout))]
        for case, (e0, o0), (e1, o1) in zip(cases, starts, ends, strict=True):
            case.log = proc.stderr[e0:e1] + proc.stdout[o0:o1]

    try:
        asyncio.run(main())
    finally:
        redis_server.ensure_running()
    return Run(cases, credential.split(".", 1)[1])


@pytest.fixture(scope="module")
def run(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    redis_server.ensure_running()
    client = redis_server.client()
    client.flushall()
    client.config_set("maxmemory-policy", "noeviction")
    client.close()
    world = World(tmp_path_factory.mktemp("hygiene"))
    seed(world, redis_server.url)
    env = world_env(
        world,
        redis_server.url,
        free_port(),
        VERIFIER_ACCESS_LOG="true",
        VERIFIER_FAST_PATH="true",
        VERIFIER_AUTH_CACHE_SECONDS="0",
        VERIFIER_STORE_DEADLINE_MS="300",
    )
    with ServeProcess(env) as proc:
        proc.wait_ready()
        yield _send_all(world, proc, redis_server)


@pytest.mark.parametrize("group", GROUPS)
def test_no_log_line_or_answer_holds_a_secret(run: Run, group: str):
    cases = [c for c in run.cases if c.group == group]
    assert cases, f"no {group} cases were sent"
    found = {c.name: leak for c in cases if (leak := leaks(c, run.secret))}
    assert found == {}, "\n".join(f"{name}: {', '.join(v)}" for name, v in found.items())


def test_the_run_had_something_to_find(run: Run):
    """The checks above look at real traffic: tokens, the ID number and the credential."""
    sent = b"".join(c.sent for c in run.cases)
    assert len({m[0] for m in _TOKEN.finditer(sent)}) > 100
    assert ID_NUMBERS[0] in sent
    assert run.secret.encode() in sent
    assert sum(len(c.log) for c in run.cases) > 100  # the access log wrote lines
    assert any(c.group == "faults" and b"503" in c.answers for c in run.cases)
