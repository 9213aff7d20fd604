"""The canonical-payload fast path in core.verify must agree with the strict JSON path.

Every payload is verified twice: once as is, once with the fast path switched off (a pattern
that never matches), and the outcomes (claims or reason) must be identical.
"""

from __future__ import annotations

import re

import orjson
import pytest
from helpers_core import NHSA, NOW, POLICY, TRUST, make_token
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import core, rfc3339
from verifier.errors import TokenError

_NEVER = re.compile(r"(?!)")


def outcome(token: str) -> object:
    try:
        return core.verify(token, TRUST, POLICY, NOW)
    except TokenError as err:
        return err.reason


def both(token: str, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    fast = outcome(token)
    with monkeypatch.context() as m:
        m.setattr(core, "_CANONICAL", _NEVER)
        slow = outcome(token)
    return fast, slow


def canonical(**claims: object) -> bytes:
    base: dict[str, object] = {
        "iss": "nhsa",
        "sub": "holder-1",
        "jti": "A" * 22,
        "iat": rfc3339.format(NOW - 10),
        "exp": rfc3339.format(NOW + 50),
        "card": "mi-voucher",
        "region": "110101",
    }
    base.update(claims)
    return orjson.dumps({k: v for k, v in base.items() if v is not None})


def test_the_fast_path_is_taken_for_minted_tokens() -> None:
    payload = canonical()
    assert core._CANONICAL.fullmatch(payload.decode()) is not None


@pytest.mark.parametrize(
    "claims",
    [
        {},  # the canonical token: ok
        {"iss": "mohrss"},  # wrong issuer for the key
        {"card": "ss-ecard"},  # card the key may not sign
        {"iat": rfc3339.format(NOW + 60), "exp": rfc3339.format(NOW + 120)},  # future
        {"exp": rfc3339.format(NOW - 40)},  # expired
        {"exp": rfc3339.format(NOW + 400)},  # lifetime too long
        {"exp": "2026-13-01T00:00:00Z"},  # month 13: shape matches, date does not
        {"iat": "2026-01-01T00:00:00+24:00"},  # offset out of range
        {"nbf": rfc3339.format(NOW + 30)},  # not yet valid
        {"nbf": rfc3339.format(NOW - 30)},  # nbf in the past
        {"sub": "x" * 65},  # sub too long: no fast match, strict path decides
        {"jti": "short"},
        {"region": "11010"},
    ],
)
def test_fast_and_strict_paths_agree(
    claims: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = make_token(payload=canonical(**claims))
    fast, slow = both(token, monkeypatch)
    assert fast == slow


_ident = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
    min_size=1,
    max_size=70,
)


@settings(max_examples=150, deadline=None)
@given(
    iss=st.sampled_from(["nhsa", "mohrss", "NHSA", "nh sa", "n\u00e9"]),
    sub=_ident,
    jti=_ident,
    region=st.text(alphabet="0123456789a", min_size=5, max_size=7),
    dt_iat=st.integers(-400, 100),
    life=st.integers(-5, 400),
    frac=st.sampled_from(["", ".5", ".123456789"]),
    zone=st.sampled_from(["Z", "+00:00", "+08:00", "-05:30"]),
)
def test_fast_and_strict_paths_agree_on_random_claims(
    iss: str, sub: str, jti: str, region: str, dt_iat: int, life: int, frac: str, zone: str
) -> None:
    def stamp(t: float) -> str:
        text = rfc3339.format(t)  # ...+00:00
        return (
            text[:-6] + frac + zone
            if zone == "Z" or zone == "+00:00"
            else text[:-6] + frac + "+00:00"
        )

    payload = canonical(
        iss=iss,
        sub=sub,
        jti=jti,
        region=region,
        iat=stamp(NOW + dt_iat),
        exp=stamp(NOW + dt_iat + life),
    )
    token = make_token(payload=payload)
    fast = outcome(token)
    saved = core._CANONICAL
    core._CANONICAL = _NEVER
    try:
        slow = outcome(token)
    finally:
        core._CANONICAL = saved
    assert fast == slow


def test_non_ascii_payload_never_takes_the_fast_path() -> None:
    payload = canonical(sub="h\u00e9")
    assert core._CANONICAL.fullmatch(payload.decode("latin-1")) is None
    assert NHSA is not None
