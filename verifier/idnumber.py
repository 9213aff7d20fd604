"""Chinese citizen ID numbers (the personal social security number) and masking of identity.

An ID number has 18 characters: a 6-digit region code, an 8-digit birth date YYYYMMDD, a
3-digit sequence number and a check character computed with ISO 7064 MOD 11-2 over the first
17 digits ('X' stands for 10).

The full number is personal data: error messages here never repeat it, or any part of it,
so that they are safe to log. Callers should keep only :func:`mask_id_number`'s result.
"""

from __future__ import annotations

import datetime

from verifier.errors import RecordError

ID_LENGTH = 18

# ISO 7064 MOD 11-2: the weight of position i (0-based, left to right) is 2**(17 - i) mod 11.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Check character for (weighted sum mod 11); "X" stands for 10.
_CHECK_CHARS = "10X98765432"

# First two digits of GB/T 2260 region codes: the provinces, autonomous regions and
# municipalities, plus 71 (Taiwan) and 81/82/83, used by residence permits of Hong Kong, Macao
# and Taiwan residents.
_PROVINCES = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
        "71", "81", "82", "83",
    }
)  # fmt: skip

# ID cards were introduced in 1984; nobody holding one was born before this year.
_MIN_BIRTH_YEAR = 1850

_ASCII_DIGITS = frozenset("0123456789")


def check_char(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for 17 ASCII digits."""
    if len(first17) != ID_LENGTH - 1 or not set(first17) <= _ASCII_DIGITS:
        raise RecordError("ID number: the first 17 characters must be digits")
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def validate_id_number(s: str, *, today: datetime.date | None = None) -> str:
    """Validate an 18-character citizen ID number and return it normalised (upper-case 'X').

    Checks, in order: type and length, 17 digits plus a digit or 'X', a known province prefix
    in the region code, a real birth date (not before 1850, and not after ``today`` when it is
    given; this module never reads the clock), and the check character.

    Raises RecordError with a message that does not contain the number.
    """
    if not isinstance(s, str):
        raise RecordError("ID number must be a string")
    if len(s) != ID_LENGTH:
        raise RecordError(f"ID number must be {ID_LENGTH} characters, got {len(s)}")
    # 'X' is the only letter an ID number has, and only as its check character.
    first17, last = s[:17], s[17].replace("x", "X")
    if not set(first17) <= _ASCII_DIGITS:
        raise RecordError("ID number: the first 17 characters must be digits")
    if last not in _ASCII_DIGITS and last != "X":
        raise RecordError("ID number: the last character must be a digit or X")
    if s[:2] not in _PROVINCES:
        raise RecordError("ID number: the region code has an unknown province prefix")
    _check_birth_date(s[6:14], today)
    if check_char(first17) != last:
        raise RecordError("ID number: the check character does not match")
    return first17 + last


def _check_birth_date(yyyymmdd: str, today: datetime.date | None) -> None:
    try:
        born = datetime.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError as err:
        raise RecordError("ID number: the birth date is not a real date") from err
    if born.year < _MIN_BIRTH_YEAR:
        raise RecordError(f"ID number: the birth year is before {_MIN_BIRTH_YEAR}")
    if today is not None and born > today:
        raise RecordError("ID number: the birth date is in the future")


def mask_id_number(s: str) -> str:
    """Validate ``s`` like :func:`validate_id_number` and return it masked.

    The first 4 characters (province and city) and the last 4 are kept, the 10 in between
    (county, birth date, start of the sequence number) become stars: ``1101**********123X``.
    Masking only valid numbers means a stored mask always stands for a real-looking number.
    """
    n = validate_id_number(s)
    return n[:4] + "*" * 10 + n[-4:]


def mask_name(name: str) -> str:
    """Mask a person's name the way Chinese apps do.

    One character becomes ``*``; two keep the first (``张*``); three or more keep the first and
    the last with a star for each character in between (``张*明``, ``欧**明``, ``J**n``).
    Surrounding whitespace is ignored. Raises RecordError for an empty name or one holding
    control characters.
    """
    if not isinstance(name, str):
        raise RecordError("name must be a string")
    name = name.strip()
    if not name:
        raise RecordError("name must not be empty")
    if not name.isprintable():
        raise RecordError("name must not contain control characters")
    if len(name) == 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
