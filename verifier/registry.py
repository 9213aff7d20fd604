"""Admin input: validation of registry records typed by an operator or imported from a file.

Holders and institutions are built here from admin input through the ``*_from_fields``
functions and :func:`parse_jsonl` (a JSONL file, read with the strict JSON reader), which
validate every field by the rules of :mod:`verifier.records` and keep identity only masked. Their stored form is written and
read by :mod:`verifier.codec` alone; ``holder_to_json`` and ``institution_to_json`` are that
form, re-exported here for the admin commands that print a record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from verifier import strictjson
from verifier.codec import holder_to_json, institution_to_json
from verifier.errors import RecordError
from verifier.idnumber import mask_id_number, mask_name
from verifier.money import MoneyError, parse_yuan
from verifier.records import (
    CARD_TYPES,
    HOLDER_STATUSES,
    PHYSICAL_CARD_STATES,
    SCHEMES,
    Holder,
    Institution,
    check_choice,
    check_flag,
    check_id,
    check_institution_name,
    check_region,
)

__all__ = [
    "MAX_LISTED_ERRORS",
    "RegistryFileError",
    "holder_from_fields",
    "holder_to_json",
    "institution_from_fields",
    "institution_to_json",
    "parse_jsonl",
]

MAX_LISTED_ERRORS = 20


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
    sub = check_id(sub, "sub")
    status = check_choice(status, "status", HOLDER_STATUSES)
    scheme = check_choice(scheme, "scheme", SCHEMES)
    region = check_region(region, "region")
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
        physical_card=check_choice(physical_card, "physical_card", PHYSICAL_CARD_STATES),
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
    obj = _parse_object(line)
    # Admin input is strict, unlike storage: an unknown key is most likely a typo.
    unknown = sorted(set(obj) - set(_HOLDER_FIELDS) - set(_HOLDER_OPTIONAL))
    if unknown:
        raise RecordError(f"unknown key(s) {', '.join(map(repr, unknown))}")
    for key in _HOLDER_FIELDS:
        if key not in obj:
            raise RecordError(f"record: missing key {key!r}")
    return holder_from_fields(**obj)


def _parse_object(line: str) -> dict[str, Any]:
    """One line as a JSON object, read by the strict reader: a key written twice is refused
    (plain JSON readers keep the last one, so ``"balance"`` twice would import the second)."""
    try:
        # surrogatepass: a lone surrogate reaches the reader, which refuses it as invalid UTF-8.
        return strictjson.loads_object(line.encode(errors="surrogatepass"))
    except strictjson.JSONError as err:
        raise RecordError(_refusal(line, err)) from err


def _refusal(line: str, err: strictjson.JSONError) -> str:
    """Why ``line`` was refused, never quoting it (it may hold an ID number). The standard
    library tells broken JSON (its wording and column) from a value that is not an object;
    what is left is valid JSON the strict reader refuses (duplicate keys, nesting, key count)."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as std:
        return f"not valid JSON: {std.msg} at column {std.colno}"
    except RecursionError:
        return str(err)
    if not isinstance(value, dict):
        return "record must be a JSON object"
    return str(err)


# --- institutions ---------------------------------------------------------------------------


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
        id=check_id(inst_id, "id"),
        name=check_institution_name(name),
        cards=frozenset(check_choice(c, "cards", CARD_TYPES) for c in items),
        enabled=check_flag(enabled, "enabled"),
    )
