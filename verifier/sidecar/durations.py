"""Durations in settings: ``"24h"``, ``"90s"``, ``"1h30m"``, ``"250ms"`` → integer milliseconds.

Grammar (ASCII only, no sign, no spaces, no fractions; each unit at most once, largest first)::

    duration = 1*( 1*9digit unit )
    unit     = "d" | "h" | "m" | "s" | "ms"

A bare number is refused: "12" could mean seconds or hours, and a wrong guess here decides
how long a hospital keeps accepting cards offline. Errors are ConfigError naming the setting.
"""

from __future__ import annotations

import re

from verifier.errors import ConfigError

_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
_ORDER = ("d", "h", "m", "s", "ms")
# "ms" before "m" in the alternation so that "250ms" is not read as 250 minutes + "s".
_PART = re.compile(r"([0-9]{1,9})(ms|d|h|m|s)")
MAX_MS = 366 * _UNIT_MS["d"]


def parse_duration(env: str, raw: object) -> int:
    """Milliseconds for a duration setting such as ``"12h"``; ConfigError naming ``env``.

    Refuses anything outside the module's grammar and durations above 366 days.
    """
    text = raw.strip() if isinstance(raw, str) else ""
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
        raise ConfigError(
            f"{env}: expected a duration such as 90s, 30m, 12h, 1h30m or 1d, got {raw!r}"
        )
    if total > MAX_MS:
        raise ConfigError(f"{env}: at most 366d")
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
