"""Durations in the sidecar's settings (``"12h"``, ``"90s"``, ``"250ms"`` → milliseconds).

The grammar is the library's, :mod:`verifier.durations`, shared with every other command.
"""

from __future__ import annotations

from verifier.durations import MAX_MS, format_duration, parse_duration

__all__ = ["MAX_MS", "format_duration", "parse_duration"]
