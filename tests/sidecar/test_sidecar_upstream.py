"""The client to the centre, against small real servers started on free ports by the test.

What the breaker counts as a failure (connection error, timeout, 5xx) raises UpstreamFailed;
every other answer comes back untouched. No test asserts a duration: a slow server is one that
waits for an event the test sets only after the client has given up.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiohttp import web

from verifier.sidecar.upstream import (
    CONNECT,
    SERVER_ERROR,
    TIMEOUT,
    Upstream,
    UpstreamAnswer,
    UpstreamFailed,
)

JSON = "application/json"


class Centre:
    """A stand-in centre on a socket of its own, so it can stop and come back on its port."""

    def __init__(self) -> None:
        self.port = 0
        self.ready_status = 200
        self.release = asyncio.Event()  # a slow request waits for this
        self.client_ports: set[int] = set()
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_post("/v1/verify", self.verify)
        app.router.add_post("/status/{code}", self.status)
        app.router.add_post("/slow", self.slow)
        app.router.add_get("/readyz", self.ready)
        app.router.add_get("/v1/gateway/scanners", self.scanners)
        self.app = app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def verify(self, request: web.Request) -> web.Response:
        self.client_ports.add(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        echo = {
            "authorization": request.headers.get("Authorization"),
            "idempotency_key": request.headers.get("Idempotency-Key"),
            "content_type": request.headers.get("Content-Type"),
            "body": (await request.read()).decode(),
        }
        return web.Response(body=orjson.dumps(echo), content_type=JSON)

    async def status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, body=b'{"error":"x"}', content_type=JSON)

    async def slow(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response(body=b"{}", content_type=JSON)

    async def ready(self, request: web.Request) -> web.Response:
        return web.Response(status=self.ready_status, text="ready")

    async def scanners(self, request: web.Request) -> web.Response:
        return web.json_response({"authorization": request.headers.get("Authorization")})


def with_centre(scenario: Callable[[Centre], Awaitable[None]]) -> None:
    async def main() -> None:
        centre = Centre()
        await centre.start()
        try:
            await scenario(centre)
        finally:
            centre.release.set()
            await centre.stop()

    asyncio.run(main())


async def forward(up: Upstream, path: str = "/v1/verify", **kw: object) -> UpstreamAnswer:
    args: dict[str, object] = {
        "content_type": JSON,
        "authorization": "Bearer S1.secret",
        "request_id": "req-1",
    }
    args.update(kw)
    return await up.forward(path, b'{"token":"v4.public.x"}', **args)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_forward_carries_the_scanner_credential_and_request_id() -> None:
    async def scenario(centre: Centre) -> None:
        async with Upstream(centre.url) as up:
            answer = await forward(up)
            assert answer.status == 200 and answer.content_type.startswith(JSON)
            assert orjson.loads(answer.body) == {
                "authorization": "Bearer S1.secret",
                "idempotency_key": "req-1",
                "content_type": JSON,
                "body": '{"token":"v4.public.x"}',
            }
            bare = orjson.loads((await forward(up, authorization=None, request_id=None)).body)
            # nothing invented: no credential for a scanner without one, no id for a batch
            assert (bare["authorization"], bare["idempotency_key"]) == (None, None)

    with_centre(scenario)


def test_connections_are_kept_alive() -> None:
    async def scenario(centre: Centre) -> None:
        async with Upstream(centre.url) as up:
            for _ in range(10):
                await forward(up)
        assert len(centre.client_ports) == 1

    with_centre(scenario)


@pytest.mark.parametrize("code", [400, 401, 403, 404, 413, 415, 429])
def test_a_client_error_is_an_answer(code: int) -> None:
    async def scenario(centre: Centre) -> None:
        async with Upstream(centre.url) as up:
            answer = await forward(up, f"/status/{code}")
            assert (answer.status, answer.body) == (code, b'{"error":"x"}')

    with_centre(scenario)


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_a_server_error_is_a_failure(code: int) -> None:
    async def scenario(centre: Centre) -> None:
        async with Upstream(centre.url) as up:
            with pytest.raises(UpstreamFailed) as info:
                await forward(up, f"/status/{code}")
            assert info.value.kind == SERVER_ERROR
            assert info.value.answer is not None and info.value.answer.status == code

    with_centre(scenario)


def test_a_slow_centre_is_a_timeout_and_the_pool_recovers() -> None:
    async def scenario(centre: Centre) -> None:
        async with Upstream(centre.url, timeout_ms=50) as up:
            with pytest.raises(UpstreamFailed) as info:
                await forward(up, "/slow")  # the server waits until the test releases it
            assert info.value.kind == TIMEOUT
            assert not centre.release.is_set()  # the client gave up first
            assert (await forward(up)).status == 200

    with_centre(scenario)


def test_connection_refused() -> None:
    async def main() -> None:
        async with Upstream(f"http://127.0.0.1:{free_port()}") as up:
            with pytest.raises(UpstreamFailed) as info:
                await forward(up)
            assert info.value.kind == CONNECT
            assert await up.probe() is False

    asyncio.run(main())


def test_a_centre_that_stops_and_comes_back() -> None:
    async def scenario(centre: Centre) -> None:
        async with Upstream(centre.url) as up:
            assert (await forward(up)).status == 200  # a kept-alive connection now exists
            await centre.stop()
            with pytest.raises(UpstreamFailed) as info:
                await forward(up)
            assert info.value.kind == CONNECT
            await centre.start()  # same port
            assert (await forward(up)).status == 200

    with_centre(scenario)


def test_probe_follows_readiness() -> None:
    async def scenario(centre: Centre) -> None:
        async with Upstream(centre.url) as up:
            assert await up.probe() is True
            centre.ready_status = 503
            assert await up.probe() is False

    with_centre(scenario)


def test_get_with_the_gateway_credential() -> None:
    async def scenario(centre: Centre) -> None:
        async with Upstream(centre.url) as up:
            answer = await up.get("/v1/gateway/scanners", authorization="Gateway G1.secret")
            assert orjson.loads(answer.body) == {"authorization": "Gateway G1.secret"}

    with_centre(scenario)


class ClosingServer:
    """Raw HTTP/1.1: answers the first ``answer_first`` requests of each connection, then
    closes the connection on the next one without answering (a centre that dropped an idle
    kept-alive connection just as the sidecar reused it)."""

    def __init__(self, answer_first: int) -> None:
        self.answer_first = answer_first
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for _ in range(self.answer_first):
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\n\r\n{}"
                )
                await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the next request arrives: hang up
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def test_a_dropped_kept_alive_connection_is_retried_once() -> None:
    async def main() -> None:
        server = ClosingServer(answer_first=1)
        url = await server.start()
        async with Upstream(url) as up:
            assert (await forward(up)).status == 200
            # reuses the connection, which the server drops: sent again on a fresh one
            assert (await forward(up)).status == 200
        assert server.connections == 2
        assert server.server is not None
        server.server.close()

    asyncio.run(main())


def test_a_server_that_always_hangs_up_fails_after_one_retry() -> None:
    async def main() -> None:
        server = ClosingServer(answer_first=0)
        url = await server.start()
        async with Upstream(url) as up:
            with pytest.raises(UpstreamFailed) as info:
                await forward(up)
            assert info.value.kind == CONNECT
        assert server.connections == 2  # the first try and one retry, no more
        assert server.server is not None
        server.server.close()

    asyncio.run(main())


def test_misuse() -> None:
    with pytest.raises(ValueError):
        Upstream("127.0.0.1:8080")

    async def main() -> None:
        with pytest.raises(RuntimeError):
            await forward(Upstream("http://127.0.0.1:1"))

    asyncio.run(main())
