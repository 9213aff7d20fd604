"""Duration settings: the grammar, its refusals, and format/parse round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.durations import MAX_MS, format_duration, parse_duration
from verifier.errors import ConfigError


@pytest.mark.parametrize(
    "text, ms",
    [
        ("0s", 0),
        ("250ms", 250),  # "ms" is milliseconds, not minutes followed by "s"
        ("90s", 90_000),
        ("30m", 1_800_000),
        ("12h", 43_200_000),  # the default VERIFIER_OFFLINE_MAX_AGE
        ("24h", 86_400_000),  # the default VERIFIER_OFFLINE_WINDOW
        ("1d", 86_400_000),
        ("1h30m", 5_400_000),
        ("1d2h3m4s5ms", 93_784_005),
        (" 12h ", 43_200_000),  # surrounding whitespace from an env file
        ("366d", MAX_MS),  # exactly the limit
    ],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration("VERIFIER_X", text) == ms


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "12",  # no unit: seconds or hours? refused rather than guessed
        "h",
        "-1h",
        "+1h",
        "1.5h",  # no fractions
        "1H",  # units are lower case
        "1 h",
        "1h 30m",
        "30m1h",  # largest unit first
        "1h1h",  # each unit once
        "1w",
        "١h",  # a non-ASCII digit
        "367d",  # above the limit
        "1234567890s",  # more than 9 digits
        None,
        12,
    ],
)
def test_parse_duration_refuses(raw: object) -> None:
    with pytest.raises(ConfigError, match="^VERIFIER_X: "):
        parse_duration("VERIFIER_X", raw)


@pytest.mark.parametrize(
    "ms, text", [(0, "0s"), (250, "250ms"), (5_400_000, "1h30m"), (86_400_000, "1d")]
)
def test_format_duration(ms: int, text: str) -> None:
    assert format_duration(ms) == text


@given(st.integers(min_value=0, max_value=MAX_MS))
def test_format_then_parse_round_trips(ms: int) -> None:
    assert parse_duration("VERIFIER_X", format_duration(ms)) == ms
