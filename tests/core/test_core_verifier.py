"""``core.TokenVerifier``: built once per trust list and policy, then called for every token.

Its verdicts are those of ``core.verify``; what it remembers between calls lives in the object
(never in the module), so two verifiers never share state, and a reloaded trust list is picked
up by building a new verifier.
"""

from __future__ import annotations

import re

import orjson
import pytest
from helpers_core import (
    ENTRIES,
    MOHRSS,
    NHSA,
    NOW,
    POLICY,
    REVOKED,
    ROOT,
    STRANGER,
    TRUST,
    issuer_keys,
    key_entry,
    make_token,
    signed_trust_list,
)

from verifier import core, paseto, rfc3339, trust
from verifier import errors as E
from verifier.errors import TokenError
from verifier.policy import ClaimPolicy
from verifier.records import CARD_TYPES


def outcome(verifier: core.TokenVerifier, token: str | bytes, now: float = NOW) -> object:
    try:
        return verifier.verify(token, now)
    except TokenError as err:
        return err.reason


def module_outcome(token: str | bytes, trust_list: trust.TrustList, now: float = NOW) -> object:
    try:
        return core.verify(token, trust_list, POLICY, now)
    except TokenError as err:
        return err.reason


def test_the_verifier_keeps_the_trust_list_and_policy_it_was_built_with() -> None:
    verifier = core.TokenVerifier(TRUST, POLICY)
    assert verifier.trust is TRUST
    assert verifier.policy is POLICY
    with pytest.raises(AttributeError):
        verifier.trust = TRUST  # type: ignore[misc]
    with pytest.raises(AttributeError):
        verifier.policy = POLICY  # type: ignore[misc]


def test_built_once_it_verifies_many_tokens() -> None:
    verifier = core.TokenVerifier(TRUST, POLICY)
    tokens = [
        make_token(sub=f"holder-{n:04d}", jti=f"jti-{n:016d}", iat=rfc3339.format(NOW - n))
        for n in range(40)
    ] + [make_token(signer=MOHRSS, iss="mohrss", card="ss-ecard", sub=f"h{n}") for n in range(5)]
    for token in tokens * 2:  # the second round hits the remembered footers
        got = verifier.verify(token, NOW)
        assert got == core.verify(token, TRUST, POLICY, NOW)
    assert [verifier.verify(t, NOW).sub for t in tokens[:3]] == [
        "holder-0000",
        "holder-0001",
        "holder-0002",
    ]


BAD_TOKENS = {
    "garbage": "garbage",
    "other version": "v2.public." + make_token()[10:],
    "no footer": paseto.sign(NHSA.secret, orjson.dumps({"iss": "nhsa"})),
    "unknown key": make_token(signer=STRANGER),
    "revoked key": make_token(signer=REVOKED),
    "forged": make_token(signer=STRANGER, footer=orjson.dumps({"kid": NHSA.kid})),
    "bad claim": make_token(region="1"),
    "wrong card": make_token(card="ss-ecard"),
    "not canonical": make_token(payload=b' {"iss": "nhsa"} '),
    "lifetime": make_token(exp=rfc3339.format(NOW + 301)),
}


@pytest.mark.parametrize("now", [NOW, NOW + 45, NOW + 90], ids=["now", "in leeway", "expired"])
@pytest.mark.parametrize("name", sorted(BAD_TOKENS) + ["valid"])
def test_the_verifier_and_the_module_function_agree(name: str, now: float) -> None:
    token = BAD_TOKENS.get(name) or make_token()
    verifier = core.TokenVerifier(TRUST, POLICY)
    assert outcome(verifier, token, now) == module_outcome(token, TRUST, now)
    assert outcome(verifier, token.encode(), now) == module_outcome(token.encode(), TRUST, now)


_CLAIMS = core.VerifiedToken(
    NHSA.kid, "nhsa", "h-1", "j" * 16, "mi-voucher", "110105", NOW, NOW + 60, None
)


@pytest.mark.parametrize(
    ("changes", "now", "expected"),
    [
        ({}, NOW, None),  # a valid token
        ({"iss": "mohrss"}, NOW, E.CARD_NOT_ALLOWED),  # iss other than the key's issuer
        ({"card": "ss-ecard"}, NOW, E.CARD_NOT_ALLOWED),  # a card the key may not sign
        ({"exp": NOW}, NOW, E.INVALID_CLAIMS),  # exp == iat
        ({"exp": NOW + 300}, NOW, None),  # lifetime exactly max_lifetime
        ({"exp": NOW + 300.000001}, NOW, E.LIFETIME_TOO_LONG),  # one microsecond longer
        ({}, NOW - 5, None),  # iat exactly at the future leeway
        ({}, NOW - 5.5, E.ISSUED_IN_FUTURE),  # iat half a second beyond it
        ({"nbf": NOW + 5}, NOW, None),  # nbf exactly at the future leeway
        ({"nbf": NOW + 6}, NOW, E.NOT_YET_VALID),  # nbf one second beyond it
        ({}, NOW + 89.5, None),  # half a second before exp + exp_leeway
        ({}, NOW + 90, E.EXPIRED),  # exactly exp + exp_leeway
        ({"iss": "mohrss"}, NOW + 90, E.CARD_NOT_ALLOWED),  # two rules broken: the first wins
        ({"exp": NOW - 1}, NOW + 400, E.INVALID_CLAIMS),  # exp before iat, and long expired
    ],
)
def test_each_claim_rule_gives_its_reason(
    changes: dict[str, object], now: float, expected: str | None
) -> None:
    t = _CLAIMS._replace(**changes)
    key = TRUST.keys[NHSA.kid]
    broken = core.broken_claim_rule(t, key, POLICY, now)
    assert (broken and broken[0]) == expected
    if broken is not None:
        assert broken[0] in E.TOKEN_REASONS
        assert broken[1].format(t=t, key=key)  # the detail formats with the claims and key


def test_caches_live_in_each_verifier_not_in_the_module() -> None:
    first = core.TokenVerifier(TRUST, POLICY)
    second = core.TokenVerifier(TRUST, POLICY)
    first.verify(make_token(), NOW)
    assert first._footers and not second._footers
    # Nothing mutable at module level but the last verifier core.verify built.
    mutable = [
        name
        for name, value in vars(core).items()
        if not name.startswith("__") and isinstance(value, (dict, list, set, bytearray))
    ]
    assert mutable == []


def test_the_footer_cache_never_outlives_the_policy_it_was_filled_under() -> None:
    # A footer longer than the default limit, accepted by a lenient verifier first.
    footer = orjson.dumps({"kid": NHSA.kid}) + b"\t" * 600
    token = make_token(footer=footer)
    lenient = core.TokenVerifier(TRUST, ClaimPolicy(max_footer_bytes=1024))
    strict = core.TokenVerifier(TRUST, POLICY)
    assert isinstance(outcome(lenient, token), core.VerifiedToken)
    assert outcome(strict, token) == E.MALFORMED
    assert isinstance(outcome(lenient, token), core.VerifiedToken)


def test_the_footer_cache_is_bounded() -> None:
    verifier = core.TokenVerifier(TRUST, POLICY)
    kid = orjson.dumps({"kid": NHSA.kid})
    spellings = {b" " * a + kid + b"\n" * b for a in range(40) for b in range(30)}
    payload = orjson.dumps({"iss": "nhsa"})  # invalid claims: only the footer matters here
    for footer in spellings:
        assert outcome(verifier, make_token(payload=payload, footer=footer)) == E.INVALID_CLAIMS
    assert 0 < len(verifier._footers) <= 1024 < len(spellings)


def _reloaded(entries: list[dict[str, object]], version: int) -> trust.TrustList:
    return trust.load(
        signed_trust_list(issuer_keys(entries), version=version), ROOT.public, NOW, TRUST
    )


def test_a_reloaded_trust_list_takes_a_new_verifier() -> None:
    # Version 2 revokes NHSA and trusts STRANGER: the verifier built on version 1 keeps
    # answering by version 1; the one built on version 2 answers by version 2.
    entries = [e for e in ENTRIES if e["issuer"] != "nhsa"] + [
        key_entry(NHSA, "nhsa", ["mi-voucher"], state="revoked"),
        key_entry(STRANGER, "nhsa", ["mi-voucher"]),
    ]
    reloaded = _reloaded(entries, version=2)
    old, new = core.TokenVerifier(TRUST, POLICY), core.TokenVerifier(reloaded, POLICY)
    nhsa, stranger = make_token(), make_token(signer=STRANGER)
    assert old.verify(nhsa, NOW).kid == NHSA.kid
    assert outcome(old, stranger) == E.UNKNOWN_KEY
    assert outcome(new, nhsa) == E.KEY_REVOKED
    assert new.verify(stranger, NOW).kid == STRANGER.kid


def test_the_module_function_follows_the_trust_list_it_is_given() -> None:
    entries = [e for e in ENTRIES if e["issuer"] != "nhsa"]
    without_nhsa = _reloaded(entries, version=3)
    token = make_token()
    assert isinstance(core.verify(token, TRUST, POLICY, NOW), core.VerifiedToken)
    assert module_outcome(token, without_nhsa) == E.UNKNOWN_KEY
    assert isinstance(core.verify(token, TRUST, POLICY, NOW), core.VerifiedToken)


def test_the_canonical_pattern_is_built_from_the_one_definition_of_each_shape() -> None:
    pattern = core._CANONICAL.pattern
    assert f'"iss":"({trust.ISSUER_PATTERN})"' in pattern
    assert "(" + "|".join(re.escape(card) for card in CARD_TYPES) + ")" in pattern
    for card in CARD_TYPES:
        payload = orjson.dumps(
            {
                "iss": "nhsa",
                "sub": "holder-1",
                "jti": "A" * 22,
                "iat": rfc3339.format(NOW),
                "exp": rfc3339.format(NOW + 60),
                "card": card,
                "region": "110101",
            }
        )
        assert core._CANONICAL.fullmatch(payload.decode()) is not None
