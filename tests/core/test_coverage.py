"""The coverage decision and the JSON views of a holder."""

from __future__ import annotations

import json

import pytest

from verifier.benefits import BenefitPolicy
from verifier.benefits_file import policy_from_mapping
from verifier.coverage import decide
from verifier.errors import (
    COVERAGE_SUSPENDED,
    COVERAGE_TERMINATED,
    NOT_ENROLLED,
    OK,
    PHYSICAL_CARD_INACTIVE,
    SERVICE_REASONS,
)
from verifier.records import CARD_TYPES, HOLDER_STATUSES, PHYSICAL_CARD_STATES, Holder
from verifier.service.views import coverage_view, holder_view

ACTIVE = Holder(
    sub="h1", status="active", scheme="employee", region="110105", physical_card="active"
)

DECISIONS = [
    # no holder record at all
    ("mi-voucher", None, NOT_ENROLLED),
    ("ss-ecard", None, NOT_ENROLLED),
    # enrolled and active
    ("mi-voucher", ACTIVE, OK),
    ("ss-ecard", ACTIVE, OK),
    # the voucher needs no physical card
    ("mi-voucher", ACTIVE._replace(physical_card="lost"), OK),
    ("mi-voucher", ACTIVE._replace(physical_card="cancelled"), OK),
    ("mi-voucher", ACTIVE._replace(physical_card="none"), OK),
    # the e-card stands on an active physical card
    ("ss-ecard", ACTIVE._replace(physical_card="lost"), PHYSICAL_CARD_INACTIVE),
    ("ss-ecard", ACTIVE._replace(physical_card="cancelled"), PHYSICAL_CARD_INACTIVE),
    ("ss-ecard", ACTIVE._replace(physical_card="none"), PHYSICAL_CARD_INACTIVE),
    # coverage suspended (contributions unpaid), for either card
    ("mi-voucher", ACTIVE._replace(status="suspended"), COVERAGE_SUSPENDED),
    ("ss-ecard", ACTIVE._replace(status="suspended"), COVERAGE_SUSPENDED),
    # coverage terminated (left the scheme), for either card
    ("mi-voucher", ACTIVE._replace(status="terminated"), COVERAGE_TERMINATED),
    ("ss-ecard", ACTIVE._replace(status="terminated"), COVERAGE_TERMINATED),
    # precedence: coverage before the physical card
    ("ss-ecard", ACTIVE._replace(status="terminated", physical_card="lost"), COVERAGE_TERMINATED),
    ("ss-ecard", ACTIVE._replace(status="suspended", physical_card="none"), COVERAGE_SUSPENDED),
    # a corrupt status fails closed, as terminated
    ("mi-voucher", ACTIVE._replace(status="Active"), COVERAGE_TERMINATED),
    ("ss-ecard", ACTIVE._replace(status=""), COVERAGE_TERMINATED),
    # a corrupt physical card state fails closed for the e-card
    ("ss-ecard", ACTIVE._replace(physical_card="ACTIVE"), PHYSICAL_CARD_INACTIVE),
]


@pytest.mark.parametrize("card_type, holder, reason", DECISIONS)
def test_decide(card_type: str, holder: Holder | None, reason: str) -> None:
    assert decide(card_type, holder) == reason


def test_decide_covers_every_combination() -> None:
    # Every (card, status, physical card) combination gives a service reason code.
    for card in CARD_TYPES:
        for status in HOLDER_STATUSES:
            for physical in PHYSICAL_CARD_STATES:
                holder = ACTIVE._replace(status=status, physical_card=physical)
                assert decide(card, holder) in SERVICE_REASONS


@pytest.mark.parametrize("card_type", ["", "ss-card", "MI-VOUCHER"])
def test_decide_rejects_unknown_card_type(card_type: str) -> None:
    with pytest.raises(ValueError, match="unknown card type"):
        decide(card_type, ACTIVE)


@pytest.mark.parametrize(
    "holder, expected",
    [
        # an employee with a balance
        (
            ACTIVE._replace(balance_fen=12345),
            {
                "status": "active",
                "scheme": "employee",
                "region": "110105",
                "account_balance": "123.45",
                "benefit_ratios": {
                    "inpatient": "90%",
                    "outpatient": "70%",
                    "large-equipment": "80%",
                    "special-materials-domestic": "90%",
                    "special-materials-imported": "50%",
                    "outpatient-special": "90%",
                },
            },
        ),
        # a suspended retiree with an empty account
        (
            ACTIVE._replace(status="suspended", scheme="retiree", region="440305"),
            {
                "status": "suspended",
                "scheme": "retiree",
                "region": "440305",
                "account_balance": "0.00",
                "benefit_ratios": {
                    "inpatient": "95%",
                    "outpatient": "70%",
                    "large-equipment": "80%",
                    "special-materials-domestic": "90%",
                    "special-materials-imported": "50%",
                    "outpatient-special": "90%",
                },
            },
        ),
    ],
)
def test_coverage_view(holder: Holder, expected: dict[str, object]) -> None:
    got = coverage_view(holder, BenefitPolicy.default())
    assert got == expected
    assert json.loads(json.dumps(got)) == got


def test_coverage_view_uses_the_holders_region() -> None:
    policy = policy_from_mapping({"regions": {"440300": {"inpatient": 92}}})
    shenzhen = ACTIVE._replace(scheme="retiree", region="440305")
    assert coverage_view(shenzhen, policy)["benefit_ratios"]["inpatient"] == "92%"
    assert (
        coverage_view(shenzhen._replace(region="110105"), policy)["benefit_ratios"]["inpatient"]
        == "95%"
    )


@pytest.mark.parametrize(
    "holder, expected",
    [
        # identity on record, masked
        (
            ACTIVE._replace(name_masked="张*明", id_masked="1101**********002X"),
            {"id": "h1", "name": "张*明", "id_number": "1101**********002X"},
        ),
        # nothing on record
        (ACTIVE, {"id": "h1", "name": None, "id_number": None}),
    ],
)
def test_holder_view(holder: Holder, expected: dict[str, object]) -> None:
    assert holder_view(holder) == expected
