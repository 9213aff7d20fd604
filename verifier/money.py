"""Money: integer fen (1/100 yuan) inside, plain decimal yuan strings outside, never floats.

Grammar accepted by :func:`parse_yuan` (and produced by :func:`format_fen`, which always
writes two decimals)::

    yuan   = ( "0" | nonzero-digit *digit ) [ "." 1*2digit ]

ASCII digits only: no sign, no exponent, no whitespace, no thousands separators, no leading
zeros, at most two decimals. Amounts above 10^12 yuan are refused as absurd.
"""

from __future__ import annotations

import re

from verifier.errors import RecordError

FEN_PER_YUAN = 100
MAX_YUAN = 10**12
MAX_FEN = MAX_YUAN * FEN_PER_YUAN

# [0-9] and not \d: \d also matches other scripts' digits, such as "١٢٣".
_YUAN = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]{1,2}))?")
# Longer than "1000000000000.00" can only be too large or malformed; checked before the
# regex and int() so that a huge input costs nothing.
_MAX_LEN = len(str(MAX_YUAN)) + 3


class MoneyError(RecordError, ValueError):
    """An amount is malformed, negative or out of range.

    Also a ValueError so that ``argparse`` (``type=parse_yuan``) and other generic parsers
    report it as a bad value instead of crashing.
    """


def parse_yuan(s: str) -> int:
    """Parse a yuan amount such as ``"123"``, ``"123.4"`` or ``"123.45"`` into fen.

    Raises MoneyError for anything outside the module's grammar, for non-strings (a float is
    refused even when it looks harmless: 0.1 + 0.2 is not 0.3), and above 10^12 yuan.
    """
    if not isinstance(s, str):
        raise MoneyError(f"amount must be a decimal string, not {type(s).__name__}")
    if len(s) > _MAX_LEN:
        raise MoneyError(f"amount is too long (at most {MAX_YUAN} yuan)")
    m = _YUAN.fullmatch(s)
    if m is None:
        raise MoneyError(
            "amount must be a plain decimal number of yuan with at most 2 decimals, e.g. 123.45"
        )
    whole, frac = m.group(1), m.group(2) or ""
    fen = int(whole) * FEN_PER_YUAN + int(frac.ljust(2, "0"))
    if fen > MAX_FEN:
        raise MoneyError(f"amount is above {MAX_YUAN} yuan")
    return fen


def format_fen(n: int) -> str:
    """Format fen as a yuan string with exactly two decimals: 12345 -> "123.45", 5 -> "0.05".

    Raises MoneyError for non-integers (including bool) and negative amounts, which never
    occur in this domain.
    """
    if not isinstance(n, int) or isinstance(n, bool):
        raise MoneyError(f"amount in fen must be an int, not {type(n).__name__}")
    if n < 0:
        raise MoneyError("amount in fen must not be negative")
    whole, fen = divmod(n, FEN_PER_YUAN)
    return f"{whole}.{fen:02d}"
