"""The bench's slice of HTTP/1.1, as pure functions on bytes (no sockets).

* :func:`build_request` pre-builds a complete ``POST`` (request line, headers, body) so the
  engine's hot path only writes bytes.
* :func:`parse_response` finds one complete response at the start of a buffer and turns it
  into the *verdict* the oracle compares with the corpus: the JSON ``reason`` of a ``200``
  (``"no_reason"`` if it has none), or ``"http_<status>"`` for any other status.

Only ``Content-Length`` framing is supported (what the verifier sends); a chunked or
unframed response is a :class:`ProtocolError`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import orjson

_MAX_HEAD = 64 * 1024


class ProtocolError(ValueError):
    """The peer sent bytes the bench cannot read as an HTTP/1.1 response."""


def split_target(url: str) -> tuple[str, int, str]:
    """``http://host:port/path`` → (host, port, path). Only plain ``http`` is supported."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"target must be an http:// URL, got {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


def build_request(
    host: str, port: int, path: str, credential: str, content_type: str, body: bytes
) -> bytes:
    """The exact bytes of one keep-alive ``POST`` carrying *body*."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Bearer {credential}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def verdict_of(status: int, body: bytes) -> str:
    """The oracle's view of a response: the ``reason`` of a 200, else ``http_<status>``."""
    if status != 200:
        return f"http_{status}"
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "bad_json"
    reason = document.get("reason") if isinstance(document, dict) else None
    return reason if isinstance(reason, str) else "no_reason"


def parse_response(buf: bytes) -> tuple[int, str] | None:
    """Parse the response at the start of *buf*.

    Returns ``(consumed, verdict)`` once the whole response is in *buf* (``consumed`` is its
    length in bytes), or ``None`` if more bytes are needed. Raises :class:`ProtocolError`
    for anything that is not a ``Content-Length``-framed HTTP/1.x response.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > _MAX_HEAD:
            raise ProtocolError("response head larger than 64 KiB")
        return None
    head = buf[:end]
    if not head.startswith(b"HTTP/1.") or len(head) < 12 or head[8:9] != b" ":
        raise ProtocolError(f"not an HTTP/1.x status line: {bytes(head[:40])!r}")
    try:
        status = int(head[9:12])
    except ValueError as err:
        raise ProtocolError(f"bad status code: {bytes(head[:40])!r}") from err
    length = _content_length(head.lower())
    if length is None:
        if status in (204, 304) or 100 <= status < 200:
            length = 0
        else:
            raise ProtocolError("response without Content-Length (chunked is not supported)")
    stop = end + 4 + length
    if len(buf) < stop:
        return None
    return stop, verdict_of(status, buf[end + 4 : stop])


def _content_length(lower_head: bytes) -> int | None:
    at = lower_head.find(b"\r\ncontent-length:")
    if at < 0:
        if lower_head.find(b"\r\ntransfer-encoding:") >= 0:
            raise ProtocolError("chunked responses are not supported")
        return None
    stop = lower_head.find(b"\r\n", at + 17)
    raw = lower_head[at + 17 : stop if stop >= 0 else len(lower_head)]
    try:
        length = int(raw)
    except ValueError as err:
        raise ProtocolError(f"bad Content-Length {raw!r}") from err
    if length < 0:
        raise ProtocolError("negative Content-Length")
    return length
