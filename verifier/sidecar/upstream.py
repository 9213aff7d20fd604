"""The sidecar's client to the central service: kept-alive connections, a deadline per request.

:meth:`Upstream.forward` sends one scanner request to the centre and returns the centre's
status and body as they are, or raises :class:`UpstreamFailed` when the centre did not answer
usefully (what the circuit breaker counts as a failure):

- ``connect``: connection refused or reset, the server went away mid-request;
- ``timeout``: no complete answer within ``timeout_ms`` (``VERIFIER_UPSTREAM_TIMEOUT_MS``,
  default 300), covering connection set-up, any retry and reading the body;
- ``server_error``: a 5xx status (503 included: the centre cannot decide either). The
  answer is kept on the exception for logs.

Requests go through :mod:`verifier.sidecar.http_client` (a lean HTTP/1.1 client: each scan
forwarded costs a hand-written head, one write and llhttp's callbacks). The scanner's own
``Authorization`` is forwarded, and the request id as ``Idempotency-Key``
(the centre reads it for text/plain bodies and for JSON bodies without ``request_id``), so a
scan sent twice with one request id is one use at the centre. That makes one retry safe: a
kept-alive connection the centre closed while idle fails on reuse, and the request is sent
once more on a fresh connection within the same deadline.
"""

from __future__ import annotations

import asyncio

from verifier.errors import VerifierError
from verifier.sidecar.http_client import ConnectFailed, Pool, Response

CONNECT = "connect"
TIMEOUT = "timeout"
SERVER_ERROR = "server_error"

DEFAULT_TIMEOUT_MS = 300


UpstreamAnswer = Response  # the centre's answer, untouched


class UpstreamFailed(VerifierError):
    """The centre did not answer in time or answered 5xx. ``kind``: CONNECT, TIMEOUT, SERVER_ERROR."""

    def __init__(self, kind: str, detail: str, answer: UpstreamAnswer | None = None) -> None:
        super().__init__(f"upstream {kind}: {detail}")
        self.kind = kind
        self.answer = answer


class Upstream:
    """A pool of keep-alive connections to one centre. Use ``async with`` or start/close."""

    def __init__(self, base_url: str, *, timeout_ms: int = DEFAULT_TIMEOUT_MS, pool: int = 64):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("upstream URL must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_ms / 1000
        self.max_idle = pool  # kept-alive connections kept between requests
        self._pool: Pool | None = None

    async def start(self) -> None:
        """Make the pool (connections are opened on first use)."""
        if self._pool is None:
            self._pool = Pool(self.base_url, self.max_idle)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def __aenter__(self) -> Upstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def forward(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str,
        authorization: str | None,
        request_id: str | None,
    ) -> UpstreamAnswer:
        """POST ``body`` to ``path`` at the centre as the scanner; its answer unless 5xx.

        ``request_id`` goes out as ``Idempotency-Key``; pass None only for a request whose
        items carry their own ids (a batch). Raises UpstreamFailed (CONNECT, TIMEOUT or
        SERVER_ERROR).
        """
        headers = {"Content-Type": content_type}
        if request_id is not None:
            headers["Idempotency-Key"] = request_id
        if authorization is not None:
            headers["Authorization"] = authorization
        return await self._call("POST", path, headers, body)

    async def get(self, path: str, *, authorization: str) -> UpstreamAnswer:
        """GET ``path`` with the given credential (directory and trust-list sync)."""
        return await self._call("GET", path, {"Authorization": authorization}, None)

    async def probe(self, path: str = "/readyz") -> bool:
        """Does the centre answer now (not 5xx, within the timeout)? For the breaker's probe."""
        try:
            await self._call("GET", path, {}, None)
        except UpstreamFailed:
            return False
        return True

    async def _call(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> UpstreamAnswer:
        pool = self._pool
        if pool is None:
            raise RuntimeError("Upstream.start() was not called")
        request = pool.head(method, path, headers, None if body is None else len(body))
        if body:
            request += body
        try:
            async with asyncio.timeout(self.timeout_s):
                try:
                    answer = await pool.request(request)
                except ConnectFailed:
                    raise  # a fresh connection failed: the centre is not there
                except OSError:
                    # Probably a kept-alive connection the centre had closed: once more.
                    answer = await pool.request(request, fresh=True)
        except TimeoutError as err:
            raise UpstreamFailed(
                TIMEOUT, f"no answer within {self.timeout_s * 1000:.0f} ms"
            ) from err
        except OSError as err:
            raise UpstreamFailed(CONNECT, f"{type(err).__name__}: {err}") from err
        if answer.status >= 500:
            raise UpstreamFailed(SERVER_ERROR, f"status {answer.status}", answer)
        return answer
