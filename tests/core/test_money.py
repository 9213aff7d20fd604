"""Money: yuan strings outside, integer fen inside."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.errors import RecordError
from verifier.money import MAX_FEN, MoneyError, format_fen, parse_yuan


@pytest.mark.parametrize(
    "text, fen",
    [
        ("0", 0),
        ("0.0", 0),
        ("0.00", 0),
        ("0.05", 5),
        ("0.5", 50),  # one decimal means tenths
        ("1", 100),
        ("123", 12300),
        ("123.4", 12340),
        ("123.45", 12345),
        ("1000000000000", MAX_FEN),  # exactly the limit, 10^12 yuan
        ("999999999999.99", MAX_FEN - 1),
    ],
)
def test_parse_yuan(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",  # negative
        "-0",
        "+1",  # explicit sign
        "1e3",  # exponent
        "1E3",
        "1.5e2",
        " 1",  # whitespace
        "1 ",
        "1\n",  # a trailing newline would pass a "$"-anchored regex
        "\t1",
        "1.",  # no decimals after the point
        ".5",  # no integer part
        "1.234",  # more than two decimals
        "1.000",
        "01",  # leading zero
        "00",
        "00.5",
        "1,000",  # thousands separator
        "1_000",  # int() would accept this
        "0x10",
        "inf",
        "nan",
        "NaN",
        "١٢٣",  # Arabic-Indic digits: \d and int() would accept them
        "１２３",  # full-width digits
        "1.2.3",
        "¥5",
    ],
)
def test_parse_yuan_rejects_malformed(text: str) -> None:
    with pytest.raises(MoneyError, match="decimal number of yuan"):
        parse_yuan(text)


@pytest.mark.parametrize(
    "text",
    [
        "1000000000000.01",  # one fen over the limit
        "1000000000001",
        "9999999999999.99",  # still short enough for the regex
    ],
)
def test_parse_yuan_rejects_absurd_amounts(text: str) -> None:
    with pytest.raises(MoneyError, match="above"):
        parse_yuan(text)


@pytest.mark.parametrize("text", ["10000000000000000", "1" * 5000])
def test_parse_yuan_rejects_long_input_early(text: str) -> None:
    # 5000 digits would also trip Python's int() digit limit; we refuse before that.
    with pytest.raises(MoneyError, match="too long"):
        parse_yuan(text)


@pytest.mark.parametrize("value", [1.5, 0.1, 100, True, None, b"1.00"])
def test_parse_yuan_rejects_non_strings(value: object) -> None:
    with pytest.raises(MoneyError, match="must be a decimal string"):
        parse_yuan(value)  # type: ignore[arg-type]


def test_money_error_is_a_record_error_and_a_value_error() -> None:
    assert issubclass(MoneyError, RecordError)
    assert issubclass(MoneyError, ValueError)


def test_argparse_reports_bad_amount_as_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--balance", type=parse_yuan)
    assert parser.parse_args(["--balance", "12.30"]).balance == 1230
    with pytest.raises(SystemExit):
        parser.parse_args(["--balance", "1e3"])
    assert "invalid parse_yuan value" in capsys.readouterr().err


@pytest.mark.parametrize(
    "fen, text",
    [
        (0, "0.00"),
        (5, "0.05"),
        (50, "0.50"),
        (100, "1.00"),
        (12345, "123.45"),
        (MAX_FEN, "1000000000000.00"),
        (MAX_FEN * 10, "10000000000000.00"),  # formatting has no upper limit
    ],
)
def test_format_fen(fen: int, text: str) -> None:
    assert format_fen(fen) == text


@pytest.mark.parametrize(
    "value, message",
    [
        (-1, "must not be negative"),
        (True, "must be an int"),
        (1.5, "must be an int"),
        ("5", "must be an int"),
        (None, "must be an int"),
    ],
)
def test_format_fen_rejects(value: object, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        format_fen(value)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=MAX_FEN))
def test_round_trip(fen: int) -> None:
    assert parse_yuan(format_fen(fen)) == fen
