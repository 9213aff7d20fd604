"""The shape of a verify request body: JSON or plain text in, :class:`VerifyRequest` out.

Pure: bytes in, a value out, or :class:`verifier.errors.RequestRefused` (``malformed_request``).
"""

from __future__ import annotations

from typing import NamedTuple

from verifier.benefits import SERVICES
from verifier.errors import MALFORMED_REQUEST, RequestRefused
from verifier.money import MoneyError, parse_yuan
from verifier.records import REQUEST_ID
from verifier.strictjson import JSONError, loads_unique

JSON = "application/json"
TEXT = "text/plain"
MAX_BATCH_ITEMS = 256

_FIELDS = frozenset({"token", "request_id", "service", "amount"})


class VerifyRequest(NamedTuple):  # a tuple: built for every request, and cheaper so
    token: str | bytes
    request_id: str | None = None
    service: str | None = None
    amount_fen: int | None = None


def _malformed(message: str) -> RequestRefused:
    return RequestRefused(MALFORMED_REQUEST, message)


def parse_request_id(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not str or not REQUEST_ID.fullmatch(value):
        raise _malformed("request_id must be 1-128 printable ASCII characters")
    return value


def loads(body: bytes) -> object:
    """The body's JSON value; a key given twice in one object is refused, never "last wins"."""
    try:
        return loads_unique(body)
    except JSONError as err:
        raise _malformed(f"body is not valid JSON ({err})") from err


def request_from_json(obj: object, idempotency_key: str | None = None) -> VerifyRequest:
    """Validate a JSON body ``{"token", "request_id"?, "service"?, "amount"?}``.

    An optional field is either absent or of its documented type: ``null`` is refused, so
    that ``"request_id": null`` can never silently replace the ``Idempotency-Key`` header
    (the request id given when the field is absent).
    """
    if type(obj) is not dict:
        raise _malformed("body must be a JSON object")
    unknown = obj.keys() - _FIELDS
    if unknown:
        raise _malformed(f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    token = obj.get("token")
    if type(token) is not str:
        raise _malformed("token must be a string")
    request_id = idempotency_key
    if "request_id" in obj:
        if obj["request_id"] is None:
            raise _malformed("request_id must be a string (omit it to use Idempotency-Key)")
        request_id = parse_request_id(obj["request_id"])
    if ("service" in obj) != ("amount" in obj):
        raise _malformed("service and amount go together")
    service, amount, amount_fen = obj.get("service"), obj.get("amount"), None
    if "service" in obj:
        if type(service) is not str or service not in SERVICES:
            raise _malformed(f"service must be one of {', '.join(SERVICES)}")
        if type(amount) is not str:
            raise _malformed('amount must be a decimal string like "123.45"')
        try:
            amount_fen = parse_yuan(amount)
        except MoneyError as err:
            raise _malformed(f"amount: {err}") from err
    return VerifyRequest(token, request_id, service, amount_fen)


def verify_request(content_type: str, body: bytes, idempotency_key: str | None) -> VerifyRequest:
    """The request of ``POST /v1/verify``: a JSON object, or the raw QR text as plain text."""
    idem = parse_request_id(idempotency_key)
    if content_type == JSON:
        return request_from_json(loads(body), idem)
    return VerifyRequest(body.strip(b" \t\r\n"), idem)


def batch_items(body: bytes) -> list[object]:
    """The items of ``POST /v1/verify/batch``: ``{"items": [1..MAX_BATCH_ITEMS values]}``."""
    doc = loads(body)
    items = doc.get("items") if type(doc) is dict else None
    if type(items) is not list or not 1 <= len(items) <= MAX_BATCH_ITEMS or len(doc) != 1:  # type: ignore[arg-type]
        raise _malformed(f'body must be {{"items": [1..{MAX_BATCH_ITEMS} objects]}}')
    return items
