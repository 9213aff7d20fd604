"""Connection handling under hostile clients, the same in both framings (fast path on and off).

Real servers on free ports, raw sockets. Bounds are behaviour (who got answered, what was
buffered, what was logged), with time only as generous ceilings.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import resource
import socket
import time
from typing import Any

import orjson
import pytest
from service_process import ServeProcess, free_port, http_get, world_env
from service_world import HOSPITAL, World, running

from verifier.service.http1 import MAX_HEAD, Head, parse

FRAMINGS = [pytest.param(True, id="fast-path"), pytest.param(False, id="aiohttp")]


def port_of(svc: Any) -> int:
    return int(svc.url.rsplit(":", 1)[1])


def request(body: bytes, *headers: str, line: str = "POST /v1/verify HTTP/1.1") -> bytes:
    hs = ["Host: v", *headers]
    if not any(h.lower().startswith("content-length:") for h in hs):
        hs.append(f"Content-Length: {len(body)}")
    return (line + "\r\n" + "".join(h + "\r\n" for h in hs) + "\r\n").encode() + body


def verify_request(world: World, *headers: str) -> bytes:
    return request(
        orjson.dumps({"token": world.token("alice")}),
        "Content-Type: application/json",
        f"Authorization: Bearer {world.credentials[HOSPITAL]}",
        *headers,
    )


async def read_response(reader: asyncio.StreamReader) -> dict[str, Any]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return {"status": int(lines[0].split()[1]), "headers": headers, "body": body}


async def exchange(port: int, raw: bytes, timeout: float = 5.0) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        return await asyncio.wait_for(read_response(reader), timeout)
    finally:
        writer.close()


def raise_descriptor_limit(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return min(target, want)


# -- the flood: slow clients against one worker --------------------------------------------------

SLOW_CLIENTS = 3000
CAP = 500
HALF_HEAD = b"POST /v1/verify HTTP/1.1\r\nHost: v\r\nContent-Type: application/json\r\n"


def test_a_flood_of_slow_clients_does_not_keep_scanners_out(tmp_path, redis_url):
    """3 000 connections (half a head each, or nothing at all) against one worker capped at
    500 connections with a 1 s header timeout: every scan is answered throughout, every slow
    connection is closed by the server (408 after the timeout, or given way to a newer one),
    the worker never holds many more descriptors than the cap, and it is healthy afterwards."""
    limit = raise_descriptor_limit(SLOW_CLIENTS + 1024)
    if limit < SLOW_CLIENTS + 256:
        pytest.skip(f"this machine lets a process open only {limit} descriptors")
    world = World(tmp_path)
    asyncio.run(_seed(world, redis_url))
    port = free_port()
    env = world_env(
        world,
        redis_url,
        port,
        VERIFIER_HEADER_TIMEOUT_SECONDS="1",
        VERIFIER_MAX_CONNECTIONS=str(CAP),
        VERIFIER_STORE_DEADLINE_MS="2000",
    )
    with ServeProcess(env) as serve:
        serve.wait_ready()
        fd_dir = f"/proc/{serve.pid}/fd"
        base_fds = len(os.listdir(fd_dir))
        result = asyncio.run(_flood(world, port, fd_dir))
        status, _ = http_get(serve.url + "/healthz")
        _, metrics = http_get(serve.url + "/metrics")
    text = metrics.decode()
    scans, answered, fds, closed, left_open = result
    print(f"scans {answered}/{scans}, worker fds max {max(fds)} (base {base_fds}), {closed}")
    assert scans >= 20 and answered == scans, result
    assert left_open == 0
    assert closed["timeout"] > 0 and closed["408"] > 0  # half heads got their 408
    assert max(fds) <= CAP + base_fds + 16, (max(fds), base_fds)
    assert status == 200
    assert 'verifier_connection_timeouts_total{phase="header"}' in text
    assert 'verifier_connections_refused_total{cause="evicted"} 0' not in text


async def _seed(world: World, url: str) -> None:
    from verifier.store.redis import RedisStore

    store = RedisStore(url)
    try:
        await world.seed(store)
    finally:
        await store.close()


async def _flood(world: World, port: int, fd_dir: str) -> tuple[Any, ...]:
    stop = asyncio.Event()
    fds: list[int] = []
    closed = {"timeout": 0, "408": 0, "reset": 0, "eof": 0}
    scans = answered = 0
    header_timeout, ceiling = 1.0, 15.0

    async def watch_descriptors() -> None:
        while not stop.is_set():
            fds.append(len(os.listdir(fd_dir)))
            await asyncio.sleep(0.05)

    async def scanner() -> None:
        nonlocal scans, answered
        while not stop.is_set():
            scans += 1
            resp = await exchange(port, verify_request(world, "Connection: close"), 10)
            if resp["status"] == 200 and orjson.loads(resp["body"])["reason"] == "ok":
                answered += 1
            await asyncio.sleep(0.05)

    async def slow(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opened = time.monotonic()
        if i % 2:
            writer.write(HALF_HEAD)
        try:
            got = await asyncio.wait_for(reader.read(), ceiling)
            closed["408" if got.startswith(b"HTTP/1.1 408") else "eof"] += 1
            if got and time.monotonic() - opened > header_timeout:
                closed["timeout"] += 1
        except ConnectionResetError:
            closed["reset"] += 1  # gave way to a newer connection
        finally:
            writer.close()

    watchers = [asyncio.create_task(watch_descriptors()), asyncio.create_task(scanner())]
    slow_ones = []
    for wave in range(SLOW_CLIENTS // 250):  # 250 new slow clients every 0.2 s
        slow_ones += [asyncio.create_task(slow(wave * 250 + i)) for i in range(250)]
        await asyncio.sleep(0.2)
    results = await asyncio.gather(*slow_ones, return_exceptions=True)
    stop.set()
    await asyncio.gather(*watchers)
    left_open = sum(isinstance(r, TimeoutError | asyncio.TimeoutError) for r in results)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == left_open, failed[:3]
    return scans, answered, fds, closed, left_open


# -- back-pressure ---------------------------------------------------------------------------


def test_a_client_that_never_reads_cannot_make_the_server_buffer(tmp_path, redis_url):
    """Pipelined requests from a client that never reads its answers: the server stops
    reading once its socket's write buffer is full, so what it holds stays bounded."""
    world = World(tmp_path)
    one = request(b'{"token":"x"}', "Content-Type: application/json")  # 401 each
    chunk = one * (65536 // len(one))

    async def scenario() -> tuple[int, int, int]:
        async with running(world, redis_url) as svc:
            sock = socket.create_connection(("127.0.0.1", port_of(svc)))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            sent = 0
            try:
                while sent < 256 * 1024 * 1024:
                    await asyncio.wait_for(loop.sock_sendall(sock, chunk), 1.0)
                    sent += len(chunk)
            except TimeoutError:
                pass  # the server stopped reading
            conns = list(svc.site.front.connections)
            held = max(len(c.buf) for c in conns)
            queued = max(c.transport.get_write_buffer_size() for c in conns if c.transport)
            sock.close()
            return sent, held, queued

    sent, held, queued = asyncio.run(scenario())
    assert sent < 64 * 1024 * 1024, sent  # kernel buffers, not the server's memory
    assert held <= 131072 + 262144, held
    assert queued <= 1024 * 1024, queued


# -- log hygiene -----------------------------------------------------------------------------

SECRET_HEADER = "Authorization: Bearer {credential}"


def malformed_requests(world: World, token: str) -> dict[str, bytes]:
    auth = f"Authorization: Bearer {world.credentials[HOSPITAL]}"
    body = orjson.dumps({"token": token})
    ok = request(body, "Content-Type: application/json", auth)
    return {
        "obs-fold": request(body, "Content-Type: application/json", auth[:20], " " + auth[20:]),
        "bare LF": ok.replace(b"\r\n", b"\n"),
        # a whole request first (answered 200, then the connection closes)
        "after close": request(b"", auth, "Connection: close", line="GET /healthz HTTP/1.1")
        + b"\x01garbage "
        + auth.encode()
        + body
        + b"\r\n\r\n",
        "8 KB header": request(
            body, "Content-Type: application/json", auth, "X-Pad: " + "\x7f" * 8200
        ),
        "bad header char": request(body, "Content-Type: application/json", auth + "\x01"),
    }


@pytest.mark.parametrize("fast_path", FRAMINGS)
def test_malformed_requests_leave_no_secret_in_log_or_answer(
    tmp_path, redis_url, caplog, fast_path
):
    world = World(tmp_path)
    token = world.token("alice")

    async def scenario() -> list[tuple[str, dict[str, Any]]]:
        async with running(world, redis_url, fast_path=fast_path) as svc:
            out = []
            for name, raw in malformed_requests(world, token).items():
                out.append((name, await exchange(port_of(svc), raw)))
            return out

    caplog.set_level(logging.DEBUG)
    answers = asyncio.run(scenario())
    secret = world.credentials[HOSPITAL].split(".")[-1]
    logged = [r for r in caplog.records if r.name != "asyncio"]
    for name, resp in answers:
        if name != "after close":
            assert resp["status"] == 400, (name, resp)
            assert orjson.loads(resp["body"])["error"] == "malformed_request", name
        assert secret.encode() not in resp["body"] and token.encode() not in resp["body"]
        assert "verifier" == resp["headers"]["server"]
    text = "\n".join(r.getMessage() + str(r.exc_info or "") + str(r.exc_text or "") for r in logged)
    assert secret not in text and token not in text
    refusals = [r for r in logged if "not well-formed HTTP/1.1" in r.getMessage()]
    assert len(answers) - 1 <= len(refusals) <= len(answers)  # one line each, no traceback
    assert all(r.exc_info is None for r in logged)


def test_malformed_requests_are_logged_at_a_bounded_rate(tmp_path, redis_url, caplog):
    world = World(tmp_path)

    async def scenario() -> None:
        async with running(world, redis_url) as svc:
            bad = malformed_requests(world, world.token("alice"))["8 KB header"]
            for _ in range(60):
                assert (await exchange(port_of(svc), bad))["status"] == 400

    caplog.set_level(logging.INFO)
    asyncio.run(scenario())
    assert len([r for r in caplog.records if "not well-formed" in r.getMessage()]) <= 11


# -- Content-Encoding ------------------------------------------------------------------------

BOMB = gzip.compress(b"\0" * (8 * 1024 * 1024))  # 8 MiB inflated, ~8 KB sent
ROUTES = [
    ("POST", "/v1/verify"),
    ("POST", "/v1/verify/batch"),
    ("GET", "/healthz"),
    ("POST", "/healthz"),
    ("GET", "/no/such/path"),
    ("POST", "/v1/reconcile"),
]


@pytest.mark.parametrize("fast_path", FRAMINGS)
def test_every_content_encoding_but_identity_is_refused_on_every_route(
    tmp_path, redis_url, fast_path
):
    world = World(tmp_path)

    async def scenario() -> list[Any]:
        async with running(world, redis_url, fast_path=fast_path) as svc:
            port = port_of(svc)
            auth = f"Authorization: Bearer {world.credentials[HOSPITAL]}"
            out = []
            for method, path in ROUTES:
                for encoding in ("gzip", "deflate", "br", "identity, gzip"):
                    raw = request(
                        BOMB,
                        "Content-Type: application/json",
                        auth,
                        f"Content-Encoding: {encoding}",
                        line=f"{method} {path} HTTP/1.1",
                    )
                    out.append((method, path, encoding, await exchange(port, raw)))
            gz = gzip.compress(orjson.dumps({"token": world.token("alice")}))
            token_gz = request(gz, "Content-Type: application/json", auth, "Content-Encoding: gzip")
            out.append(("POST", "/v1/verify", "small gzip", await exchange(port, token_gz)))
            plain = verify_request(world, "Content-Encoding: identity")
            out.append(("POST", "/v1/verify", "identity", await exchange(port, plain)))
            return out

    answers = asyncio.run(scenario())
    for method, path, encoding, resp in answers[:-1]:
        assert resp["status"] == 415, (method, path, encoding, resp)
        assert orjson.loads(resp["body"])["error"] == "unsupported_media_type"
    assert orjson.loads(answers[-1][3]["body"])["reason"] == "ok"


def test_both_framings_refuse_a_gzipped_token_alike(tmp_path, redis_url):
    world = World(tmp_path)
    gz = gzip.compress(orjson.dumps({"token": world.token("alice")}))

    async def one(fast_path: bool) -> tuple[int, bytes]:
        async with running(world, redis_url, fast_path=fast_path) as svc:
            auth = f"Authorization: Bearer {world.credentials[HOSPITAL]}"
            raw = request(gz, "Content-Type: application/json", auth, "Content-Encoding: gzip")
            resp = await exchange(port_of(svc), raw)
            return resp["status"], resp["body"]

    assert asyncio.run(one(True)) == asyncio.run(one(False))


# -- heads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fast_path", FRAMINGS)
def test_a_head_ended_by_a_bare_cr_is_refused_at_once(tmp_path, redis_url, fast_path):
    """Not held until a timeout (both are a minute here): 400 as soon as it arrives."""
    world = World(tmp_path)
    patient = {"header_timeout_seconds": 60, "keepalive_seconds": 60}

    async def scenario() -> dict[str, Any]:
        async with running(world, redis_url, fast_path=fast_path, **patient) as svc:
            raw = verify_request(world).replace(b"\r\n\r\n", b"\r\n\r", 1)
            return await exchange(port_of(svc), raw, timeout=10)

    resp = asyncio.run(scenario())
    assert resp["status"] == 400
    assert orjson.loads(resp["body"])["error"] == "malformed_request"


class CountingParser:
    def __init__(self, inner: Any) -> None:
        self.inner, self.fed = inner, 0

    def feed_data(self, data: bytes) -> None:
        self.fed += len(data)
        self.inner.feed_data(data)


def test_a_head_arriving_a_byte_at_a_time_is_parsed_once():
    """Each byte of the head reaches llhttp once, however it is cut."""
    raw = request(b"{}", "Content-Type: application/json", "X-Pad: " + "a" * (MAX_HEAD - 200))
    head = Head()
    assert head.feed(b"") is None  # makes the parser, feeds nothing
    counter = CountingParser(head.parser)
    head.parser = counter  # type: ignore[assignment]
    buf = bytearray()
    for i, byte in enumerate(raw):
        buf.append(byte)
        got = parse(buf, 8192, head)
        if i < len(raw) - 1:
            assert got is None
    assert got is not None and not isinstance(got, type(None))
    end = raw.index(b"\r\n\r\n") + 4
    assert counter.fed == end


@pytest.mark.parametrize("fast_path", FRAMINGS)
def test_a_head_sent_a_byte_per_segment_is_answered(tmp_path, redis_url, fast_path):
    world = World(tmp_path)

    async def scenario() -> dict[str, Any]:
        async with running(world, redis_url, fast_path=fast_path) as svc:
            raw = verify_request(world)
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(svc))
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(raw)):
                writer.write(raw[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0)
            resp = await asyncio.wait_for(read_response(reader), 10)
            writer.close()
            return resp

    resp = asyncio.run(scenario())
    assert orjson.loads(resp["body"])["reason"] == "ok"


# -- keep-alive ------------------------------------------------------------------------------


@pytest.mark.parametrize("fast_path", FRAMINGS)
def test_connections_handed_to_aiohttp_keep_the_keepalive_setting(tmp_path, redis_url, fast_path):
    """/healthz is aiohttp's in both framings: its idle connection closes after the setting,
    not after aiohttp's own hour."""
    world = World(tmp_path)

    async def scenario() -> bytes:
        async with running(world, redis_url, fast_path=fast_path, keepalive_seconds=0.5) as svc:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(svc))
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: v\r\n\r\n")
            resp = await asyncio.wait_for(read_response(reader), 5)
            assert resp["status"] == 200 and resp["headers"]["server"] == "verifier"
            rest = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return rest

    assert asyncio.run(scenario()) == b""
