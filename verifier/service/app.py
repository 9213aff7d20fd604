"""The HTTP layer: thin aiohttp handlers around :class:`Pipeline`.

Order of checks for ``POST /v1/verify``: request limits → scanner auth → content type and
body → token core → institution → nonce claim + holder read (one store call) → coverage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from verifier.errors import StoreUnavailable
from verifier.records import Institution, Scanner
from verifier.service.auth import AuthError, ScannerCache
from verifier.service.metrics import Metrics
from verifier.service.pipeline import (
    Pipeline,
    RequestError,
    TrustListStale,
    VerifyRequest,
    parse_request_id,
    request_from_json,
)
from verifier.service.trustwatch import TrustWatch
from verifier.store.base import Store

log = logging.getLogger("verifier.http")

MAX_BATCH_ITEMS = 256
_JSON = "application/json"
_RETRY_AFTER = {"Retry-After": "1"}


@dataclass
class Runtime:
    """Everything a running service holds; built by :func:`verifier.service.server.open_runtime`."""

    store: Store
    trust: TrustWatch
    pipeline: Pipeline
    scanners: ScannerCache
    metrics: Metrics
    max_body_bytes: int = 8192
    max_batch_bytes: int = 1048576
    fast_path: bool = True  # answer plain POST /v1/verify requests without aiohttp's objects


class Answer(NamedTuple):
    """A response before it meets an HTTP layer: aiohttp's route and the fast path share it."""

    status: int
    body: bytes
    headers: dict[str, str] | None = None


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return to_response(Answer(status, orjson.dumps(obj), headers))


def to_response(answer: Answer) -> web.Response:
    h = {"Content-Type": _JSON}
    if answer.headers:
        h.update(answer.headers)
    return web.Response(body=answer.body, status=answer.status, headers=h)


class Handlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.m = rt.metrics

    def _refuse(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Answer:
        self.m.http_errors[status] += 1
        return Answer(status, orjson.dumps({"error": code, "message": message}), headers)

    async def _body(self, request: web.Request, limit: int) -> bytes | Answer:
        length = request.content_length
        if length is not None and length > limit:
            return self._refuse(413, "body_too_large", f"body over {limit} bytes")
        if length is not None:  # the common case: the length is known and within the limit
            try:
                body = await request.content.readany()  # usually the whole body at once
                while len(body) < length:
                    more = await request.content.readany()
                    if not more:
                        break
                    body += more
            except (ConnectionError, asyncio.IncompleteReadError):
                return self._refuse(400, "malformed_request", "the body ended early")
            return body
        # Chunked: read at most limit + 1 bytes.
        chunks: list[bytes] = []
        total = 0
        try:
            while total <= limit:
                chunk = await request.content.read(limit + 1 - total)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        except (ConnectionError, asyncio.IncompleteReadError):
            return self._refuse(400, "malformed_request", "the body ended early")
        if total > limit:
            return self._refuse(413, "body_too_large", f"body over {limit} bytes")
        return b"".join(chunks)

    async def verify(self, request: web.Request) -> web.Response:
        """``POST /v1/verify`` through aiohttp (the fast path answers the plain cases itself)."""
        started = time.perf_counter()
        rt = self.rt
        if request.content_length is not None and request.content_length > rt.max_body_bytes:
            return to_response(
                self._refuse(413, "body_too_large", f"body over {rt.max_body_bytes} bytes")
            )
        admitted = await self.admit(request.headers.get("Authorization"), request.content_type)
        if isinstance(admitted, Answer):
            return to_response(admitted)
        body = await self._body(request, rt.max_body_bytes)
        if isinstance(body, Answer):
            return to_response(body)
        idem = request.headers.get("Idempotency-Key")
        return to_response(await self.decide(admitted, request.content_type, body, idem, started))

    async def admit(
        self, authorization: str | None, ctype: str
    ) -> tuple[Scanner, Institution | None] | Answer:
        """Scanner credentials, then the content type: who asks, and in a form we read."""
        admitted = await self._authenticate(authorization)
        if not isinstance(admitted, Answer) and ctype not in ("text/plain", _JSON):
            return self._refuse(415, "unsupported_media_type", "use application/json or text/plain")
        return admitted

    async def _authenticate(
        self, authorization: str | None
    ) -> tuple[Scanner, Institution | None] | Answer:
        """The scanner and its institution, or the refusal (401/403, or 503 store down)."""
        try:
            return await self.rt.scanners.authenticate(authorization)
        except AuthError as err:
            return self._auth_refusal(err)
        except StoreUnavailable:
            return self._store_down()

    async def decide(
        self,
        admitted: tuple[Scanner, Institution | None],
        ctype: str,
        body: bytes,
        idempotency_key: str | None,
        started: float,
    ) -> Answer:
        """The verdict for one admitted verify request whose body has been read."""
        try:
            idem = parse_request_id(idempotency_key)
            if ctype == _JSON:
                req = request_from_json(_loads(body), idem)
            else:
                req = VerifyRequest(body.strip(b" \t\r\n"), idem)
            verdict = await self.rt.pipeline.verify(admitted[0], admitted[1], req, time.time())
        except RequestError as err:
            return self._refuse(err.status, err.code, err.message)
        except StoreUnavailable:
            return self._store_down()
        except TrustListStale:
            return self._trust_stale()
        if req.request_id is not None:
            verdict["request_id"] = req.request_id
        elapsed = time.perf_counter() - started
        self.m.latency.observe(elapsed)
        return Answer(
            200, orjson.dumps(verdict), {"Server-Timing": f"verify;dur={elapsed * 1000:.3f}"}
        )

    async def verify_batch(self, request: web.Request) -> web.Response:
        return to_response(await self._batch(request))

    async def _batch(self, request: web.Request) -> Answer:
        started = time.perf_counter()
        rt = self.rt
        admitted = await self._authenticate(request.headers.get("Authorization"))
        if isinstance(admitted, Answer):
            return admitted
        scanner, inst = admitted
        if request.content_type != _JSON:
            return self._refuse(415, "unsupported_media_type", "a batch is application/json")
        body = await self._body(request, rt.max_batch_bytes)
        if isinstance(body, Answer):
            return body
        try:
            doc = _loads(body)
            items = doc.get("items") if type(doc) is dict else None
            if type(items) is not list or not 1 <= len(items) <= MAX_BATCH_ITEMS or len(doc) != 1:
                raise RequestError(
                    400,
                    "malformed_request",
                    f'body must be {{"items": [1..{MAX_BATCH_ITEMS} objects]}}',
                )
        except RequestError as err:
            return self._refuse(err.status, err.code, err.message)
        if not rt.trust.current.is_fresh(time.time()):
            return self._trust_stale()
        now = time.time()
        results = await asyncio.gather(
            *(self._batch_item(scanner, inst, item, now) for item in items)
        )
        if all(r.get("error") == "store_unavailable" for r in results):
            return self._store_down()
        elapsed = time.perf_counter() - started
        return Answer(
            200,
            orjson.dumps({"results": results}),
            {"Server-Timing": f"verify;dur={elapsed * 1000:.3f}"},
        )

    async def _batch_item(
        self, scanner: Any, inst: Any, item: object, now: float
    ) -> dict[str, Any]:
        try:
            req = request_from_json(item)
            verdict = await self.rt.pipeline.verify(scanner, inst, req, now)
        except RequestError as err:
            return {"error": err.code, "message": err.message}
        except StoreUnavailable:
            self.m.store_errors += 1
            return {
                "error": "store_unavailable",
                "message": "the store did not answer in time; retry",
            }
        except TrustListStale:
            return {"error": "trust_list_expired", "message": "the trust list has expired"}
        if req.request_id is not None:
            verdict["request_id"] = req.request_id
        return verdict

    def _auth_refusal(self, err: AuthError) -> Answer:
        headers = {"WWW-Authenticate": 'Bearer realm="verifier"'} if err.status == 401 else None
        return self._refuse(err.status, err.code, err.message, headers)

    def _store_down(self) -> Answer:
        self.m.store_errors += 1
        return self._refuse(
            503, "store_unavailable", "the store did not answer in time; retry", _RETRY_AFTER
        )

    def _trust_stale(self) -> Answer:
        return self._refuse(
            503, "trust_list_expired", "the trust list has expired; cannot verify", _RETRY_AFTER
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        problems = []
        if not self.rt.trust.current.is_fresh(time.time()):
            problems.append("trust list expired")
        try:
            await self.rt.store.ping()
        except StoreUnavailable:
            problems.append("store unreachable")
        body = {
            "ready": not problems,
            "problems": problems,
            "trust_list_version": self.rt.trust.current.version,
        }
        return _json(body, 503 if problems else 200)

    async def metrics(self, request: web.Request) -> web.Response:
        tl, now = self.rt.trust.current, time.time()
        text = self.m.render(tl.version, now - tl.iat, tl.exp - now)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=OPENAPI, content_type=_JSON)

    async def not_found(self, request: web.Request) -> web.Response:
        return to_response(self._refuse(404, "not_found", "no such endpoint; see /openapi.json"))

    async def method_not_allowed(self, request: web.Request) -> web.Response:
        return to_response(
            self._refuse(405, "method_not_allowed", f"{request.method} is not allowed here")
        )


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise RequestError(400, "malformed_request", "body is not valid JSON") from err


OPENAPI = resources.files("verifier.service").joinpath("openapi.json").read_bytes()


def build_app(rt: Runtime, handlers: Handlers | None = None) -> web.Application:
    h = handlers or Handlers(rt)
    app = web.Application(client_max_size=rt.max_batch_bytes, handler_args={"max_field_size": 8190})
    for path, method, handler in (
        ("/v1/verify", "POST", h.verify),
        ("/v1/verify/batch", "POST", h.verify_batch),
        ("/healthz", "GET", h.healthz),
        ("/readyz", "GET", h.readyz),
        ("/metrics", "GET", h.metrics),
        ("/openapi.json", "GET", h.openapi),
    ):
        resource = app.router.add_resource(path)
        resource.add_route(method, handler)
        resource.add_route("*", h.method_not_allowed)
    app.router.add_route("*", "/{tail:.*}", h.not_found)
    return app
