"""Registry records: admin input validation, JSONL import, storage round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.errors import RecordError
from verifier.money import MAX_FEN
from verifier.records import (
    CARD_TYPES,
    HOLDER_STATUSES,
    PHYSICAL_CARD_STATES,
    SCHEMES,
    Holder,
    Institution,
    Scanner,
)
from verifier.registry import (
    RegistryFileError,
    holder_from_fields,
    holder_from_json,
    holder_to_json,
    institution_from_fields,
    institution_from_json,
    institution_to_json,
    parse_jsonl,
    scanner_from_json,
    scanner_to_json,
)

ID_NUMBER = "11010519491231002X"  # the GB 11643 sample number
BAD_CHECK = "110105194912310021"
HASH = "a" * 64


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


# --- storage form -----------------------------------------------------------------------------

HOLDERS = [
    Holder("h1", "active", "employee", "110105"),  # defaults only
    Holder("h-2_x", "terminated", "flexible", "650102", MAX_FEN, "cancelled", "欧**明", None),
    Holder("H3", "suspended", "resident", "440305", 5, "lost", None, "4403**********0021"),
    Holder("h4", "active", "retiree", "310115", 0, "active", "*", "1101**********002X"),
]


@pytest.mark.parametrize("holder", HOLDERS)
def test_holder_round_trip(holder: Holder) -> None:
    stored = json.dumps(holder_to_json(holder), ensure_ascii=False)
    assert holder_from_json(json.loads(stored)) == holder


def test_holder_storage_keys() -> None:
    assert holder_to_json(HOLDERS[1]) == {
        "sub": "h-2_x",
        "status": "terminated",
        "scheme": "flexible",
        "region": "650102",
        "balance_fen": MAX_FEN,
        "physical_card": "cancelled",
        "name_masked": "欧**明",
        "id_masked": None,
    }


holders = st.builds(
    Holder,
    sub=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    status=st.sampled_from(HOLDER_STATUSES),
    scheme=st.sampled_from(SCHEMES),
    region=st.from_regex(r"[0-9]{6}", fullmatch=True),
    balance_fen=st.integers(min_value=0, max_value=MAX_FEN),
    physical_card=st.sampled_from(PHYSICAL_CARD_STATES),
    name_masked=st.none() | st.text(min_size=1, max_size=10),
    id_masked=st.none() | st.from_regex(r"[0-9]{4}\*{10}[0-9]{3}[0-9X]", fullmatch=True),
)


@given(holders)
def test_holder_round_trip_property(holder: Holder) -> None:
    assert holder_from_json(json.loads(json.dumps(holder_to_json(holder)))) == holder


def test_holder_from_json_tolerates_unknown_and_missing_optional_keys() -> None:
    # A newer writer may add keys; an older one may have left out those with defaults.
    d = {"sub": "h1", "status": "active", "scheme": "employee", "region": "110105", "v": 2}
    assert holder_from_json(d) == Holder("h1", "active", "employee", "110105")


def stored(**change: Any) -> dict[str, Any]:
    return {**holder_to_json(HOLDERS[0]), **change}


def stored_without(key: str) -> dict[str, Any]:
    d = stored()
    del d[key]
    return d


CORRUPT_HOLDERS: list[tuple[Any, str]] = [
    ([], "holder must be a JSON object"),
    (stored_without("sub"), "holder: missing key 'sub'"),
    (stored_without("region"), "holder: missing key 'region'"),
    (stored(balance_fen=-1), "balance_fen must be an integer"),
    (stored(balance_fen=True), "balance_fen must be an integer"),
    (stored(balance_fen=1.0), "balance_fen must be an integer"),
    (stored(balance_fen=MAX_FEN + 1), "balance_fen must be an integer"),
    (stored(status="Active"), "holder: status must be one of"),
    (stored(region="1101"), "holder: region must be 6 digits"),
    (stored(physical_card=None), "holder: physical_card must be one of"),
    (stored(name_masked=""), "name_masked must be null or a non-empty string"),
    (stored(name_masked=5), "name_masked must be null or a non-empty string"),
    (stored(id_masked=ID_NUMBER), "id_masked must be null or look like"),  # never unmasked
    (stored(sub="a{b}"), "holder: sub must be"),
]


@pytest.mark.parametrize("data, message", CORRUPT_HOLDERS)
def test_holder_from_json_rejects_corrupt(data: Any, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        holder_from_json(data)


@pytest.mark.parametrize("holder", HOLDERS)
def test_same_bytes_as_store_codec(holder: Holder) -> None:
    # verifier.store.codec was written in parallel; both must read and write the same data.
    codec = pytest.importorskip("verifier.store.codec")
    assert json.loads(codec.encode_holder(holder)) == holder_to_json(holder)
    assert codec.decode_holder(json.dumps(holder_to_json(holder)).encode()) == holder


# --- institutions and scanners ---------------------------------------------------------------


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


INSTITUTIONS = [
    Institution("hosp-1", "北京协和医院", frozenset(CARD_TYPES), True),
    Institution("pharm_2", "Pharmacy 2", frozenset({"ss-ecard"}), False),
    Institution("p3", "No cards", frozenset(), True),  # storage keeps an empty set
]


@pytest.mark.parametrize("inst", INSTITUTIONS)
def test_institution_round_trip(inst: Institution) -> None:
    d = institution_to_json(inst)
    assert d["cards"] == sorted(inst.cards)
    assert institution_from_json(json.loads(json.dumps(d))) == inst


def test_institution_from_json_defaults_enabled() -> None:
    d = {"id": "h", "name": "X", "cards": ["mi-voucher"]}
    assert institution_from_json(d).enabled is True


@pytest.mark.parametrize(
    "change, message",
    [
        ({"cards": "mi-voucher"}, "cards must be a list"),
        ({"cards": ["paper"]}, "institution: cards must be one of"),
        ({"enabled": 1}, "institution: enabled must be true or false"),
        ({"id": None}, "institution: id must be"),
    ],
)
def test_institution_from_json_rejects(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        institution_from_json({**institution_to_json(INSTITUTIONS[0]), **change})


SCANNERS = [
    Scanner("sc-1", "hosp-1", HASH, False),
    Scanner("sc_2", "pharm_2", "0123456789abcdef" * 4, True),
]


@pytest.mark.parametrize("scanner", SCANNERS)
def test_scanner_round_trip(scanner: Scanner) -> None:
    assert scanner_from_json(json.loads(json.dumps(scanner_to_json(scanner)))) == scanner


def test_scanner_from_json_defaults_revoked() -> None:
    d = {"id": "s", "institution": "h", "secret_hash": HASH}
    assert scanner_from_json(d).revoked is False


@pytest.mark.parametrize(
    "change, message",
    [
        ({"secret_hash": "A" * 64}, "secret_hash must be 64 lower-case hex digits"),
        ({"secret_hash": "a" * 63}, "secret_hash must be 64 lower-case hex digits"),
        ({"secret_hash": None}, "secret_hash must be 64 lower-case hex digits"),
        ({"revoked": "no"}, "scanner: revoked must be true or false"),
        ({"institution": "h 1"}, "scanner: institution must be"),
        ({"id": ""}, "scanner: id must be"),
    ],
)
def test_scanner_from_json_rejects(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        scanner_from_json({**scanner_to_json(SCANNERS[0]), **change})


def test_scanner_from_json_missing_key() -> None:
    with pytest.raises(RecordError, match="scanner: missing key 'secret_hash'"):
        scanner_from_json({"id": "s", "institution": "h"})
