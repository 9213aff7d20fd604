"""Durations with units: ``"90s"``, ``"15m"``, ``"24h"``, ``"30d"``, ``"1h30m"``, ``"250ms"``.

One grammar for every command and setting that takes a duration (``trust sign --valid-for``,
``mint --ttl``, the gateway sidecar's offline windows), read into integer milliseconds.

Grammar (ASCII only, no sign, no spaces, no fractions; each unit at most once, largest first)::

    duration = 1*( 1*9digit unit )
    unit     = "d" | "h" | "m" | "s" | "ms"

A bare number is refused: "30" could mean seconds or days, and a wrong guess decides how long a
trust list lives or how long a hospital keeps accepting cards offline. Every error is a
ConfigError whose message starts with the label it is given (a flag, a variable, a file key).
"""

from __future__ import annotations

import re

from verifier.errors import ConfigError

_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
_ORDER = ("d", "h", "m", "s", "ms")
# "ms" before "m" in the alternation so that "250ms" is not read as 250 minutes + "s".
_PART = re.compile(r"([0-9]{1,9})(ms|d|h|m|s)")
_BARE = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?")
MAX_MS = 366 * _UNIT_MS["d"]
EXAMPLES = "30s, 15m, 12h, 30d or 1h30m"


def parse_duration(label: str, raw: object) -> int:
    """Milliseconds for a duration such as ``"12h"``; ConfigError whose message starts ``label: ``.

    Refuses a bare number (saying it lacks a unit), a sign, anything else outside the
    module's grammar, and durations above 366 days.
    """
    text = raw.strip() if isinstance(raw, str) else ""
    if text.startswith("-"):
        raise ConfigError(f"{label}: a duration cannot be negative, got {raw!r}")
    if _BARE.fullmatch(text) or isinstance(raw, int | float) and not isinstance(raw, bool):
        raise ConfigError(
            f"{label}: {raw!r} is a bare number; say the unit, e.g. {text or raw}s or "
            f"{text or raw}d (durations look like {EXAMPLES})"
        )
    pos, total, last = 0, 0, -1
    while text and pos < len(text):
        m = _PART.match(text, pos)
        if m is None:
            break
        rank = _ORDER.index(m[2])
        if rank <= last:
            break
        total += int(m[1]) * _UNIT_MS[m[2]]
        pos, last = m.end(), rank
    if not text or pos != len(text):
        raise ConfigError(f"{label}: expected a duration such as {EXAMPLES}, got {raw!r}")
    if total > MAX_MS:
        raise ConfigError(f"{label}: at most 366d, got {raw!r}")
    return total


def format_duration(ms: int) -> str:
    """The shortest text :func:`parse_duration` reads back as ``ms``: 5400000 → ``"1h30m"``."""
    if ms == 0:
        return "0s"
    parts = []
    for unit in _ORDER:
        n, ms = divmod(ms, _UNIT_MS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
