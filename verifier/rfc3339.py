"""RFC 3339 timestamps, strictly: a time zone is required, ranges are checked, years are sane."""

from __future__ import annotations

import re
from datetime import UTC, datetime

MIN_YEAR = 2000
MAX_YEAR = 2199

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


_cache: dict[str, float] = {}
_CACHE_MAX = 4096


def parse(text: object) -> float:
    """Seconds since the epoch for an RFC 3339 date-time; ValueError if not strictly valid."""
    # Tokens minted in the same second share their iat/exp text: remember recent answers.
    ts = _cache.get(text) if type(text) is str else None
    if ts is not None:
        return ts
    ts = _parse(text)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[text] = ts  # type: ignore[index]
    return ts


def _parse(text: object) -> float:
    if type(text) is not str:
        raise ValueError("timestamp must be a string")
    if _RFC3339.fullmatch(text) is None:
        raise ValueError("not an RFC 3339 date-time with a time zone")
    if not MIN_YEAR <= int(text[:4]) <= MAX_YEAR:
        raise ValueError(f"year {text[:4]} out of range")
    # The shape is checked; datetime checks the ranges (month, day, hour, minute, second, and
    # an offset under 24 h; no leap second) and drops fraction digits beyond microseconds.
    return datetime.fromisoformat(text.upper()).timestamp()


def format(ts: float) -> str:
    """RFC 3339 in UTC with whole seconds, e.g. ``2026-11-22T14:00:00+00:00``."""
    return datetime.fromtimestamp(int(ts), UTC).isoformat()
