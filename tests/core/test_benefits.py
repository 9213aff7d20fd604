"""Benefit policy and settlement split (DOMAIN.md benefit table, seeds 003 and 004)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.benefits import (
    SERVICES,
    BenefitPolicy,
    Settlement,
    UnknownService,
    format_percent,
    ratios,
    settle,
)
from verifier.benefits_file import load_policy, policy_from_mapping
from verifier.errors import ConfigError, RecordError
from verifier.money import MAX_FEN, parse_yuan
from verifier.records import SCHEMES

DEFAULT = BenefitPolicy.default()
REGION = "110105"
PLENTY = parse_yuan("1000000")  # a balance that covers any personal part below
THRESHOLD = parse_yuan("10000")  # default outpatient threshold: 10% of 100,000 yuan


def y(text: str) -> int:
    return parse_yuan(text)


# One row per line of the DOMAIN.md table, then the variations around it.
# (scheme, service, amount, balance, fund, personal account, out of pocket), amounts in yuan.
TABLE = [
    # inpatient, employee: fund 90%, person 10% from the account
    ("employee", "inpatient", "10000", "1000000", "9000", "1000", "0"),
    # inpatient, retiree: fund 95%, person 5%
    ("retiree", "inpatient", "10000", "1000000", "9500", "500", "0"),
    # inpatient, resident and flexible: employee's ratio by default
    ("resident", "inpatient", "10000", "1000000", "9000", "1000", "0"),
    ("flexible", "inpatient", "10000", "1000000", "9000", "1000", "0"),
    # outpatient basic: 70% of the part above the 10,000 yuan threshold, the rest the person's
    ("employee", "outpatient", "12000", "1000000", "1400", "10600", "0"),
    # outpatient basic is the same for retirees
    ("retiree", "outpatient", "12000", "1000000", "1400", "10600", "0"),
    # large-equipment examination or treatment: 80%
    ("employee", "large-equipment", "5000", "1000000", "4000", "1000", "0"),
    # special materials over 1,000 yuan, domestic reference price: 90%
    ("employee", "special-materials-domestic", "3000", "1000000", "2700", "300", "0"),
    # the same with only an imported reference price: 50%
    ("employee", "special-materials-imported", "3000", "1000000", "1500", "1500", "0"),
    # outpatient dialysis, anti-rejection drugs, outpatient cancer therapy: 90%
    ("employee", "outpatient-special", "8000", "1000000", "7200", "800", "0"),
    ("retiree", "outpatient-special", "8000", "1000000", "7200", "800", "0"),
    # special materials at or below 1,000 yuan: the row's ratio still applies (documented)
    ("employee", "special-materials-domestic", "1000", "1000000", "900", "100", "0"),
    ("employee", "special-materials-imported", "999.99", "1000000", "499.99", "500.00", "0"),
    # a balance too small for the personal part: the rest is out of pocket
    ("employee", "inpatient", "1000", "30", "900", "30", "70"),
    # a zero balance: the whole personal part is out of pocket
    ("employee", "inpatient", "1000", "0", "900", "0", "100"),
    ("retiree", "outpatient", "12000", "0", "1400", "0", "10600"),
    # a balance exactly equal to the personal part
    ("employee", "large-equipment", "100", "20", "80", "20", "0"),
    # a zero amount settles to zero everywhere
    ("employee", "inpatient", "0", "100", "0", "0", "0"),
]


@pytest.mark.parametrize("scheme, service, amount, balance, fund, account, pocket", TABLE)
def test_settlement_table(
    scheme: str,
    service: str,
    amount: str,
    balance: str,
    fund: str,
    account: str,
    pocket: str,
) -> None:
    got = settle(DEFAULT, REGION, scheme, service, y(amount), y(balance))
    assert got == Settlement(y(fund), y(account), y(pocket))


# Outpatient threshold edges, amounts in fen (threshold 1,000,000 fen).
OUTPATIENT_EDGES = [
    (0, 0),  # nothing claimed
    (THRESHOLD - 1, 0),  # one fen below: the person pays all
    (THRESHOLD, 0),  # exactly at the threshold: still nothing above it
    (THRESHOLD + 1, 0),  # 70% of 1 fen is 0.7 fen, rounded down
    (THRESHOLD + 2, 1),  # 1.4 fen -> 1
    (THRESHOLD + 10, 7),  # exactly 7 fen
    (THRESHOLD + 100, 70),
]


@pytest.mark.parametrize("amount, fund", OUTPATIENT_EDGES)
def test_outpatient_threshold_edges(amount: int, fund: int) -> None:
    got = settle(DEFAULT, REGION, "employee", "outpatient", amount, PLENTY)
    assert got == Settlement(fund, amount - fund, 0)


# Rounding: fund = floor(amount * ratio), the person pays the remainder.
ROUNDING = [
    ("employee", "inpatient", 1, 0),  # 0.9 fen -> 0
    ("employee", "inpatient", 11, 9),  # 9.9 fen -> 9
    ("retiree", "inpatient", 19, 18),  # 18.05 fen -> 18
    ("retiree", "inpatient", 20, 19),  # exact
    ("employee", "special-materials-imported", 3, 1),  # 1.5 fen -> 1
    ("employee", "large-equipment", 7, 5),  # 5.6 fen -> 5
]


@pytest.mark.parametrize("scheme, service, amount, fund", ROUNDING)
def test_fund_share_rounds_down_to_the_fen(
    scheme: str, service: str, amount: int, fund: int
) -> None:
    got = settle(DEFAULT, REGION, scheme, service, amount, PLENTY)
    assert got == Settlement(fund, amount - fund, 0)


@given(
    scheme=st.sampled_from(SCHEMES),
    service=st.sampled_from(SERVICES),
    amount=st.integers(min_value=0, max_value=MAX_FEN),
    balance=st.integers(min_value=0, max_value=MAX_FEN),
)
def test_split_always_adds_up(scheme: str, service: str, amount: int, balance: int) -> None:
    s = settle(DEFAULT, REGION, scheme, service, amount, balance)
    assert s.fund_fen + s.personal_account_fen + s.out_of_pocket_fen == amount
    assert min(s.fund_fen, s.personal_account_fen, s.out_of_pocket_fen) >= 0
    assert s.fund_fen * 100 <= amount * 95  # never more than the highest ratio
    assert s.personal_account_fen <= balance
    # Out of pocket only once the account is exhausted.
    assert s.out_of_pocket_fen == 0 or s.personal_account_fen == balance


def test_unknown_service() -> None:
    with pytest.raises(UnknownService, match="unknown service 'dental'"):
        settle(DEFAULT, REGION, "employee", "dental", 100, 100)
    assert issubclass(UnknownService, RecordError)


def test_unknown_scheme() -> None:
    with pytest.raises(RecordError, match="unknown scheme 'student'"):
        settle(DEFAULT, REGION, "student", "inpatient", 100, 100)
    with pytest.raises(RecordError, match="unknown scheme"):
        ratios(DEFAULT, REGION, "student")


@pytest.mark.parametrize(
    "amount, balance, name",
    [
        (-1, 0, "amount"),
        (1.5, 0, "amount"),
        (True, 0, "amount"),
        ("100", 0, "amount"),
        (MAX_FEN + 1, 0, "amount"),
        (100, -1, "balance"),
        (100, 2.0, "balance"),
        (100, None, "balance"),
    ],
)
def test_bad_amounts(amount: object, balance: object, name: str) -> None:
    with pytest.raises(RecordError, match=f"{name} must be an integer number of fen"):
        settle(DEFAULT, REGION, "employee", "inpatient", amount, balance)  # type: ignore[arg-type]


def test_ratios_default_employee() -> None:
    got = ratios(DEFAULT, REGION, "employee")
    assert got == {
        "inpatient": "90%",
        "outpatient": "70%",
        "large-equipment": "80%",
        "special-materials-domestic": "90%",
        "special-materials-imported": "50%",
        "outpatient-special": "90%",
    }
    assert list(got) == list(SERVICES)
    assert json.loads(json.dumps(got)) == got


def test_ratios_default_retiree() -> None:
    assert ratios(DEFAULT, REGION, "retiree")["inpatient"] == "95%"


@pytest.mark.parametrize(
    "bp, text",
    [(0, "0%"), (5, "0.05%"), (50, "0.5%"), (9000, "90%"), (9250, "92.5%"), (9225, "92.25%")]
    + [(10000, "100%")],
)
def test_format_percent(bp: int, text: str) -> None:
    assert format_percent(bp) == text


# --- policy files -----------------------------------------------------------------------------

OVERRIDES = {
    "default": {"average_salary": "120000", "inpatient": {"resident": 85}},
    "regions": {
        "110000": {"outpatient": 60},  # Beijing, province level
        "110100": {"outpatient": 65},  # Beijing city districts
        "110105": {"outpatient": 75, "outpatient_threshold_percent": "8.5"},  # Chaoyang
        "440300": {"inpatient": 92},  # Shenzhen: one ratio for every scheme
        "310000": {"inpatient": {"employee": "88.5"}},  # Shanghai: employee only
    },
}


def test_default_equals_empty_file() -> None:
    assert policy_from_mapping({}) == DEFAULT
    assert policy_from_mapping({"default": {}, "regions": {}}) == DEFAULT


def test_per_region_override() -> None:
    policy = policy_from_mapping(OVERRIDES)
    # Chaoyang: threshold 8.5% of 120,000 = 10,200 yuan, then 75% of the 1,800 above it.
    got = settle(policy, "110105", "employee", "outpatient", y("12000"), PLENTY)
    assert got == Settlement(y("1350"), y("10650"), 0)
    assert ratios(policy, "110105", "employee")["outpatient"] == "75%"
    # A region without its own section uses the file's default: threshold 12,000 yuan.
    got = settle(policy, "650102", "employee", "outpatient", y("12000"), PLENTY)
    assert got == Settlement(0, y("12000"), 0)


@pytest.mark.parametrize(
    "region, outpatient",
    [
        ("110105", "75%"),  # exact code
        ("110108", "65%"),  # no section: its city, 110100
        ("110100", "65%"),
        ("119999", "60%"),  # no city section either: the province, 110000
        ("120101", "70%"),  # nothing for Tianjin: the file's default
    ],
)
def test_region_lookup_falls_back_to_city_then_province(region: str, outpatient: str) -> None:
    policy = policy_from_mapping(OVERRIDES)
    assert ratios(policy, region, "employee")["outpatient"] == outpatient


@pytest.mark.parametrize(
    "region, scheme, inpatient",
    [
        ("650102", "employee", "90%"),  # built-in
        ("650102", "retiree", "95%"),  # built-in
        ("650102", "resident", "85%"),  # the file's default names resident
        ("650102", "flexible", "90%"),  # falls back to employee
        ("440305", "employee", "92%"),  # a plain percent sets every scheme
        ("440305", "retiree", "92%"),
        ("440305", "resident", "92%"),
        ("310115", "employee", "88.5%"),  # employee changed, decimal percent
        ("310115", "flexible", "88.5%"),  # follows employee
        ("310115", "resident", "85%"),  # explicitly set in the file's default
        ("310115", "retiree", "95%"),  # explicitly set in the built-in table
    ],
)
def test_scheme_ratios_merge(region: str, scheme: str, inpatient: str) -> None:
    policy = policy_from_mapping(OVERRIDES)
    assert ratios(policy, region, scheme)["inpatient"] == inpatient


def test_policy_is_immutable() -> None:
    rules = DEFAULT.for_region(REGION)
    with pytest.raises(TypeError):
        rules.ratios_bp["inpatient"]["employee"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        DEFAULT.regions["110105"] = rules  # type: ignore[index]


def test_load_json_and_toml(tmp_path: Path) -> None:
    j = tmp_path / "policy.json"
    j.write_text(json.dumps(OVERRIDES), encoding="utf-8")
    t = tmp_path / "policy.toml"
    t.write_text(
        """
[default]
average_salary = "120000"
inpatient = { resident = 85 }

[regions.110000]
outpatient = 60
[regions.110100]
outpatient = 65
[regions.110105]
outpatient = 75
outpatient_threshold_percent = "8.5"
[regions.440300]
inpatient = 92
[regions.310000]
inpatient = { employee = "88.5" }
""",
        encoding="utf-8",
    )
    assert load_policy(j) == load_policy(str(t)) == policy_from_mapping(OVERRIDES)


def test_salary_may_be_an_integer_in_toml(tmp_path: Path) -> None:
    t = tmp_path / "p.toml"
    t.write_text("[default]\naverage_salary = 50000\n", encoding="utf-8")
    assert load_policy(t).base.outpatient_threshold_fen == y("5000")


BAD_POLICIES = [
    ([], "benefit policy: must be a table"),
    ({"defaults": {}}, "unknown key 'defaults'"),
    ({"default": 5}, "default: must be a table"),
    ({"default": {"inpatent": 90}}, "unknown key 'default.inpatent'"),
    ({"regions": {"110105": {"dental": 50}}}, "unknown key 'regions.110105.dental'"),
    ({"regions": {"11010": {}}}, "regions.11010: a region code must be 6 digits"),
    ({"regions": {"11010a": {}}}, "regions.11010a: a region code must be 6 digits"),
    ({"regions": []}, "regions: must be a table"),
    ({"regions": {"110105": "x"}}, "regions.110105: must be a table"),
    ({"default": {"inpatient": {"student": 90}}}, "unknown key 'default.inpatient.student'"),
    ({"default": {"inpatient": 0.9}}, "default.inpatient: must be a percent .* not float"),
    ({"default": {"inpatient": True}}, "default.inpatient: must be a percent .* not bool"),
    ({"default": {"inpatient": 101}}, "default.inpatient: must be a percent from 0 to 100"),
    ({"default": {"inpatient": -1}}, "default.inpatient: must be a percent from 0 to 100"),
    ({"default": {"inpatient": "90%"}}, "default.inpatient: amount must be a plain decimal"),
    ({"default": {"inpatient": {"retiree": "100.01"}}}, "default.inpatient.retiree: must be"),
    ({"default": {"outpatient_threshold_percent": [10]}}, "outpatient_threshold_percent: must"),
    ({"default": {"average_salary": 1e5}}, "default.average_salary: must be an amount of yuan"),
    ({"default": {"average_salary": "-5"}}, "default.average_salary: amount must be a plain"),
    ({"regions": {"110105": {"average_salary": "1e5"}}}, "regions.110105.average_salary: "),
]


@pytest.mark.parametrize("data, message", BAD_POLICIES)
def test_bad_policy_names_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        policy_from_mapping(data)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("p.json", "{", "cannot read benefit policy"),
        ("p.json", '{"default": {}, "default": {}}', "key 'default' appears twice"),
        ("p.json", b"\xff", "cannot read benefit policy"),
        ("p.toml", "[default\n", "cannot read benefit policy"),
        ("p.toml", b"\xff", "cannot read benefit policy"),
        ("p.json", '{"default": {"inpatient": 0.9}}', "default.inpatient: must be a percent"),
        ("p.toml", "[regions.110105]\nfoo = 1\n", "unknown key 'regions.110105.foo'"),
        ("p.yaml", "default: {}", "must end in .json or .toml"),
    ],
)
def test_bad_policy_file(tmp_path: Path, name: str, content: str | bytes, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read benefit policy"):
        load_policy(tmp_path / "absent.json")
