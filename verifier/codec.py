"""The records codec: the one writer and the one reader of stored records.

Every store keeps holders, institutions and scanners as the bytes written here, and reads
them back only through here. Both directions check every field by the rules of
:mod:`verifier.records`, so a record that reaches the coverage decision or the scanner check
is valid: a stored record in any other shape (written by another tool, corrupted) raises
RecordError, whose message names the field and never repeats a value (it may be personal data).

The stored form is compact JSON with every field written (None as null), keys in this order::

    holder       {"sub", "status", "scheme", "region", "balance_fen" (int, default 0),
                  "physical_card" (default "none"), "name_masked", "id_masked" (default null)}
    institution  {"id", "name", "cards" (sorted list, may be empty), "enabled" (default true)}
    scanner      {"id", "institution", "secret_hash" (64 hex), "revoked" (default false)}
    gateway      {"id", "institution", "secret_hash" (64 hex), "revoked" (default false)}
    conflict     {"holder", "nonce", "first", "second"}, each use {"scanner", "institution",
                  "gateway", "request_id", "at" (Unix seconds or null)}; the time it was
                  found is kept beside it (a sorted set's score), not in it

On reading, unknown keys are ignored (a newer writer must not lock out an older reader) and a
missing key that has a default takes it. Holders are read once per verification, so
:func:`decode_holder` first tries the form the writer writes with one inline check; whatever
that check leaves, the full reader decides. Both accept exactly the same records (a property
test holds them to it).
"""

from __future__ import annotations

from typing import Any

import orjson

from verifier.errors import RecordError
from verifier.money import MAX_FEN
from verifier.records import (
    CARD_TYPES,
    HOLDER_STATUSES,
    ID,
    ID_MASKED,
    PHYSICAL_CARD_STATES,
    REGION,
    SCHEMES,
    Conflict,
    Gateway,
    Holder,
    Institution,
    Scanner,
    Use,
    check_balance_fen,
    check_choice,
    check_flag,
    check_id,
    check_id_masked,
    check_institution_name,
    check_name_masked,
    check_region,
    check_request_id,
    check_secret_hash,
    check_time,
)

# --- writing ----------------------------------------------------------------------------------


def holder_to_json(h: Holder) -> dict[str, Any]:
    """The stored form of a holder, as a JSON object (not checked: see encode_holder)."""
    return {
        "sub": h.sub,
        "status": h.status,
        "scheme": h.scheme,
        "region": h.region,
        "balance_fen": h.balance_fen,
        "physical_card": h.physical_card,
        "name_masked": h.name_masked,
        "id_masked": h.id_masked,
    }


def institution_to_json(inst: Institution) -> dict[str, Any]:
    """The stored form of an institution; ``cards`` is a sorted list."""
    try:
        cards = sorted(inst.cards)
    except TypeError as err:  # cards of mixed types cannot be ordered; none is valid anyway
        raise RecordError("institution: cards must be one of " + ", ".join(CARD_TYPES)) from err
    return {"id": inst.id, "name": inst.name, "cards": cards, "enabled": inst.enabled}


def scanner_to_json(sc: Scanner) -> dict[str, Any]:
    """The stored form of a scanner (only the secret's SHA-256 hash, never the secret)."""
    return _credential_to_json(sc)


def _credential_to_json(c: Scanner | Gateway) -> dict[str, Any]:
    """A scanner's or a gateway's credential record: the same four fields."""
    return {
        "id": c.id,
        "institution": c.institution,
        "secret_hash": c.secret_hash,
        "revoked": c.revoked,
    }


def _dumps(obj: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError as err:
        raise RecordError(f"record cannot be encoded: {err}") from err


# Each writer checks its record with the reader first: nothing is stored that cannot be read.


def encode_holder(h: Holder) -> bytes:
    """The stored bytes of ``h``; RecordError (naming the field) if the reader would refuse it."""
    d = holder_to_json(h)
    holder_from_json(d)
    return _dumps(d)


def encode_institution(inst: Institution) -> bytes:
    d = institution_to_json(inst)
    institution_from_json(d)
    return _dumps(d)


def encode_scanner(sc: Scanner) -> bytes:
    d = scanner_to_json(sc)
    scanner_from_json(d)
    return _dumps(d)


# --- reading ----------------------------------------------------------------------------------


def _loads(kind: str, data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        # The reason and position only: the bytes may hold personal data.
        raise RecordError(f"{kind} record is not valid JSON: {err.msg} at {err.pos}") from err


def _object(obj: Any, kind: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise RecordError(f"{kind} must be a JSON object")
    return obj


def _required(d: dict[str, Any], kind: str, key: str) -> Any:
    if key not in d:
        raise RecordError(f"{kind}: missing key {key!r}")
    return d[key]


_STATUSES = frozenset(HOLDER_STATUSES)
_SCHEMES = frozenset(SCHEMES)
_CARD_STATES = frozenset(PHYSICAL_CARD_STATES)
_ID_MATCH = ID.fullmatch
_REGION_MATCH = REGION.fullmatch
_ID_MASKED_MATCH = ID_MASKED.fullmatch


def _canonical_holder(obj: Any) -> Holder | None:
    """The holder in ``obj`` if it has exactly the writer's eight keys and is valid, else None.

    The hot path of :func:`decode_holder`: the rules of :func:`holder_from_json`, written as
    one expression. It never accepts what that refuses, and accepts every valid record with
    exactly the eight keys (tests/store/test_codec.py checks both).
    """
    if type(obj) is not dict or len(obj) != 8:
        return None
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
        return None
    sub, status, scheme, region, balance, card, name, id_masked = h
    # Type first: a list or dict is unhashable and cannot be looked up in a frozenset.
    if (
        type(sub) is str
        and _ID_MATCH(sub) is not None
        and type(status) is str
        and status in _STATUSES
        and type(scheme) is str
        and scheme in _SCHEMES
        and type(region) is str
        and _REGION_MATCH(region) is not None
        and type(balance) is int
        and 0 <= balance <= MAX_FEN
        and type(card) is str
        and card in _CARD_STATES
        and (name is None or (type(name) is str and name != ""))
        and (id_masked is None or (type(id_masked) is str and _ID_MASKED_MATCH(id_masked)))
    ):
        return h
    return None


def holder_from_json(obj: Any) -> Holder:
    """The full reader of a stored holder (a parsed JSON object); RecordError if invalid."""
    d = _object(obj, "holder")
    return Holder(
        sub=check_id(_required(d, "holder", "sub"), "holder: sub"),
        status=check_choice(_required(d, "holder", "status"), "holder: status", HOLDER_STATUSES),
        scheme=check_choice(_required(d, "holder", "scheme"), "holder: scheme", SCHEMES),
        region=check_region(_required(d, "holder", "region"), "holder: region"),
        balance_fen=check_balance_fen(d.get("balance_fen", 0), "holder: balance_fen"),
        physical_card=check_choice(
            d.get("physical_card", "none"), "holder: physical_card", PHYSICAL_CARD_STATES
        ),
        name_masked=check_name_masked(d.get("name_masked"), "holder: name_masked"),
        id_masked=check_id_masked(d.get("id_masked"), "holder: id_masked"),
    )


def decode_holder(data: bytes) -> Holder:
    """Read a stored holder; RecordError if it is not a valid record."""
    obj = _loads("holder", data)
    h = _canonical_holder(obj)
    return h if h is not None else holder_from_json(obj)


def institution_from_json(obj: Any) -> Institution:
    """The reader of a stored institution; an empty ``cards`` list is kept (enabled for none)."""
    d = _object(obj, "institution")
    cards = _required(d, "institution", "cards")
    if not isinstance(cards, list):
        raise RecordError("institution: cards must be a list")
    return Institution(
        id=check_id(_required(d, "institution", "id"), "institution: id"),
        name=check_institution_name(_required(d, "institution", "name"), "institution: name"),
        cards=frozenset(check_choice(c, "institution: cards", CARD_TYPES) for c in cards),
        enabled=check_flag(d.get("enabled", True), "institution: enabled"),
    )


def decode_institution(data: bytes) -> Institution:
    return institution_from_json(_loads("institution", data))


def scanner_from_json(obj: Any) -> Scanner:
    """The reader of a stored scanner; ``secret_hash`` must be 64 lower-case hex digits."""
    return Scanner(*_credential_from_json(obj, "scanner"))


def _credential_from_json(obj: Any, kind: str) -> tuple[str, str, str, bool]:
    """(id, institution, secret_hash, revoked) of a stored ``kind`` (scanner or gateway)."""
    d = _object(obj, kind)
    return (
        check_id(_required(d, kind, "id"), f"{kind}: id"),
        check_id(_required(d, kind, "institution"), f"{kind}: institution"),
        check_secret_hash(_required(d, kind, "secret_hash"), f"{kind}: secret_hash"),
        check_flag(d.get("revoked", False), f"{kind}: revoked"),
    )


def decode_scanner(data: bytes) -> Scanner:
    return scanner_from_json(_loads("scanner", data))


# --- gateways and conflicts -------------------------------------------------------------------


def gateway_to_json(gw: Gateway) -> dict[str, Any]:
    """The stored form of a gateway credential (only the secret's hash)."""
    return _credential_to_json(gw)


def encode_gateway(gw: Gateway) -> bytes:
    d = gateway_to_json(gw)
    gateway_from_json(d)
    return _dumps(d)


def gateway_from_json(obj: Any) -> Gateway:
    return Gateway(*_credential_from_json(obj, "gateway"))


def decode_gateway(data: bytes) -> Gateway:
    return gateway_from_json(_loads("gateway", data))


def use_to_json(use: Use) -> dict[str, Any]:
    return {
        "scanner": use.scanner,
        "institution": use.institution,
        "gateway": use.gateway,
        "request_id": use.request_id,
        "at": use.at,
    }


def conflict_to_json(c: Conflict) -> dict[str, Any]:
    """The stored form of a conflict, without ``detected_at`` (kept beside it): the same
    double use found twice is the same bytes."""
    return {
        "holder": c.holder,
        "nonce": c.nonce,
        "first": use_to_json(c.first),
        "second": use_to_json(c.second),
    }


def encode_conflict(c: Conflict) -> bytes:
    d = conflict_to_json(c)
    conflict_from_json(d, c.detected_at)
    return _dumps(d)


def _optional_id(value: Any, field: str) -> str | None:
    return None if value is None else check_id(value, field)


def use_from_json(obj: Any, field: str) -> Use:
    d = _object(obj, field)
    at = d.get("at")
    return Use(
        scanner=check_id(_required(d, field, "scanner"), f"{field}: scanner"),
        institution=_optional_id(d.get("institution"), f"{field}: institution"),
        gateway=_optional_id(d.get("gateway"), f"{field}: gateway"),
        request_id=check_request_id(d.get("request_id"), f"{field}: request_id"),
        at=None if at is None else check_time(at, f"{field}: at"),
    )


def conflict_from_json(obj: Any, detected_at: float) -> Conflict:
    d = _object(obj, "conflict")
    return Conflict(
        holder=check_id(_required(d, "conflict", "holder"), "conflict: holder"),
        nonce=check_id(_required(d, "conflict", "nonce"), "conflict: nonce"),
        first=use_from_json(_required(d, "conflict", "first"), "conflict: first"),
        second=use_from_json(_required(d, "conflict", "second"), "conflict: second"),
        detected_at=check_time(detected_at, "conflict: detected_at"),
    )


def decode_conflict(data: bytes, detected_at: float) -> Conflict:
    """Read a stored conflict found at ``detected_at``; RecordError if it is not valid."""
    return conflict_from_json(_loads("conflict", data), detected_at)
