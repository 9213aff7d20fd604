"""Benefit policy (what share of a claim the fund pays) and the settlement split.

The built-in policy is the table in DOMAIN.md (seed 004):

    service                       fund pays
    inpatient                     employee 90%, retiree 95% (resident, flexible: as employee)
    outpatient                    70% of the part above the threshold (see below)
    large-equipment               80%
    special-materials-domestic    90%
    special-materials-imported    50%
    outpatient-special            90%  (dialysis, anti-rejection drugs, cancer therapy)

Choices made here, each an assumption to revisit with the insurer:

* Ratios are integer basis points (9000 = 90%), never floats.
* Rounding: ``fund = floor(base * ratio)``, to the fen. The fund never pays more than its
  ratio; the insured pays at most 1 fen more than the exact share. Then
  ``personal = amount - fund``, so the parts always add up to the amount exactly.
* Outpatient threshold: 10% of last year's average urban salary, default 100,000 yuan, so
  10,000 yuan (both configurable). Simplified model: the threshold applies **per claim**, so
  ``fund = 70% of max(0, amount - threshold)``; below it the person pays everything (from
  the personal account first). The real rule counts the year's outpatient spending, which a
  single verification call does not know.
* Special materials: the 90%/50% rows name items over 1,000 yuan. Whether an item qualifies
  is decided (and approved) before the claim is sent, so the row's ratio applies to any
  amount sent under that service, 1,000 yuan or less included. Paying nothing instead would
  charge the insured in full for items that are still covered.
* Resident and flexible-employment schemes use the employee ratio unless a ratio is
  configured for them: a per-scheme table falls back to its ``employee`` entry.

Settlement (seed 003): the fund's share is settled at once, the rest is taken from the
personal account balance, and what the balance cannot cover is paid out of pocket.

Policy files (JSON or TOML) are read by :mod:`verifier.benefits_file`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from verifier.errors import RecordError
from verifier.money import MAX_FEN
from verifier.records import SCHEMES

SERVICES = (
    "inpatient",
    "outpatient",
    "large-equipment",
    "special-materials-domestic",
    "special-materials-imported",
    "outpatient-special",
)
BASIS_POINTS = 10_000  # 100%


class UnknownService(RecordError):
    """The claim names a service that is not one of SERVICES."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a claim is paid, in fen. The three parts add up to the claimed amount."""

    fund_fen: int  # paid by the medical insurance fund at once
    personal_account_fen: int  # taken from the personal account balance
    out_of_pocket_fen: int  # what the balance could not cover


@dataclass(frozen=True, slots=True)
class RegionPolicy:
    """The benefit rules of one region."""

    ratios_bp: Mapping[str, Mapping[str, int]]  # service -> scheme -> basis points
    average_salary_fen: int  # last year's average urban salary
    outpatient_threshold_bp: int  # share of that salary a claim must exceed

    @property
    def outpatient_threshold_fen(self) -> int:
        """The outpatient threshold, rounded down to the fen (never against the insured)."""
        return self.average_salary_fen * self.outpatient_threshold_bp // BASIS_POINTS

    def ratio_bp(self, service: str, scheme: str) -> int:
        """The fund's ratio for ``service`` under ``scheme``, in basis points."""
        by_scheme = self.ratios_bp[service]
        return by_scheme.get(scheme, by_scheme["employee"])


BUILTIN = RegionPolicy(
    ratios_bp=MappingProxyType(
        {
            "inpatient": MappingProxyType({"employee": 9000, "retiree": 9500}),
            "outpatient": MappingProxyType({"employee": 7000}),
            "large-equipment": MappingProxyType({"employee": 8000}),
            "special-materials-domestic": MappingProxyType({"employee": 9000}),
            "special-materials-imported": MappingProxyType({"employee": 5000}),
            "outpatient-special": MappingProxyType({"employee": 9000}),
        }
    ),
    average_salary_fen=100_000 * 100,  # assumption: 100,000 yuan
    outpatient_threshold_bp=1000,  # 10% of it
)


@dataclass(frozen=True, slots=True)
class BenefitPolicy:
    """A base policy and per-region overrides (keyed by 6-digit region code)."""

    base: RegionPolicy
    regions: Mapping[str, RegionPolicy]

    @classmethod
    def default(cls) -> BenefitPolicy:
        """The DOMAIN.md table for every region."""
        return cls(base=BUILTIN, regions=MappingProxyType({}))

    def for_region(self, region: str) -> RegionPolicy:
        """The policy of ``region``: exact code, then prefecture, then province, then base."""
        for code in (region, region[:4] + "00", region[:2] + "0000"):
            found = self.regions.get(code)
            if found is not None:
                return found
        return self.base


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise RecordError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def _check_fen(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_FEN:
        raise RecordError(f"{name} must be an integer number of fen from 0 to {MAX_FEN}")


def fund_share(rules: RegionPolicy, scheme: str, service: str, amount_fen: int) -> int:
    """The fund's part of a claim of ``amount_fen`` (rounded down to the fen)."""
    if service not in SERVICES:
        raise UnknownService(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    _check_scheme(scheme)
    _check_fen(amount_fen, "amount")
    base = amount_fen
    if service == "outpatient":
        base = max(0, amount_fen - rules.outpatient_threshold_fen)
    return base * rules.ratio_bp(service, scheme) // BASIS_POINTS


def settle(
    policy: BenefitPolicy, region: str, scheme: str, service: str, amount_fen: int, balance_fen: int
) -> Settlement:
    """Split a claim into fund, personal account and out-of-pocket parts (all in fen).

    Raises UnknownService for an unknown service and RecordError for an unknown scheme or an
    amount or balance that is not an integer from 0 to MAX_FEN.
    """
    fund = fund_share(policy.for_region(region), scheme, service, amount_fen)
    _check_fen(balance_fen, "balance")
    personal = amount_fen - fund
    from_account = min(personal, balance_fen)
    return Settlement(fund, from_account, personal - from_account)


def format_percent(bp: int) -> str:
    """Basis points as a percent string: 9000 -> "90%", 9250 -> "92.5%", 5 -> "0.05%"."""
    whole, frac = divmod(bp, 100)
    if frac == 0:
        return f"{whole}%"
    return f"{whole}.{frac:02d}".rstrip("0") + "%"


def ratios(policy: BenefitPolicy, region: str, scheme: str) -> dict[str, str]:
    """The fund's ratio per service for a holder, JSON-ready: ``{"inpatient": "90%", ...}``.

    Keys are all of SERVICES, in that order; values are percent strings as written by
    :func:`format_percent`. The outpatient ratio applies above the outpatient threshold.
    """
    _check_scheme(scheme)
    rules = policy.for_region(region)
    return {svc: format_percent(rules.ratio_bp(svc, scheme)) for svc in SERVICES}
