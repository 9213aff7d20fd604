"""Compact JSON for the records the Redis store keeps (private to ``verifier.store``).

The written form is :mod:`verifier.registry`'s (``*_to_json``): every field is written, so a
record read back equals the one written. On reading, types are
checked strictly (a bool is not an int), a missing field that has a default takes it, and
unknown fields are ignored so that a newer writer does not lock out an older reader.
Malformed data raises :class:`verifier.errors.RecordError`.
"""

from __future__ import annotations

from typing import Any

import orjson

from verifier import registry
from verifier.errors import RecordError
from verifier.records import Holder, Institution, Scanner

_MISSING: Any = object()


def _dumps(obj: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError as err:
        raise RecordError(f"record cannot be encoded: {err}") from err


def _loads(kind: str, data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise RecordError(f"{kind} record is not valid JSON: {err}") from err
    if not isinstance(obj, dict):
        raise RecordError(f"{kind} record is not a JSON object")
    return obj


def _field(kind: str, obj: dict[str, Any], name: str, types: tuple[type, ...], default: Any) -> Any:
    value = obj.get(name, default)
    if value is _MISSING:
        raise RecordError(f"{kind} record lacks {name!r}")
    # bool is a subclass of int: only accept it where bool is asked for.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise RecordError(f"{kind} record has a bad {name!r}: {value!r}")
    return value


_STR = (str,)
_OPT_STR = (str, type(None))


def encode_holder(holder: Holder) -> bytes:
    return _dumps(registry.holder_to_json(holder))


def decode_holder(data: bytes) -> Holder:
    obj = _loads("holder", data)
    # Fast path for a complete, well-typed record (what encode_holder writes).
    if len(obj) == 8:
        try:
            h = Holder(
                obj["sub"],
                obj["status"],
                obj["scheme"],
                obj["region"],
                obj["balance_fen"],
                obj["physical_card"],
                obj["name_masked"],
                obj["id_masked"],
            )
        except KeyError:
            pass
        else:
            if (
                type(h.sub) is str
                and type(h.status) is str
                and type(h.scheme) is str
                and type(h.region) is str
                and type(h.balance_fen) is int
                and type(h.physical_card) is str
                and (h.name_masked is None or type(h.name_masked) is str)
                and (h.id_masked is None or type(h.id_masked) is str)
            ):
                return h
    return Holder(
        sub=_field("holder", obj, "sub", _STR, _MISSING),
        status=_field("holder", obj, "status", _STR, _MISSING),
        scheme=_field("holder", obj, "scheme", _STR, _MISSING),
        region=_field("holder", obj, "region", _STR, _MISSING),
        balance_fen=_field("holder", obj, "balance_fen", (int,), 0),
        physical_card=_field("holder", obj, "physical_card", _STR, "none"),
        name_masked=_field("holder", obj, "name_masked", _OPT_STR, None),
        id_masked=_field("holder", obj, "id_masked", _OPT_STR, None),
    )


def encode_institution(inst: Institution) -> bytes:
    return _dumps(registry.institution_to_json(inst))


def decode_institution(data: bytes) -> Institution:
    obj = _loads("institution", data)
    cards = _field("institution", obj, "cards", (list,), _MISSING)
    if not all(isinstance(card, str) for card in cards):
        raise RecordError(f"institution record has a bad 'cards': {cards!r}")
    return Institution(
        id=_field("institution", obj, "id", _STR, _MISSING),
        name=_field("institution", obj, "name", _STR, _MISSING),
        cards=frozenset(cards),
        enabled=_field("institution", obj, "enabled", (bool,), True),
    )


def encode_scanner(scanner: Scanner) -> bytes:
    return _dumps(registry.scanner_to_json(scanner))


def decode_scanner(data: bytes) -> Scanner:
    obj = _loads("scanner", data)
    return Scanner(
        id=_field("scanner", obj, "id", _STR, _MISSING),
        institution=_field("scanner", obj, "institution", _STR, _MISSING),
        secret_hash=_field("scanner", obj, "secret_hash", _STR, _MISSING),
        revoked=_field("scanner", obj, "revoked", (bool,), False),
    )
