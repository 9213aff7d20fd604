"""Validation and serialisation of registry records (holders, institutions, scanners).

Admin input goes through the ``*_from_fields`` functions and :func:`parse_jsonl`, which
validate every field and keep identity only masked.

The ``*_to_json`` / ``*_from_json`` pairs are the storage form. They use the same keys and
reading rules as ``verifier.store.codec`` (written in parallel), so either can serve the
stores without changing stored data: every field is written (None as null), so a record
read back equals the one written; on reading, unknown keys are ignored (a newer writer must
not lock out an older reader) and a missing key that has a default takes it. Unlike the
codec, the values are validated too (enumerations, region, mask shape), so a corrupt record
raises RecordError instead of reaching the coverage decision::

    holder       {"sub", "status", "scheme", "region", "balance_fen" (int, default 0),
                  "physical_card" (default "none"), "name_masked", "id_masked" (null)}
    institution  {"id", "name", "cards" (sorted list), "enabled" (default true)}
    scanner      {"id", "institution", "secret_hash" (64 hex), "revoked" (default false)}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from verifier.errors import RecordError
from verifier.idnumber import mask_id_number, mask_name
from verifier.money import MAX_FEN, MoneyError, parse_yuan
from verifier.records import (
    CARD_TYPES,
    HOLDER_STATUSES,
    PHYSICAL_CARD_STATES,
    SCHEMES,
    Holder,
    Institution,
    Scanner,
)

MAX_LISTED_ERRORS = 20
MAX_INSTITUTION_NAME = 200

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REGION = re.compile(r"[0-9]{6}")
_ID_MASKED = re.compile(r"[0-9]{4}\*{10}[0-9]{3}[0-9X]")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class RegistryFileError(RecordError):
    """A registry file has bad lines. ``errors`` lists the first MAX_LISTED_ERRORS of them
    (each "line N: ..."), ``count`` is how many there were in all."""

    def __init__(self, errors: list[str], count: int) -> None:
        more = count - len(errors)
        lines = [f"{count} bad line(s) in registry input:", *errors]
        if more > 0:
            lines.append(f"... and {more} more")
        super().__init__("\n".join(lines))
        self.errors = tuple(errors)
        self.count = count


# --- field checks (messages name the field, never repeat personal data) --------------------


def _ident(value: Any, field: str) -> str:
    # fullmatch, not match: "$" would also accept a trailing newline.
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise RecordError(f"{field} must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise RecordError(f"{field} must be one of {', '.join(choices)}")
    return value


def _region(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise RecordError(f"{field} must be 6 digits")
    return value


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise RecordError(f"{field} must be true or false")
    return value


def _object(d: Any, what: str) -> None:
    if not isinstance(d, Mapping):
        raise RecordError(f"{what} must be a JSON object")


def _required(d: Mapping[str, Any], what: str, key: str) -> Any:
    if key not in d:
        raise RecordError(f"{what}: missing key {key!r}")
    return d[key]


# --- holders --------------------------------------------------------------------------------


def holder_from_fields(
    sub: str,
    status: str,
    scheme: str,
    region: str,
    name: str | None = None,
    id_number: str | None = None,
    balance: str | None = None,
    physical_card: str | None = None,
) -> Holder:
    """Validate admin input and build a Holder.

    ``balance`` is a yuan decimal string (default 0), ``physical_card`` defaults to "none".
    The ID number is validated and only its mask is kept; the name is kept only masked.
    Raises RecordError whose message names the bad field.
    """
    # Checked in parameter order, so the first bad field is the one reported.
    sub = _ident(sub, "sub")
    status = _choice(status, "status", HOLDER_STATUSES)
    scheme = _choice(scheme, "scheme", SCHEMES)
    region = _region(region, "region")
    name_masked = None if name is None else mask_name(name)
    id_masked = None
    if id_number is not None:
        try:
            id_masked = mask_id_number(id_number)
        except RecordError as err:
            raise RecordError(f"id_number: {err}") from err
    balance_fen = 0
    if balance is not None:
        try:
            balance_fen = parse_yuan(balance)
        except MoneyError as err:
            raise RecordError(f"balance: {err}") from err
    if physical_card is None:
        physical_card = "none"
    return Holder(
        sub=sub,
        status=status,
        scheme=scheme,
        region=region,
        balance_fen=balance_fen,
        physical_card=_choice(physical_card, "physical_card", PHYSICAL_CARD_STATES),
        name_masked=name_masked,
        id_masked=id_masked,
    )


_HOLDER_FIELDS = ("sub", "status", "scheme", "region")
_HOLDER_OPTIONAL = ("name", "id_number", "balance", "physical_card")


def parse_jsonl(lines: Iterable[str]) -> list[Holder]:
    """Parse holder records, one JSON object per line, with the keys of holder_from_fields.

    The whole input is validated before anything is returned: any bad line (or a ``sub``
    seen on an earlier line) raises RegistryFileError listing up to 20 errors with 1-based
    line numbers, e.g. "line 3: region must be 6 digits", and the total count.
    Blank lines and a UTF-8 byte order mark are ignored.
    """
    holders: list[Holder] = []
    errors: list[str] = []
    count = 0
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            holder = _holder_from_line(line)
            if holder.sub in seen:
                raise RecordError(f"sub appears twice (first on line {seen[holder.sub]})")
        except RecordError as err:
            count += 1
            if len(errors) < MAX_LISTED_ERRORS:
                errors.append(f"line {lineno}: {err}")
            continue
        seen[holder.sub] = lineno
        holders.append(holder)
    if count:
        raise RegistryFileError(errors, count)
    return holders


def _holder_from_line(line: str) -> Holder:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        # err.msg and the column only: the line itself may hold an ID number.
        raise RecordError(f"not valid JSON: {err.msg} at column {err.colno}") from err
    _object(obj, "record")
    # Admin input is strict, unlike storage: an unknown key is most likely a typo.
    unknown = sorted(set(obj) - set(_HOLDER_FIELDS) - set(_HOLDER_OPTIONAL))
    if unknown:
        raise RecordError(f"unknown key(s) {', '.join(map(repr, unknown))}")
    for key in _HOLDER_FIELDS:
        _required(obj, "record", key)
    return holder_from_fields(**obj)


def holder_to_json(h: Holder) -> dict[str, Any]:
    """The storage form of a holder (see the module docstring)."""
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


def holder_from_json(d: Any) -> Holder:
    """Read a holder back from :func:`holder_to_json`'s form; raises RecordError if corrupt."""
    _object(d, "holder")
    balance = d.get("balance_fen", 0)
    if not isinstance(balance, int) or isinstance(balance, bool) or not 0 <= balance <= MAX_FEN:
        raise RecordError(f"holder: balance_fen must be an integer from 0 to {MAX_FEN}")
    name, id_masked = d.get("name_masked"), d.get("id_masked")
    if name is not None and (not isinstance(name, str) or not name):
        raise RecordError("holder: name_masked must be null or a non-empty string")
    if id_masked is not None and (
        not isinstance(id_masked, str) or not _ID_MASKED.fullmatch(id_masked)
    ):
        raise RecordError("holder: id_masked must be null or look like 1101**********123X")
    return Holder(
        sub=_ident(_required(d, "holder", "sub"), "holder: sub"),
        status=_choice(_required(d, "holder", "status"), "holder: status", HOLDER_STATUSES),
        scheme=_choice(_required(d, "holder", "scheme"), "holder: scheme", SCHEMES),
        region=_region(_required(d, "holder", "region"), "holder: region"),
        balance_fen=balance,
        physical_card=_choice(
            d.get("physical_card", "none"), "holder: physical_card", PHYSICAL_CARD_STATES
        ),
        name_masked=name,
        id_masked=id_masked,
    )


# --- institutions and scanners -------------------------------------------------------------


def _institution_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise RecordError("name must be a non-empty string without control characters")
    if len(value) > MAX_INSTITUTION_NAME:
        raise RecordError(f"name must be at most {MAX_INSTITUTION_NAME} characters")
    return value


def institution_from_fields(
    inst_id: str, name: str, cards: str, enabled: bool = True
) -> Institution:
    """Validate admin input and build an Institution.

    ``cards`` is a comma-separated list of card types, e.g. "mi-voucher,ss-ecard"; spaces
    around items are ignored and at least one card type is required.
    """
    if not isinstance(cards, str):
        raise RecordError("cards must be a comma-separated string")
    items = [c.strip() for c in cards.split(",")]
    if not any(items):
        raise RecordError(f"cards must list at least one of {', '.join(CARD_TYPES)}")
    return Institution(
        id=_ident(inst_id, "id"),
        name=_institution_name(name),
        cards=frozenset(_choice(c, "cards", CARD_TYPES) for c in items),
        enabled=_flag(enabled, "enabled"),
    )


def institution_to_json(inst: Institution) -> dict[str, Any]:
    """The storage form of an institution; ``cards`` is a sorted list."""
    return {"id": inst.id, "name": inst.name, "cards": sorted(inst.cards), "enabled": inst.enabled}


def institution_from_json(d: Any) -> Institution:
    """Read an institution back; an empty ``cards`` list is kept (enabled for no card)."""
    _object(d, "institution")
    cards = _required(d, "institution", "cards")
    if not isinstance(cards, list):
        raise RecordError("institution: cards must be a list")
    return Institution(
        id=_ident(_required(d, "institution", "id"), "institution: id"),
        name=_institution_name(_required(d, "institution", "name")),
        cards=frozenset(_choice(c, "institution: cards", CARD_TYPES) for c in cards),
        enabled=_flag(d.get("enabled", True), "institution: enabled"),
    )


def scanner_to_json(sc: Scanner) -> dict[str, Any]:
    """The storage form of a scanner (only the secret's SHA-256 hash, never the secret)."""
    return {
        "id": sc.id,
        "institution": sc.institution,
        "secret_hash": sc.secret_hash,
        "revoked": sc.revoked,
    }


def scanner_from_json(d: Any) -> Scanner:
    """Read a scanner back; ``secret_hash`` must be 64 lower-case hex digits."""
    _object(d, "scanner")
    secret_hash = _required(d, "scanner", "secret_hash")
    if not isinstance(secret_hash, str) or not _SHA256_HEX.fullmatch(secret_hash):
        raise RecordError("scanner: secret_hash must be 64 lower-case hex digits")
    return Scanner(
        id=_ident(_required(d, "scanner", "id"), "scanner: id"),
        institution=_ident(_required(d, "scanner", "institution"), "scanner: institution"),
        secret_hash=secret_hash,
        revoked=_flag(d.get("revoked", False), "scanner: revoked"),
    )
