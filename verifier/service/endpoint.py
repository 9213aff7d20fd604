"""The scanner API, HTTP-neutral: the parts of a request in, an :class:`Answer` out.

Every framing — the aiohttp routes (``app.py``), the fast path (``fastpath.py``), the gateway
sidecar — hands the endpoint what it read off the wire and writes back what it gets; none of
them decides anything. For ``POST /v1/verify`` the endpoint checks, in this order:

1. the declared body length (413 ``body_too_large``);
2. the scanner's credential (401 ``unauthorized``, 403 ``scanner_revoked``; 503
   ``store_unavailable`` when its record cannot be read);
3. the content type (415 ``unsupported_media_type``);
4. the body, read by the framing within the limit (413, or 400 when it ends early);
5. the request's shape (400 ``malformed_request``);
6. the verdict (``Runtime.pipeline``: :class:`verifier.service.pipeline.Pipeline` at the centre): 200, or 503 ``store_unavailable`` / ``trust_list_expired``.

Refusal codes and their statuses are in :mod:`verifier.errors`. An exception that escapes a
framing's call is a bug: :meth:`Endpoint.internal_error` logs it and gives every framing the
same JSON 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple, Protocol, runtime_checkable

import orjson

from verifier import errors as E
from verifier.errors import RequestRefused, StoreUnavailable
from verifier.records import Institution, Scanner
from verifier.service import views
from verifier.service.connections import ConnectionLimits
from verifier.service.logs import access_line
from verifier.service.metrics import Metrics
from verifier.service.outage import StoreOutage
from verifier.service.peers import Peers
from verifier.service.requests import (
    JSON,
    TEXT,
    VerifyRequest,
    batch_items,
    request_from_json,
    verify_request,
)
from verifier.service.trustwatch import TrustWatch
from verifier.store.base import Store

log = logging.getLogger("verifier.http")

OPENAPI = resources.files("verifier.service").joinpath("openapi.json").read_bytes()
MEDIA_TYPES = frozenset((JSON, TEXT))
_RETRY_AFTER = {"Retry-After": "1"}
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="verifier"'}
_TEXT_PLAIN = {"Content-Type": "text/plain; charset=utf-8"}
_STORE_FAILED = "the store did not answer in time; retry"


class Answer(NamedTuple):
    """A response before it meets a framing. The content type is JSON unless ``headers``
    name another."""

    status: int
    body: bytes
    headers: dict[str, str] | None = None


INTERNAL = Answer(500, orjson.dumps(views.error(E.INTERNAL_ERROR, "internal error; see the log")))


class Request(Protocol):
    """What a framing read off the wire, before the body."""

    @property
    def authorization(self) -> str | None: ...
    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters ("" when absent)."""
        ...

    @property
    def content_length(self) -> int | None: ...
    @property
    def idempotency_key(self) -> str | None: ...
    @property
    def body(self) -> bytes | None:
        """The whole body when the framing has read it already (else None: see read_body)."""
        ...

    async def read_body(self, limit: int) -> bytes:
        """The whole body; RequestRefused ``body_too_large`` past ``limit`` bytes, or
        ``malformed_request`` when it ends early."""
        ...


class Verdicts(Protocol):
    """Where verdicts come from: the central service's :class:`Pipeline` (token core + store),
    or a gateway sidecar's (forward to the centre, or decide offline)."""

    async def verify(
        self, scanner: Scanner, inst: Institution | None, req: VerifyRequest, now: float
    ) -> dict[str, Any]:
        """A JSON-ready verdict; RequestRefused or StoreUnavailable when there is none."""
        ...


Admitted = tuple[Scanner, Institution | None]


@runtime_checkable
class EvictionWatch(Protocol):
    """A store that can tell, while running, that it may evict nonces (``RedisStore``)."""

    async def eviction_problem(self) -> str | None: ...


class Admission(Protocol):
    """Who is scanning: :class:`verifier.service.auth.ScannerCache` over the store at the
    centre, the synced scanner directory at a gateway sidecar."""

    def cached(self, header: str | None) -> Admitted | None:
        """A header accepted moments ago, without awaiting anything; else None."""
        ...

    async def authenticate(self, header: str | None) -> Admitted:
        """The scanner and its institution; RequestRefused (401/403) or StoreUnavailable."""
        ...


@dataclass
class Runtime:
    """Everything a running service holds; built by :func:`verifier.service.server.open_runtime`
    (a sidecar builds its own, with its own ``store`` of scanners and ``pipeline``)."""

    store: Store
    trust: TrustWatch
    pipeline: Verdicts
    scanners: Admission  # a ScannerCache at the centre
    metrics: Metrics
    max_body_bytes: int = 8192
    max_batch_bytes: int = 1048576
    fast_path: bool = True  # answer plain POST /v1/verify requests without aiohttp's objects
    access_log: bool = False  # one log line per verdict (VERIFIER_ACCESS_LOG; logs.access_line)
    connections: ConnectionLimits = ConnectionLimits()  # timeouts and cap, per worker
    # The service's other workers (``serve --workers N``, N > 1): /metrics and /readyz
    # report them together with this one.
    peers: Peers | None = None


class Endpoint:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.m = rt.metrics
        self.outage = StoreOutage(rt.store)  # one log line per outage, not one per 503
        self.access = access_line if rt.access_log else None  # off: one None check

    # -- refusals ---------------------------------------------------------------------------

    def refuse(self, code: str, message: str) -> Answer:
        status = E.REFUSAL_STATUS[code]
        self.m.http_errors[status] += 1
        headers = None
        if status == 503:
            headers = _RETRY_AFTER
        elif code == E.UNAUTHORIZED:
            headers = _BEARER_CHALLENGE
        return Answer(status, orjson.dumps(views.error(code, message)), headers)

    def refusal(self, err: RequestRefused | StoreUnavailable) -> Answer:
        """The answer to a refused request; a store failure is counted and logged once per
        outage (:meth:`store_failed`)."""
        if isinstance(err, StoreUnavailable):
            self.store_failed(err)
            return self.refuse(E.STORE_UNAVAILABLE, _STORE_FAILED)
        return self.refuse(err.code, err.message)

    def store_failed(self, err: StoreUnavailable) -> None:
        """Count a request the store failed, and log the outage if it is a new one."""
        self.m.store_errors += 1
        self.outage.failed(err)

    def internal_error(self) -> Answer:
        """Call inside ``except``: log the bug with its traceback, answer the JSON 500."""
        log.exception("internal error while answering a request")
        self.m.http_errors[500] += 1
        return INTERNAL

    def not_found(self) -> Answer:
        return self.refuse(E.NOT_FOUND, "no such endpoint; see /openapi.json")

    def encoding_refusal(self, content_encoding: str) -> Answer | None:
        """Every framing asks this, on every route, before it reads a body: a body is taken
        only as it is (no Content-Encoding, or ``identity``), so none is ever inflated."""
        if content_encoding.strip().lower() == "identity":
            return None
        return self.refuse(E.UNSUPPORTED_MEDIA_TYPE, "send the body without Content-Encoding")

    def request_timeout(self) -> Answer:
        """A request whose head or body did not arrive in time (the framing then closes)."""
        return self.refuse(E.REQUEST_TIMEOUT, "the request did not arrive in time")

    def malformed_http(self, status: int) -> Answer:
        """A request a framing could not parse as HTTP/1.1 (the framing then closes)."""
        answer = self.refuse(E.MALFORMED_REQUEST, "the request is not well-formed HTTP/1.1")
        return answer if status == answer.status else answer._replace(status=status)

    def method_not_allowed(self, method: str, allow: str) -> Answer:
        """405 for ``method`` on an endpoint that takes only ``allow`` (the ``Allow`` header,
        e.g. ``"GET"``)."""
        answer = self.refuse(E.METHOD_NOT_ALLOWED, f"{method} is not allowed here; use {allow}")
        return answer._replace(headers={"Allow": allow})

    # -- verify -----------------------------------------------------------------------------

    async def _admit(self, authorization: str | None) -> Admitted:
        # A scanner seen moments ago needs no await.
        return self.rt.scanners.cached(authorization) or await self.rt.scanners.authenticate(
            authorization
        )

    def _check_length(self, length: int | None, limit: int) -> None:
        if length is not None and length > limit:
            raise RequestRefused(E.BODY_TOO_LARGE, f"body over {limit} bytes")

    async def verify(self, req: Request, started: float) -> Answer:
        """``POST /v1/verify``; ``started`` is the framing's ``time.perf_counter()`` at arrival."""
        rt = self.rt
        try:
            self._check_length(req.content_length, rt.max_body_bytes)
            # A scanner seen moments ago, and a body the framing has read, need no await.
            admitted = rt.scanners.cached(req.authorization)
            if admitted is None:
                admitted = await rt.scanners.authenticate(req.authorization)
            scanner, inst = admitted
            ctype = req.content_type
            if ctype not in MEDIA_TYPES:
                raise RequestRefused(E.UNSUPPORTED_MEDIA_TYPE, "use application/json or text/plain")
            body = req.body
            if body is None:
                body = await req.read_body(rt.max_body_bytes)
            vreq = verify_request(ctype, body, req.idempotency_key)
            verdict = await rt.pipeline.verify(scanner, inst, vreq, time.time())
        except (RequestRefused, StoreUnavailable) as err:
            return self.refusal(err)
        if vreq.request_id is not None:
            verdict["request_id"] = vreq.request_id
        elapsed = time.perf_counter() - started
        self.m.latency.observe(elapsed)
        if self.access is not None:
            self.access(scanner, verdict, elapsed)
        return Answer(
            200, orjson.dumps(verdict), {"Server-Timing": f"verify;dur={elapsed * 1000:.3f}"}
        )

    async def verify_batch(self, req: Request, started: float) -> Answer:
        """``POST /v1/verify/batch``: each item is answered as its own verify request."""
        rt = self.rt
        try:
            scanner, inst = await self._admit(req.authorization)
            if req.content_type != JSON:
                raise RequestRefused(E.UNSUPPORTED_MEDIA_TYPE, "a batch is application/json")
            self._check_length(req.content_length, rt.max_batch_bytes)
            items = batch_items(await req.read_body(rt.max_batch_bytes))
            if not rt.trust.current.is_fresh(time.time()):
                raise RequestRefused(
                    E.TRUST_LIST_EXPIRED, "the trust list has expired; cannot verify"
                )
        except (RequestRefused, StoreUnavailable) as err:
            return self.refusal(err)
        now = time.time()
        results = await asyncio.gather(*(self._item(scanner, inst, item, now) for item in items))
        if all(r.get("error") == E.STORE_UNAVAILABLE for r in results):
            return self.refusal(StoreUnavailable("every item"))
        elapsed = time.perf_counter() - started
        if self.access is not None:
            for result in results:
                self.access(scanner, result, elapsed)
        return Answer(
            200,
            orjson.dumps({"results": results}),
            {"Server-Timing": f"verify;dur={elapsed * 1000:.3f}"},
        )

    async def _item(
        self, scanner: Scanner, inst: Institution | None, item: object, now: float
    ) -> dict[str, Any]:
        try:
            vreq = request_from_json(item)
            verdict = await self.rt.pipeline.verify(scanner, inst, vreq, now)
        except RequestRefused as err:
            return views.error(err.code, err.message)
        except StoreUnavailable as err:
            self.store_failed(err)
            return views.error(E.STORE_UNAVAILABLE, _STORE_FAILED)
        if vreq.request_id is not None:
            verdict["request_id"] = vreq.request_id
        return verdict

    # -- operations -------------------------------------------------------------------------

    def healthz(self) -> Answer:
        return Answer(200, b'{"status":"ok"}')

    async def problems(self) -> list[str]:
        """What keeps this worker from being ready (empty: ready)."""
        problems = []
        if not self.rt.trust.current.is_fresh(time.time()):
            problems.append("trust list expired")
        try:
            await self.rt.store.ping()
        except StoreUnavailable:
            problems.append("store unreachable")
        store = self.rt.store
        if isinstance(store, EvictionWatch) and await store.eviction_problem() is not None:
            problems.append("store may evict nonces")
        return problems

    async def readyz(self) -> Answer:
        problems = await self.problems()
        if self.rt.peers is not None:  # the other workers' problems, as they last saw them
            problems += self.rt.peers.other_problems()
        body = {
            "ready": not problems,
            "problems": problems,
            "trust_list_version": self.rt.trust.current.version,
        }
        return Answer(503 if problems else 200, orjson.dumps(body))

    def metrics(self) -> Answer:
        tl, now = self.rt.trust.current, time.time()
        m = self.m if self.rt.peers is None else self.rt.peers.combined()
        text = m.render(tl.version, now - tl.iat, tl.exp - now)
        return Answer(200, text.encode(), _TEXT_PLAIN)

    def openapi(self) -> Answer:
        return Answer(200, OPENAPI)
