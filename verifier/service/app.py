"""The aiohttp framing of the scanner API: each route moves bytes between aiohttp and the
:class:`~verifier.service.endpoint.Endpoint`, which decides everything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from verifier import errors as E
from verifier.errors import RequestRefused
from verifier.service.connections import AiohttpConnection, RefusalLog
from verifier.service.endpoint import Answer, Endpoint, Runtime
from verifier.service.gateway_api import GatewayApi

_JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def to_response(answer: Answer) -> web.Response:
    headers = {"Content-Type": _JSON, "Server": "verifier"}  # not aiohttp's, with versions
    if answer.headers:
        headers.update(answer.headers)
    return web.Response(body=answer.body, status=answer.status, headers=headers)


class AiohttpRequest:
    """An aiohttp request as the endpoint reads it (:class:`verifier.service.endpoint.Request`)."""

    __slots__ = ("_r",)

    def __init__(self, request: web.Request) -> None:
        self._r = request

    @property
    def authorization(self) -> str | None:
        return self._r.headers.get("Authorization")

    @property
    def content_type(self) -> str:
        return self._r.content_type

    @property
    def content_length(self) -> int | None:
        return self._r.content_length

    @property
    def idempotency_key(self) -> str | None:
        return self._r.headers.get("Idempotency-Key")

    body = None  # read on demand (read_body)

    async def read_body(self, limit: int) -> bytes:
        content, length = self._r.content, self._r.content_length
        try:
            if length is not None:  # checked against the limit by the endpoint
                body = await content.readany()  # usually the whole body at once
                while len(body) < length:
                    more = await content.readany()
                    if not more:
                        break
                    body += more
                return body
            # Chunked: read at most limit + 1 bytes.
            chunks: list[bytes] = []
            total = 0
            while total <= limit:
                chunk = await content.read(limit + 1 - total)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        except (ConnectionError, asyncio.IncompleteReadError) as err:
            raise RequestRefused(E.MALFORMED_REQUEST, "the body ended early") from err
        if total > limit:
            raise RequestRefused(E.BODY_TOO_LARGE, f"body over {limit} bytes")
        return b"".join(chunks)


class QuietRequestHandler(RequestHandler):
    """aiohttp's protocol, except for a request it cannot parse (an obs-folded or oversized
    header, bare LF, bytes after ``Connection: close`` …): aiohttp would log the request with
    a traceback and echo it in its 400. Here it is one rate-limited line (cause and peer) and
    the endpoint's JSON answer, without a byte of the request."""

    def __init__(
        self, manager: web.Server, *, endpoint: Endpoint, refusals: RefusalLog, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._endpoint = endpoint
        self._refusals = refusals

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # a bug or a timeout of aiohttp's own: logged as aiohttp does
            return super().handle_error(request, status, exc, message)
        self._endpoint.m.connections_refused["malformed"] += 1
        self._refusals.refused(type(exc).__name__ if exc else f"HTTP {status}", request.remote)
        response = to_response(self._endpoint.malformed_http(status))
        response.force_close()
        return response


# A route a framing adds beside the scanner API (a sidecar's status): path, method, answer.
ExtraRoute = tuple[str, str, Callable[[], Awaitable[Answer]]]


def _answering(answer: Callable[[], Awaitable[Answer]]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return to_response(await answer())

    return handler


def build_app(
    rt: Runtime, endpoint: Endpoint | None = None, extra_routes: Sequence[ExtraRoute] = ()
) -> web.Application:
    ep = endpoint or Endpoint(rt)
    gw = GatewayApi(ep)  # the centre's routes for gateway sidecars (404 on a sidecar)

    @web.middleware
    async def framing(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Mark the handler's time on the connection (connections.py), and refuse any
        Content-Encoding (the endpoint's rule) before a handler could read the body."""
        transport = request.transport
        conn = transport.get_protocol() if transport is not None else None
        governed = conn if isinstance(conn, AiohttpConnection) else None
        if governed is not None:
            governed.handling()
        try:
            encodings = request.headers.getall("Content-Encoding", None)
            if encodings is not None:
                refusal = ep.encoding_refusal(", ".join(encodings))
                if refusal is not None:
                    return to_response(refusal)
            return await handler(request)
        finally:
            if governed is not None:
                governed.handled()

    @web.middleware
    async def internal_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001 - a bug: internal_error logs it with its traceback
            return to_response(ep.internal_error())

    async def verify(request: web.Request) -> web.Response:
        return to_response(await ep.verify(AiohttpRequest(request), time.perf_counter()))

    async def verify_batch(request: web.Request) -> web.Response:
        return to_response(await ep.verify_batch(AiohttpRequest(request), time.perf_counter()))

    async def healthz(request: web.Request) -> web.Response:
        return to_response(ep.healthz())

    async def readyz(request: web.Request) -> web.Response:
        return to_response(await ep.readyz())

    async def metrics(request: web.Request) -> web.Response:
        return to_response(ep.metrics())

    async def openapi(request: web.Request) -> web.Response:
        return to_response(ep.openapi())

    async def gateway_scanners(request: web.Request) -> web.Response:
        return to_response(await gw.scanners(AiohttpRequest(request)))

    async def trust_list(request: web.Request) -> web.Response:
        return to_response(await gw.trust_list(AiohttpRequest(request)))

    async def reconcile(request: web.Request) -> web.Response:
        return to_response(await gw.reconcile(AiohttpRequest(request)))

    async def not_found(request: web.Request) -> web.Response:
        return to_response(ep.not_found())

    def method_not_allowed(allow: str) -> Handler:
        async def refuse(request: web.Request) -> web.Response:
            return to_response(ep.method_not_allowed(request.method, allow))

        return refuse

    app = web.Application(
        client_max_size=rt.max_batch_bytes,
        handler_args={"max_field_size": 8190},
        middlewares=[framing, internal_errors],
    )
    for path, method, handler in (
        ("/v1/verify", "POST", verify),
        ("/v1/verify/batch", "POST", verify_batch),
        ("/healthz", "GET", healthz),
        ("/readyz", "GET", readyz),
        ("/metrics", "GET", metrics),
        ("/openapi.json", "GET", openapi),
        ("/v1/gateway/scanners", "GET", gateway_scanners),
        ("/v1/trust-list", "GET", trust_list),
        ("/v1/reconcile", "POST", reconcile),
        *((path, method, _answering(answer)) for path, method, answer in extra_routes),
    ):
        resource = app.router.add_resource(path)
        resource.add_route(method, handler)
        resource.add_route("*", method_not_allowed(method))
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
