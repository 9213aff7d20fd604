"""Strict RFC 3339 timestamps: zone required, ranges checked, sane years, no leap seconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier import rfc3339

T0 = datetime(2026, 11, 22, 14, 0, tzinfo=UTC).timestamp()

VALID = [
    ("2026-11-22T14:00:00Z", T0),
    ("2026-11-22T14:00:00+00:00", T0),
    ("2026-11-22T14:00:00-00:00", T0),  # "unknown local offset", same instant
    ("2026-11-22t14:00:00z", T0),  # RFC 3339 §5.6 allows lower-case t and z
    ("2026-11-22T22:00:00+08:00", T0),  # Beijing time
    ("2026-11-22T08:30:00-05:30", T0),
    ("2026-11-22T14:00:00.5Z", T0 + 0.5),
    ("2026-11-22T14:00:00.000001Z", T0 + 0.000001),
    ("2026-11-22T14:00:00.123456789Z", T0 + 0.123456),  # digits past µs are dropped
    ("2026-11-22T14:00:00.0Z", T0),
    ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC).timestamp()),  # leap day
    ("2000-01-01T00:00:00Z", 946684800.0),  # first accepted year
    ("2199-12-31T23:59:59Z", datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()),
    ("2026-11-22T14:00:00+23:59", T0 - 23 * 3600 - 59 * 60),  # largest offset
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t for t, _ in VALID])
def test_valid(text: str, expected: float) -> None:
    assert rfc3339.parse(text) == pytest.approx(expected, abs=1e-6)


INVALID = [
    ("2026-11-22T14:00:00", "no time zone"),
    ("2026-11-22 14:00:00Z", "space instead of T"),
    ("2026-11-22", "date only"),
    ("14:00:00Z", "time only"),
    ("1999-12-31T23:59:59Z", "year 1999"),
    ("2200-01-01T00:00:00Z", "year 2200"),
    ("2300-01-01T00:00:00Z", "year 2300"),
    ("0000-01-01T00:00:00Z", "year 0"),
    ("2026-13-01T00:00:00Z", "month 13"),
    ("2026-00-01T00:00:00Z", "month 0"),
    ("2026-01-32T00:00:00Z", "day 32"),
    ("2026-01-00T00:00:00Z", "day 0"),
    ("2026-02-29T00:00:00Z", "29 February in a common year"),
    ("2026-04-31T00:00:00Z", "31 April"),
    ("2026-11-22T24:00:00Z", "hour 24"),
    ("2026-11-22T14:60:00Z", "minute 60"),
    ("2016-12-31T23:59:60Z", "leap second :60"),
    ("2026-11-22T14:00:61Z", "second 61"),
    ("2026-11-22T14:00:00+24:00", "offset of 24 hours"),
    ("2026-11-22T14:00:00+0800", "offset without colon"),
    ("2026-11-22T14:00:00+08", "offset without minutes"),
    ("2026-11-22T14:00:00 +08:00", "space before offset"),
    ("2026-11-22T14:00:00UTC", "zone name"),
    ("2026-11-22T14:00:00.Z", "dot without fraction digits"),
    ("2026-11-22T14:00:00.1234567890Z", "ten fraction digits"),
    ("2026-11-22T14:00:00,5Z", "comma as decimal sign"),
    ("2026-11-22T14:00Z", "no seconds"),
    ("2026-11-22T14:00:00Z\n", "trailing newline"),
    (" 2026-11-22T14:00:00Z", "leading space"),
    ("+2026-11-22T14:00:00Z", "signed year"),
    ("20261122T140000Z", "basic (compact) ISO 8601"),
    ("2026-W47-7T14:00:00Z", "ISO week date"),
    ("2026-326T14:00:00Z", "ordinal date"),
    ("２０２６-11-22T14:00:00Z", "full-width digits"),
    ("٢٠٢٦-11-22T14:00:00Z", "Arabic-Indic digits"),
    ("", "empty"),
]


@pytest.mark.parametrize(("text", "why"), INVALID, ids=[why for _, why in INVALID])
def test_invalid_text(text: str, why: str) -> None:
    with pytest.raises(ValueError):
        rfc3339.parse(text)


@pytest.mark.parametrize(
    "value", [1795000000, 1795000000.0, None, True, b"2026-11-22T14:00:00Z", ["x"], {"a": 1}]
)
def test_non_string_is_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="string"):
        rfc3339.parse(value)


def test_failed_parse_is_not_remembered() -> None:
    # Parsing is cached; a rejected value must stay rejected on the second call.
    for _ in range(2):
        with pytest.raises(ValueError):
            rfc3339.parse("2026-02-30T00:00:00Z")


def test_format_is_utc_whole_seconds() -> None:
    assert rfc3339.format(T0) == "2026-11-22T14:00:00+00:00"
    assert rfc3339.format(T0 + 0.999) == "2026-11-22T14:00:00+00:00"


@given(st.integers(min_value=946684800, max_value=7258118399))
def test_format_then_parse_round_trips(ts: int) -> None:
    assert rfc3339.parse(rfc3339.format(ts)) == ts


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 2), max_value=datetime(2199, 12, 30), timezones=st.just(UTC)
    )
)
def test_parse_agrees_with_datetime(dt: datetime) -> None:
    assert rfc3339.parse(dt.isoformat()) == dt.timestamp()
