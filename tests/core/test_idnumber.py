"""Citizen ID numbers: validation, masking, and name masking."""

from __future__ import annotations

import datetime

import pytest

from verifier.errors import RecordError
from verifier.idnumber import check_char, mask_id_number, mask_name, validate_id_number

SAMPLE = "11010519491231002X"  # the well-known sample number from GB 11643-1999


def iso7064_check(first17: str) -> str:
    """Independent MOD 11-2: weights computed as 2**(17-i) mod 11, not taken from a table."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def make_id(first17: str) -> str:
    return first17 + iso7064_check(first17)


# First 17 digits of valid-looking numbers: region, birth date, sequence.
GOOD_PREFIXES = [
    "11010519491231002",  # the sample: Beijing Chaoyang, 1949-12-31
    "44030019900307123",  # Shenzhen, 1990-03-07
    "31011520000229456",  # Shanghai Pudong, leap day of 2000
    "65010219850615001",  # Urumqi
    "81000019950101003",  # Hong Kong resident's residence permit
    "83000020010911008",  # Taiwan resident's residence permit
    "51010718500101000",  # born on the earliest accepted day
]


@pytest.mark.parametrize("first17", GOOD_PREFIXES)
def test_known_good_numbers(first17: str) -> None:
    number = make_id(first17)
    assert validate_id_number(number) == number
    assert check_char(first17) == number[-1]


def test_sample_check_char_is_x() -> None:
    assert iso7064_check(SAMPLE[:17]) == "X"
    assert validate_id_number(SAMPLE) == SAMPLE


def test_all_check_chars_occur() -> None:
    # Every check character 0-9 and X is produced for some sequence number.
    seen = {check_char(f"110105194912310{n:02d}") for n in range(100)}
    assert seen == set("0123456789X")


def test_lowercase_x_is_normalised() -> None:
    assert validate_id_number(SAMPLE.lower()) == SAMPLE
    assert mask_id_number(SAMPLE.lower()) == "1101**********002X"


@pytest.mark.parametrize("wrong", [c for c in "0123456789X" if c != "X"])
def test_bad_check_char(wrong: str) -> None:
    with pytest.raises(RecordError, match="check character"):
        validate_id_number(SAMPLE[:17] + wrong)


def test_every_single_digit_substitution_is_caught() -> None:
    # MOD 11-2 detects all single substitutions in the first 17 digits.
    for pos in range(17):
        for digit in "0123456789":
            if digit == SAMPLE[pos]:
                continue
            mutated = SAMPLE[:pos] + digit + SAMPLE[pos + 1 :]
            with pytest.raises(RecordError):
                validate_id_number(mutated)


def test_every_adjacent_transposition_is_caught() -> None:
    number = make_id("44030019900307123")
    for pos in range(16):
        a, b = number[pos], number[pos + 1]
        if a == b:
            continue
        swapped = number[:pos] + b + a + number[pos + 2 :]
        with pytest.raises(RecordError):
            validate_id_number(swapped)


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "18 characters, got 0"),
        (SAMPLE[:17], "18 characters, got 17"),  # check character missing
        (SAMPLE + "0", "18 characters, got 19"),
        ("110105491231002", "18 characters, got 15"),  # old 15-digit numbers are not accepted
        (" " + SAMPLE[1:], "first 17 characters must be digits"),
        ("1101051949123100A" + "X", "first 17 characters must be digits"),
        ("１１０１０５１９４９１２３１００２X", "first 17 characters must be digits"),  # full-width
        ("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "first 17 characters must be digits"),  # Arabic-Indic
        (SAMPLE[:17] + "Y", "last character must be a digit or X"),
        (SAMPLE[:17] + "*", "last character must be a digit or X"),
    ],
)
def test_malformed(value: str, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        validate_id_number(value)


@pytest.mark.parametrize("value", [110105194912310020, None, b"11010519491231002X", 1.5])
def test_not_a_string(value: object) -> None:
    with pytest.raises(RecordError, match="must be a string"):
        validate_id_number(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "region",
    [
        "000000",  # no province 00
        "101010",  # 10 is not a province
        "991234",  # 99 is not a province
        "701234",  # 70 is unused (Taiwan is 71)
    ],
)
def test_unknown_province(region: str) -> None:
    with pytest.raises(RecordError, match="province"):
        validate_id_number(make_id(region + "19900101123"))


@pytest.mark.parametrize(
    "birth",
    [
        "19490230",  # 30 February
        "19491301",  # month 13
        "19490001",  # month 0
        "19490100",  # day 0
        "19490132",  # day 32
        "19000229",  # 1900 was not a leap year
        "20230229",  # neither was 2023
        "00000000",
    ],
)
def test_birth_date_not_real(birth: str) -> None:
    with pytest.raises(RecordError, match="not a real date"):
        validate_id_number(make_id("110105" + birth + "002"))


def test_birth_year_too_early() -> None:
    with pytest.raises(RecordError, match="before 1850"):
        validate_id_number(make_id("110105" + "18491231" + "002"))


def test_birth_date_in_future_only_checked_with_today() -> None:
    number = make_id("110105" + "20300101" + "002")
    assert validate_id_number(number) == number  # no clock read without `today`
    with pytest.raises(RecordError, match="future"):
        validate_id_number(number, today=datetime.date(2029, 12, 31))
    assert validate_id_number(number, today=datetime.date(2030, 1, 1)) == number  # born today


@pytest.mark.parametrize(
    "value",
    [
        SAMPLE[:17] + "0",  # bad check
        make_id("110105" + "19490230" + "002"),  # bad date
        make_id("991234" + "19490101" + "002"),  # bad province
        SAMPLE[:17] + "Y",
    ],
)
def test_messages_never_contain_the_number_or_birth_date(value: str) -> None:
    with pytest.raises(RecordError) as info:
        validate_id_number(value)
    message = str(info.value)
    assert value not in message
    assert value[6:14] not in message
    assert value[:6] not in message


def test_mask_id_number() -> None:
    masked = mask_id_number(SAMPLE)
    assert masked == "1101**********002X"
    assert len(masked) == 18
    assert masked.count("*") == 10


def test_mask_id_number_validates_first() -> None:
    with pytest.raises(RecordError, match="check character"):
        mask_id_number(SAMPLE[:17] + "1")


@pytest.mark.parametrize(
    "name, masked",
    [
        ("张", "*"),  # one character: all hidden
        ("张三", "张*"),  # two: keep the family name
        ("张小明", "张*明"),  # three: first and last kept
        ("欧阳小明", "欧**明"),  # four: one star per hidden character
        ("阿沛·阿旺晋美", "阿*****美"),  # the middle dot counts as a character
        ("J", "*"),
        ("Jo", "J*"),
        ("John", "J**n"),
        ("John Smith", "J********h"),  # the space is hidden too
        ("  张三  ", "张*"),  # surrounding whitespace ignored
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("张\n三", "control characters"),
        ("张\x00三", "control characters"),
        (None, "must be a string"),
        (42, "must be a string"),
    ],
)
def test_mask_name_rejects(name: object, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        mask_name(name)  # type: ignore[arg-type]
