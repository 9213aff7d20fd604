"""Time boundaries, one row per edge, with the policy defaults exp_leeway=30, future_leeway=5,
max_lifetime=300. The documented rules (``verifier.core``):

    expired            iff now >= exp + exp_leeway
    issued_in_future   iff iat > now + future_leeway
    not_yet_valid      iff nbf > now + future_leeway
    lifetime_too_long  iff exp - iat > max_lifetime   (exp <= iat is invalid_claims)

Timestamps are whole seconds unless a row says otherwise; ``T`` is a fixed instant.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers_core import NOW, make_token, reason

from verifier import b64url, rfc3339
from verifier import errors as E
from verifier.errors import ConfigError
from verifier.policy import MAX_EXP_LEEWAY, MAX_FUTURE_LEEWAY, MAX_LIFETIME_CAP, ClaimPolicy

T = NOW


def at(offset: float) -> str:
    """RFC 3339 text for T + offset, keeping a fractional part if there is one."""
    whole = int(offset // 1)
    text = rfc3339.format(T + whole)
    frac = round(offset - whole, 6)
    if frac:
        text = text.replace("+00:00", f"{frac:.6f}"[1:] + "Z")
    assert rfc3339.parse(text) == pytest.approx(T + offset, abs=1e-6)
    return text


def test_at_helper() -> None:
    assert at(0) == "2026-11-22T14:00:00+00:00"
    assert at(1.5) == "2026-11-22T14:00:01.500000Z"
    assert at(-0.25) == "2026-11-22T13:59:59.750000Z"


EXP = 60  # exp = T + 60, iat = T

EXPIRY = [
    # (now - T, expected)
    (EXP - 1, "ok"),  # a second before exp
    (EXP, "ok"),  # exactly at exp: still inside the leeway
    (EXP + 1, "ok"),  # just past exp
    (EXP + 29, "ok"),  # exp + leeway - 1: last whole second accepted
    (EXP + 29.5, "ok"),  # half a second before the edge
    (EXP + 29.999999, "ok"),  # a microsecond before the edge
    (EXP + 30, E.EXPIRED),  # exactly exp + leeway: expired (now >= exp + exp_leeway)
    (EXP + 30.000001, E.EXPIRED),  # a microsecond after the edge
    (EXP + 31, E.EXPIRED),  # a second after the edge
    (EXP + 3600, E.EXPIRED),  # an hour late
]


@pytest.mark.parametrize(("now", "expected"), EXPIRY)
def test_expiry_edges(now: float, expected: str) -> None:
    assert reason(make_token(iat=at(0), exp=at(EXP)), now=T + now) == expected


FRACTIONAL_EXPIRY = [
    # (exp - T, now - T, expected) with fractional exp
    (60.5, 90.499999, "ok"),  # a microsecond before exp + leeway
    (60.5, 90.5, E.EXPIRED),  # exactly exp + leeway
    (60.25, 90.0, "ok"),  # whole-second now before a fractional edge
    (60.25, 91.0, E.EXPIRED),  # whole-second now after it
]


@pytest.mark.parametrize(("exp", "now", "expected"), FRACTIONAL_EXPIRY)
def test_fractional_expiry_edges(exp: float, now: float, expected: str) -> None:
    assert reason(make_token(iat=at(0), exp=at(exp)), now=T + now) == expected


ISSUED = [
    # (iat - now, exp - now, expected)
    (-300, 0, "ok"),  # issued five minutes ago, 5-minute lifetime, at exp: inside the leeway
    (0, 60, "ok"),  # issued now
    (4, 64, "ok"),
    (5, 65, "ok"),  # iat = now + future_leeway: accepted
    (5.000001, 65, E.ISSUED_IN_FUTURE),  # a microsecond past the leeway
    (5.5, 65, E.ISSUED_IN_FUTURE),
    (6, 66, E.ISSUED_IN_FUTURE),  # now + future_leeway + 1
    (3600, 3660, E.ISSUED_IN_FUTURE),  # an hour ahead
]


@pytest.mark.parametrize(("iat", "exp", "expected"), ISSUED)
def test_issued_at_edges(iat: float, exp: float, expected: str) -> None:
    assert reason(make_token(iat=at(iat), exp=at(exp)), now=T) == expected


NOT_BEFORE = [
    # (nbf - now, expected); iat = now, exp = now + 60
    (-3600, "ok"),  # long before
    (0, "ok"),  # nbf == now
    (5, "ok"),  # now + future_leeway: accepted
    (5.000001, E.NOT_YET_VALID),  # a microsecond past the leeway
    (6, E.NOT_YET_VALID),  # now + future_leeway + 1
    (61, E.NOT_YET_VALID),  # after exp (never valid)
]


@pytest.mark.parametrize(("nbf", "expected"), NOT_BEFORE)
def test_not_before_edges(nbf: float, expected: str) -> None:
    assert reason(make_token(iat=at(0), exp=at(60), nbf=at(nbf)), now=T) == expected


LIFETIME = [
    # (iat - T, exp - T, expected); now = T + 1
    (0, 300, "ok"),  # exactly max_lifetime
    (0, 301, E.LIFETIME_TOO_LONG),  # one second over
    (0, 300.000001, E.LIFETIME_TOO_LONG),  # a microsecond over
    (0, 299.999999, "ok"),
    (0.5, 300.5, "ok"),  # exactly max_lifetime, both fractional
    (0.999999, 300.999999, "ok"),
    (0.5, 300.500001, E.LIFETIME_TOO_LONG),
    (0, 1, "ok"),  # one second
    (0, 0.000001, "ok"),  # a microsecond
    (0, 0, E.INVALID_CLAIMS),  # exp == iat
    (0.5, 0.5, E.INVALID_CLAIMS),  # exp == iat, fractional
    (0, -1, E.INVALID_CLAIMS),  # exp before iat
    (0, 3600, E.LIFETIME_TOO_LONG),  # an hour
]


@pytest.mark.parametrize(("iat", "exp", "expected"), LIFETIME)
def test_lifetime_edges(iat: float, exp: float, expected: str) -> None:
    assert reason(make_token(iat=at(iat), exp=at(exp)), now=T + 1) == expected


def test_equivalent_offsets_are_the_same_instant() -> None:
    # exp written in Beijing time: 22:01:00+08:00 == 14:01:00Z
    token = make_token(iat="2026-11-22T14:00:00Z", exp="2026-11-22T22:01:00+08:00")
    assert reason(token, now=T + 60 + 29) == "ok"
    assert reason(token, now=T + 60 + 30) == E.EXPIRED


POLICIES: list[tuple[dict[str, Any], int, str]] = [
    # (policy, now - T for a token iat=T exp=T+60, expected)
    ({"exp_leeway": 0}, 59, "ok"),
    ({"exp_leeway": 0}, 60, E.EXPIRED),  # no leeway: expired at exp
    ({"exp_leeway": 300}, 359, "ok"),  # the largest leeway
    ({"exp_leeway": 300}, 360, E.EXPIRED),
    ({"future_leeway": 0}, 0, "ok"),
    ({"future_leeway": 0}, -1, E.ISSUED_IN_FUTURE),  # no future leeway: iat one second ahead
    ({"future_leeway": 60}, -60, "ok"),
    ({"future_leeway": 60}, -61, E.ISSUED_IN_FUTURE),
    ({"max_lifetime": 60}, 0, "ok"),  # lifetime exactly 60
    ({"max_lifetime": 59}, 0, E.LIFETIME_TOO_LONG),
]


@pytest.mark.parametrize(("settings", "now", "expected"), POLICIES)
def test_policy_changes_the_edges(settings: dict[str, Any], now: int, expected: str) -> None:
    policy = ClaimPolicy(**settings)
    assert reason(make_token(iat=at(0), exp=at(60)), now=T + now, policy=policy) == expected


BAD_POLICIES: list[tuple[str, Any]] = [
    ("exp_leeway", MAX_EXP_LEEWAY + 1),  # 301: a stolen code would live too long
    ("exp_leeway", -1),
    ("future_leeway", MAX_FUTURE_LEEWAY + 1),  # 61
    ("future_leeway", -1),
    ("max_lifetime", MAX_LIFETIME_CAP + 1),  # 3601
    ("max_lifetime", 0),
    ("max_token_bytes", 63),
    ("max_token_bytes", 16385),
    ("max_footer_bytes", 15),
    ("max_footer_bytes", 4097),
    ("max_json_depth", 0),
    ("max_json_depth", 33),
    ("max_json_keys", 0),
    ("max_json_keys", 1025),
    ("exp_leeway", True),  # bool is not an int here
    ("exp_leeway", 30.0),  # nor is a float
    ("exp_leeway", "30"),
    ("max_lifetime", None),
    ("implicit_assertion", "text"),  # must be bytes
    ("implicit_assertion", None),
]


@pytest.mark.parametrize(("name", "value"), BAD_POLICIES)
def test_policy_out_of_range_is_config_error_naming_the_setting(name: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"policy.{name}"):
        ClaimPolicy(**{name: value})


GOOD_POLICIES: list[tuple[str, int]] = [
    ("exp_leeway", MAX_EXP_LEEWAY),
    ("exp_leeway", 0),
    ("future_leeway", MAX_FUTURE_LEEWAY),
    ("max_lifetime", MAX_LIFETIME_CAP),
    ("max_lifetime", 1),
    ("max_token_bytes", 64),
    ("max_token_bytes", 16384),
    ("max_footer_bytes", 16),
    ("max_json_depth", 1),
    ("max_json_keys", 1024),
]


@pytest.mark.parametrize(("name", "value"), GOOD_POLICIES)
def test_policy_at_its_caps_is_accepted(name: str, value: int) -> None:
    settings: dict[str, Any] = {name: value}
    assert getattr(ClaimPolicy(**settings), name) == value


def test_policy_defaults_are_the_product_specification() -> None:
    p = ClaimPolicy()
    assert (p.exp_leeway, p.future_leeway, p.max_lifetime) == (30, 5, 300)
    assert (p.max_token_bytes, p.max_footer_bytes) == (4096, 512)


@pytest.mark.parametrize("size", [16, 17, 18, 19, 512, 513, 4096])
def test_max_footer_b64_is_the_longest_encoding_of_max_footer_bytes(size: int) -> None:
    policy = ClaimPolicy(max_footer_bytes=size)
    assert policy.max_footer_b64 == len(b64url.encode(b"x" * size))
    assert len(b64url.encode(b"x" * (size + 1))) > policy.max_footer_b64
