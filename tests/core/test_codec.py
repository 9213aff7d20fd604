"""The records codec (verifier/codec.py): the one writer and reader of what the stores hold.

Round trips, the stored form, what the reader refuses (and that its messages never repeat a
value), and the property that the fast path for the writer's form accepts exactly what the
full reader accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import codec
from verifier.codec import _canonical_holder
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

ID_NUMBER = "11010519491231002X"  # the GB 11643 sample number
HASH = "a" * 64

ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
masks = st.from_regex(r"[0-9]{4}\*{10}[0-9]{3}[0-9X]", fullmatch=True)
holders = st.builds(
    Holder,
    sub=ids,
    status=st.sampled_from(HOLDER_STATUSES),
    scheme=st.sampled_from(SCHEMES),
    region=st.from_regex(r"[0-9]{6}", fullmatch=True),
    balance_fen=st.integers(min_value=0, max_value=MAX_FEN),
    physical_card=st.sampled_from(PHYSICAL_CARD_STATES),
    name_masked=st.none() | st.text(min_size=1, max_size=10),
    id_masked=st.none() | masks,
)
institutions = st.builds(
    Institution,
    id=ids,
    name=st.text(min_size=1, max_size=200).filter(lambda s: s.strip() and s.isprintable()),
    cards=st.frozensets(st.sampled_from(CARD_TYPES)),
    enabled=st.booleans(),
)
scanners = st.builds(
    Scanner,
    id=ids,
    institution=ids,
    secret_hash=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    revoked=st.booleans(),
)


@given(holders)
def test_round_trips_holders(holder: Holder) -> None:
    assert codec.decode_holder(codec.encode_holder(holder)) == holder


@given(institutions)
def test_round_trips_institutions(inst: Institution) -> None:
    assert codec.decode_institution(codec.encode_institution(inst)) == inst


@given(scanners)
def test_round_trips_scanners(scanner: Scanner) -> None:
    assert codec.decode_scanner(codec.encode_scanner(scanner)) == scanner


HOLDERS = [
    Holder("h1", "active", "employee", "110105"),  # defaults only
    Holder("h-2_x", "terminated", "flexible", "650102", MAX_FEN, "cancelled", "欧**明", None),
    Holder("H3", "suspended", "resident", "440305", 5, "lost", None, "4403**********0021"),
    Holder("h4", "active", "retiree", "310115", 0, "active", "*", "1101**********002X"),
]


@pytest.mark.parametrize("holder", HOLDERS)
def test_holder_round_trip(holder: Holder) -> None:
    assert codec.decode_holder(codec.encode_holder(holder)) == holder


INSTITUTIONS = [
    Institution("hosp-1", "北京协和医院", frozenset(CARD_TYPES), True),
    Institution("pharm_2", "Pharmacy 2", frozenset({"ss-ecard"}), False),
    Institution("p3", "No cards", frozenset(), True),  # storage keeps an empty set
]
SCANNERS = [
    Scanner("sc-1", "hosp-1", HASH, False),
    Scanner("sc_2", "pharm_2", "0123456789abcdef" * 4, True),
]


@pytest.mark.parametrize("inst", INSTITUTIONS)
def test_institution_round_trip(inst: Institution) -> None:
    assert codec.institution_to_json(inst)["cards"] == sorted(inst.cards)
    assert codec.decode_institution(codec.encode_institution(inst)) == inst


@pytest.mark.parametrize("scanner", SCANNERS)
def test_scanner_round_trip(scanner: Scanner) -> None:
    assert codec.decode_scanner(codec.encode_scanner(scanner)) == scanner


def test_holder_storage_keys() -> None:
    assert codec.holder_to_json(HOLDERS[1]) == {
        "sub": "h-2_x",
        "status": "terminated",
        "scheme": "flexible",
        "region": "650102",
        "balance_fen": MAX_FEN,
        "physical_card": "cancelled",
        "name_masked": "欧**明",
        "id_masked": None,
    }


def test_writes_compact_json() -> None:
    assert codec.encode_scanner(Scanner("S1", "H1", HASH)) == (
        b'{"id":"S1","institution":"H1","secret_hash":"' + HASH.encode() + b'","revoked":false}'
    )


def test_fills_defaults_and_ignores_unknown_fields() -> None:
    # A newer writer may add keys; an older one may have left out those with defaults.
    data = b'{"sub":"h1","status":"active","scheme":"resident","region":"110105","future":1}'
    assert codec.decode_holder(data) == Holder("h1", "active", "resident", "110105")


def test_institution_defaults_enabled() -> None:
    assert codec.decode_institution(b'{"id":"h","name":"X","cards":["mi-voucher"]}').enabled


def test_scanner_defaults_revoked() -> None:
    data = orjson.dumps({"id": "s", "institution": "h", "secret_hash": HASH})
    assert codec.decode_scanner(data).revoked is False


# --- what the reader refuses ------------------------------------------------------------------


def stored(**change: Any) -> dict[str, Any]:
    return {**codec.holder_to_json(HOLDERS[0]), **change}


def stored_without(key: str) -> dict[str, Any]:
    d = stored()
    del d[key]
    return d


CORRUPT_HOLDERS: list[tuple[Any, str]] = [
    ([], "holder must be a JSON object"),
    ("h1", "holder must be a JSON object"),
    (stored_without("sub"), "holder: missing key 'sub'"),
    (stored_without("region"), "holder: missing key 'region'"),
    (stored(balance_fen=-1), "balance_fen must be an integer"),  # never a negative balance
    (stored(balance_fen=True), "balance_fen must be an integer"),
    (stored(balance_fen=1.0), "balance_fen must be an integer"),
    (stored(balance_fen=MAX_FEN + 1), "balance_fen must be an integer"),
    (stored(status="Active"), "holder: status must be one of"),
    (stored(scheme="nope"), "holder: scheme must be one of"),
    (stored(region="1101"), "holder: region must be 6 digits"),
    (stored(region="110105\n"), "holder: region must be 6 digits"),
    (stored(physical_card=None), "holder: physical_card must be one of"),
    (stored(name_masked=""), "name_masked must be null or a non-empty string"),
    (stored(name_masked=5), "name_masked must be null or a non-empty string"),
    (stored(id_masked=ID_NUMBER), "id_masked must be null or look like"),  # never unmasked
    (stored(id_masked="1101**********002x"), "id_masked must be null or look like"),
    (stored(sub="a{b}"), "holder: sub must be"),
    (stored(sub=1), "holder: sub must be"),
]


@pytest.mark.parametrize("data, message", CORRUPT_HOLDERS)
def test_holder_reader_refuses_corrupt_records(data: Any, message: str) -> None:
    with pytest.raises(RecordError, match=message) as info:
        codec.decode_holder(orjson.dumps(data))
    assert ID_NUMBER not in str(info.value)  # messages name the field, never the value
    with pytest.raises(RecordError, match=message):
        codec.holder_from_json(data)


@pytest.mark.parametrize("data, message", CORRUPT_HOLDERS[4:])
def test_holder_writer_refuses_what_the_reader_would(data: dict[str, Any], message: str) -> None:
    holder = Holder(**{**codec.holder_to_json(HOLDERS[0]), **data})
    with pytest.raises(RecordError, match=message):
        codec.encode_holder(holder)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"cards": "mi-voucher"}, "cards must be a list"),
        ({"cards": ["paper"]}, "institution: cards must be one of"),
        ({"cards": [1]}, "institution: cards must be one of"),
        ({"enabled": 1}, "institution: enabled must be true or false"),
        ({"id": None}, "institution: id must be"),
        ({"name": ""}, "institution: name must be a non-empty string"),
    ],
)
def test_institution_reader_refuses(change: dict[str, Any], message: str) -> None:
    data = {**codec.institution_to_json(INSTITUTIONS[0]), **change}
    with pytest.raises(RecordError, match=message):
        codec.decode_institution(orjson.dumps(data))


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
def test_scanner_reader_refuses(change: dict[str, Any], message: str) -> None:
    data = {**codec.scanner_to_json(SCANNERS[0]), **change}
    with pytest.raises(RecordError, match=message):
        codec.decode_scanner(orjson.dumps(data))


def test_scanner_reader_names_a_missing_key() -> None:
    with pytest.raises(RecordError, match="scanner: missing key 'secret_hash'"):
        codec.decode_scanner(b'{"id":"s","institution":"h"}')


# Bytes a decoder must refuse, each with why.
BAD_BYTES = [
    (codec.decode_holder, b"{not json"),  # not JSON
    (codec.decode_holder, b"\xff\xfe"),  # not even UTF-8
    (codec.decode_holder, b'["h1"]'),  # not an object
    (codec.decode_holder, b'{"status":"active","scheme":"x","region":"1"}'),  # no sub
    (codec.decode_holder, b'{"sub":1,"status":"a","scheme":"x","region":"1"}'),  # sub not str
    (codec.decode_holder, b'{"sub":"h","status":"a","scheme":"x","region":"1","balance_fen":true}'),
    (codec.decode_holder, b'{"sub":"h","status":"a","scheme":"x","region":"1","balance_fen":1.5}'),
    (codec.decode_institution, b'{"id":"i","name":"n","cards":"mi-voucher"}'),  # not a list
    (codec.decode_institution, b'{"id":"i","name":"n","cards":[1]}'),  # card not str
    (codec.decode_institution, b'{"id":"i","name":"n","cards":[],"enabled":1}'),  # int, not bool
    (codec.decode_scanner, b'{"id":"s","institution":"i","secret_hash":null}'),  # null hash
]


@pytest.mark.parametrize(("decode", "data"), BAD_BYTES)
def test_decoders_refuse_malformed_bytes(decode: Callable[[bytes], object], data: bytes) -> None:
    with pytest.raises(RecordError):
        decode(data)


def test_regression_the_store_read_holders_by_type_alone() -> None:
    """store/codec.decode_holder (what the stores read with) checked types only, while the
    validating reader (registry.holder_from_json) served tests alone: ``"scheme": "nope"``
    reached the coverage decision (a 500 after the nonce was spent), a negative balance reached
    the settlement (MoneyError, a 500), an unmasked ID number was returned as it was."""
    for change in ({"scheme": "nope"}, {"balance_fen": -100}, {"id_masked": ID_NUMBER}):
        with pytest.raises(RecordError):
            codec.decode_holder(orjson.dumps(stored(**change)))


# --- the fast path accepts exactly what the full reader accepts ----------------------------------

KEYS = tuple(codec.holder_to_json(HOLDERS[0]))
json_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.lists(st.text(max_size=2), max_size=2)
    | st.dictionaries(st.text(max_size=2), st.integers(-5, 5), max_size=1)
)
# For each field: valid values, near misses, and any JSON value.
FIELD_VALUES = {
    "sub": ids | st.sampled_from(["", "a b", "x" * 65, "ab\n", "名字", "a{b}"]),
    "status": st.sampled_from((*HOLDER_STATUSES, "Active", "")),
    "scheme": st.sampled_from((*SCHEMES, "nope")),
    "region": st.from_regex(r"[0-9]{6}", fullmatch=True)
    | st.sampled_from(["11010", "1101050", "١١٠١٠٥", "11010a", "110105\n"]),
    "balance_fen": st.integers(min_value=-2, max_value=2)
    | st.sampled_from([MAX_FEN - 1, MAX_FEN, MAX_FEN + 1, True, False, 1.0, 0.0]),
    "physical_card": st.sampled_from((*PHYSICAL_CARD_STATES, "broken")),
    "name_masked": st.none() | st.text(max_size=3),
    "id_masked": st.none()
    | masks
    | st.sampled_from([ID_NUMBER, "1101**********002x", "1101**********002X\n", ""]),
}


def _full(obj: Any) -> Holder | None:
    try:
        return codec.holder_from_json(obj)
    except RecordError:
        return None


@settings(max_examples=1000)
@given(
    holder=holders,
    key=st.sampled_from(KEYS),
    edit=st.sampled_from(["none", "change", "change", "change", "drop", "extra", "replace"]),
    data=st.data(),
)
def test_fast_path_accepts_exactly_what_the_full_reader_accepts(
    holder: Holder, key: str, edit: str, data: st.DataObject
) -> None:
    """A valid record, as written or with one edit: ``key``'s value changed (to a valid value,
    a near miss or any JSON value), ``key`` left out (the full reader may take its default),
    an unknown key added (ignored), or an unknown key in place of ``key`` (still eight keys)."""
    obj = codec.holder_to_json(holder)
    if edit == "change":
        obj[key] = data.draw(st.one_of(FIELD_VALUES[key], json_values), label="value")
    elif edit == "drop":
        del obj[key]
    elif edit == "extra":
        obj["future"] = 1
    elif edit == "replace":
        obj["x" + key] = obj.pop(key)
    full = _full(obj)
    fast = _canonical_holder(obj)
    if fast is not None:
        assert fast == full
    elif edit in ("none", "change"):  # the writer's eight keys: every valid one takes it
        assert full is None
    # And through the bytes, as the stores read them.
    try:
        assert codec.decode_holder(orjson.dumps(obj)) == full
    except RecordError:
        assert full is None
