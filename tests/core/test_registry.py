"""Registry records: admin input validation and JSONL import (the stored form: tests/store/test_codec.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from verifier.errors import RecordError
from verifier.records import Holder, Institution
from verifier.registry import (
    RegistryFileError,
    holder_from_fields,
    institution_from_fields,
    parse_jsonl,
)

ID_NUMBER = "11010519491231002X"  # the GB 11643 sample number
BAD_CHECK = "110105194912310021"


def test_holder_from_fields_full() -> None:
    h = holder_from_fields(
        "h-001",
        "active",
        "retiree",
        "110105",
        name="张小明",
        id_number=ID_NUMBER.lower(),
        balance="123.45",
        physical_card="active",
    )
    assert h == Holder(
        sub="h-001",
        status="active",
        scheme="retiree",
        region="110105",
        balance_fen=12345,
        physical_card="active",
        name_masked="张*明",
        id_masked="1101**********002X",
    )
    # Neither the full number nor the full name is kept anywhere.
    assert ID_NUMBER not in repr(h)
    assert "小" not in repr(h)


def test_holder_from_fields_defaults() -> None:
    h = holder_from_fields("h1", "suspended", "employee", "440305")
    assert h == Holder("h1", "suspended", "employee", "440305", 0, "none", None, None)


BASE = {"sub": "h1", "status": "active", "scheme": "employee", "region": "110105"}

BAD_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"sub": ""}, "sub must be 1-64 characters"),
    ({"sub": "x" * 65}, "sub must be 1-64 characters"),
    ({"sub": "a b"}, "sub must be 1-64 characters"),
    ({"sub": "a{b}"}, "sub must be 1-64 characters"),  # braces would break Redis hash tags
    ({"sub": "ab\n"}, "sub must be 1-64 characters"),
    ({"sub": "名字"}, "sub must be 1-64 characters"),
    ({"sub": 7}, "sub must be 1-64 characters"),
    ({"status": "Active"}, "status must be one of active, suspended, terminated"),
    ({"status": None}, "status must be one of"),
    ({"scheme": "worker"}, "scheme must be one of employee, retiree, resident, flexible"),
    ({"region": "11010"}, "region must be 6 digits"),
    ({"region": "1101050"}, "region must be 6 digits"),
    ({"region": "11010a"}, "region must be 6 digits"),
    ({"region": "١١٠١٠٥"}, "region must be 6 digits"),  # Arabic-Indic digits
    ({"region": 110105}, "region must be 6 digits"),
    ({"name": ""}, "name must not be empty"),
    ({"name": "a\tb"}, "name must not contain control characters"),
    ({"id_number": BAD_CHECK}, "id_number: ID number: the check character does not match"),
    ({"id_number": "123"}, "id_number: ID number must be 18 characters"),
    ({"balance": "-1"}, "balance: amount must be a plain decimal"),
    ({"balance": "1.234"}, "balance: amount must be a plain decimal"),
    ({"balance": 12}, "balance: amount must be a decimal string"),
    ({"physical_card": "broken"}, "physical_card must be one of active, lost, cancelled, none"),
    ({"physical_card": ""}, "physical_card must be one of"),
]


@pytest.mark.parametrize("change, message", BAD_FIELDS)
def test_holder_from_fields_names_the_bad_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        holder_from_fields(**{**BASE, **change})


def test_holder_from_fields_error_hides_the_number() -> None:
    with pytest.raises(RecordError) as info:
        holder_from_fields(**BASE, id_number=BAD_CHECK)
    assert BAD_CHECK not in str(info.value)


# --- JSONL ------------------------------------------------------------------------------------


def line(**fields: Any) -> str:
    return json.dumps({**BASE, **fields}, ensure_ascii=False) + "\n"


def test_parse_jsonl_good() -> None:
    lines = [
        "\ufeff" + line(sub="h1", name="张三", id_number=ID_NUMBER, balance="10"),
        "\n",  # blank lines are ignored
        "   \n",
        line(sub="h2", status="terminated", physical_card="lost"),
        line(sub="h3").rstrip("\n"),  # last line without newline
    ]
    holders = parse_jsonl(lines)
    assert [h.sub for h in holders] == ["h1", "h2", "h3"]
    assert holders[0].name_masked == "张*"
    assert holders[0].id_masked == "1101**********002X"
    assert holders[0].balance_fen == 1000
    assert holders[1].physical_card == "lost"


def test_parse_jsonl_empty() -> None:
    assert parse_jsonl([]) == []
    assert parse_jsonl(["\n", ""]) == []


def test_parse_jsonl_lists_every_bad_line() -> None:
    lines = [
        line(sub="h1"),  # 1: good
        line(sub="h2", region="1101"),  # 2
        "\n",  # 3: blank, still counted for numbering
        "{not json\n",  # 4
        "[1, 2]\n",  # 5: not an object
        line(sub="h6", regoin="110105"),  # 6: unknown key (typo)
        json.dumps({"sub": "h7", "status": "active", "scheme": "employee"}) + "\n",  # 7
        line(sub="h1"),  # 8: duplicate of line 1
        line(sub="h9", id_number=BAD_CHECK),  # 9
        line(sub="h10"),  # 10: good
    ]
    with pytest.raises(RegistryFileError) as info:
        parse_jsonl(lines)
    err = info.value
    assert err.count == 7
    assert err.errors == (
        "line 2: region must be 6 digits",
        "line 4: not valid JSON: Expecting property name enclosed in double quotes at column 2",
        "line 5: record must be a JSON object",
        "line 6: unknown key(s) 'regoin'",
        "line 7: record: missing key 'region'",
        "line 8: sub appears twice (first on line 1)",
        "line 9: id_number: ID number: the check character does not match",
    )
    assert str(err).splitlines()[0] == "7 bad line(s) in registry input:"
    assert BAD_CHECK not in str(err)
    assert isinstance(err, RecordError)


def test_parse_jsonl_lists_at_most_20_errors() -> None:
    lines = [line(sub=f"h{i}", status="gone") for i in range(1, 26)]
    with pytest.raises(RegistryFileError) as info:
        parse_jsonl(lines)
    err = info.value
    assert err.count == 25
    assert len(err.errors) == 20
    assert err.errors[-1].startswith("line 20: ")
    assert str(err).splitlines()[-1] == "... and 5 more"


def test_parse_jsonl_reads_a_generator_once() -> None:
    holders = parse_jsonl(line(sub=f"h{i}") for i in range(3))
    assert len(holders) == 3


def test_parse_jsonl_refuses_a_key_written_twice() -> None:
    """Regression: registry._holder_from_line read each line with plain json.loads, which keeps
    the last of duplicate keys: a line with "balance" twice imported the second balance (and
    a reviewer reading the first would never know). The strict reader refuses it, by line."""
    twice = '{"sub": "h2", "status": "active", "scheme": "employee", "region": "110105", '
    lines = [
        line(sub="h1"),
        twice + '"balance": "10.00", "balance": "99999.00"}\n',
        twice.replace('"h2"', '"h3"') + '"status": "terminated"}\n',  # status twice too
        '{"sub": "h4", "sub": "h5", "status": "active", "scheme": "employee", "region": "110105"}',
    ]
    with pytest.raises(RegistryFileError) as info:
        parse_jsonl(lines)
    assert info.value.errors == (
        "line 2: duplicate keys",
        "line 3: duplicate keys",
        "line 4: duplicate keys",
    )


def test_parse_jsonl_with_escapes_still_refuses_duplicates() -> None:
    # json.dumps writes non-ASCII names as \u escapes, which the strict reader checks exactly.
    escaped = json.dumps({**BASE, "name": "张三"})
    assert "\\u" in escaped
    assert parse_jsonl([escaped])[0].name_masked == "张*"
    with pytest.raises(RegistryFileError, match="line 1: duplicate keys"):
        parse_jsonl([escaped[:-1] + ', "name": "李四"}'])


# --- institutions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cards, expected",
    [
        ("mi-voucher,ss-ecard", {"mi-voucher", "ss-ecard"}),
        (" ss-ecard , mi-voucher ", {"mi-voucher", "ss-ecard"}),  # spaces ignored
        ("mi-voucher", {"mi-voucher"}),
        ("mi-voucher,mi-voucher", {"mi-voucher"}),  # repeats collapse
    ],
)
def test_institution_from_fields(cards: str, expected: set[str]) -> None:
    inst = institution_from_fields("hosp-1", "北京协和医院", cards)
    assert inst == Institution("hosp-1", "北京协和医院", frozenset(expected), True)


@pytest.mark.parametrize(
    "args, message",
    [
        (("hosp 1", "X", "mi-voucher"), "id must be 1-64 characters"),
        (("", "X", "mi-voucher"), "id must be 1-64 characters"),
        (("h", "", "mi-voucher"), "name must be a non-empty string"),
        (("h", "  ", "mi-voucher"), "name must be a non-empty string"),
        (("h", "a\nb", "mi-voucher"), "without control characters"),
        (("h", "x" * 201, "mi-voucher"), "name must be at most 200 characters"),
        (("h", "X", ""), "cards must list at least one of mi-voucher, ss-ecard"),
        (("h", "X", " , "), "cards must list at least one of"),
        (("h", "X", "mi-voucher,,ss-ecard"), "cards must be one of"),  # empty item
        (("h", "X", "mi-voucher,paper"), "cards must be one of mi-voucher, ss-ecard"),
        (("h", "X", ["mi-voucher"]), "cards must be a comma-separated string"),
        (("h", "X", "mi-voucher", "yes"), "enabled must be true or false"),
    ],
)
def test_institution_from_fields_rejects(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        institution_from_fields(*args)
