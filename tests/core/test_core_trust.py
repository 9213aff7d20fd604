"""The signed trust list: round trip, and every way a list must be refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers_core import (
    ENTRIES,
    MOHRSS,
    NHSA,
    NOW,
    ROOT,
    STRANGER,
    TRUST_EXP,
    TRUST_IAT,
    WINDOWED,
    claims,
    issuer_keys,
    key_entry,
    make_token,
    reason,
    sign_trust_body,
    signed_trust_list,
)

from verifier import errors as E
from verifier import paserk, paseto, rfc3339, trust
from verifier.errors import ConfigError, TrustListError
from verifier.policy import ClaimPolicy

P = 2**255 - 19


def test_sign_then_load_round_trips() -> None:
    keys = issuer_keys()
    loaded = trust.load(signed_trust_list(keys, version=7), ROOT.public, NOW)
    assert (loaded.version, loaded.iat, loaded.exp) == (7, TRUST_IAT, TRUST_EXP)
    assert dict(loaded.keys) == keys
    windowed = loaded.keys[WINDOWED.kid]
    assert (windowed.not_before, windowed.not_after) == (NOW - 3600, NOW + 3600)
    assert loaded.keys[NHSA.kid].cards == frozenset({"mi-voucher"})


def test_load_tolerates_surrounding_whitespace_of_the_file() -> None:
    assert trust.load("\n" + signed_trust_list() + "\n", ROOT.public, NOW).version == 1


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "trust.paseto"
    path.write_text(signed_trust_list(version=3) + "\n", "ascii")
    assert trust.load_file(path, ROOT.public, NOW).version == 3
    with pytest.raises(TrustListError):
        trust.load_file(tmp_path / "missing.paseto", ROOT.public, NOW)


def test_signed_by_a_non_root_key_is_refused() -> None:
    with pytest.raises(TrustListError, match="root"):
        trust.load(signed_trust_list(root=STRANGER), ROOT.public, NOW)
    # ...even an issuer key that is itself in the list
    with pytest.raises(TrustListError):
        trust.load(signed_trust_list(root=NHSA), ROOT.public, NOW)


def test_footer_not_naming_the_root_is_refused() -> None:
    body = trust.TrustList(1, TRUST_IAT, TRUST_EXP, issuer_keys()).to_json()
    for footer in (orjson.dumps({"kid": NHSA.kid}), b'{"x":1}', b"not json"):
        with pytest.raises(TrustListError):
            trust.load(sign_trust_body(body, footer=footer), ROOT.public, NOW)


EXPIRY = [
    # (now, refused?) for a list with exp = TRUST_EXP
    (TRUST_EXP - 1, False),  # last second
    (TRUST_EXP - 0.001, False),
    (TRUST_EXP, True),  # exactly at exp
    (TRUST_EXP + 1, True),
]


@pytest.mark.parametrize(("now", "refused"), EXPIRY)
def test_expired_list_is_refused(now: float, refused: bool) -> None:
    token = signed_trust_list()
    if refused:
        with pytest.raises(TrustListError, match="expired"):
            trust.load(token, ROOT.public, now)
    else:
        assert trust.load(token, ROOT.public, now).exp == TRUST_EXP


VERSIONS = [
    # (new version, current version, refused?)
    (4, 5, True),  # older than the loaded list: a downgrade
    (1, 5, True),
    (5, 5, False),  # the same list again (a reload)
    (6, 5, False),  # newer
]


@pytest.mark.parametrize(("new", "current", "refused"), VERSIONS)
def test_version_older_than_current_is_refused(new: int, current: int, refused: bool) -> None:
    loaded = trust.load(signed_trust_list(version=current), ROOT.public, NOW)
    token = signed_trust_list(version=new)
    if refused:
        with pytest.raises(TrustListError, match="older"):
            trust.load(token, ROOT.public, NOW, current=loaded)
    else:
        assert trust.load(token, ROOT.public, NOW, current=loaded).version == new


def test_sign_refuses_exp_not_after_iat() -> None:
    with pytest.raises(TrustListError):
        trust.sign(issuer_keys(), ROOT.secret, 1, NOW, NOW)


# Encodings of points that are not valid issuer keys.
BAD_POINTS = [
    (bytes(32), "all zero: (0, ...) is a point of order 4"),
    (b"\x01" + bytes(31), "the identity point (order 1)"),
    (b"\x01" + bytes(30) + b"\x80", "the identity with the sign bit set (non-canonical)"),
    (
        bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        "y = p - 1 = -1 (order 2)",
    ),
    (P.to_bytes(32, "little"), "y = p (non-canonical 0)"),
    ((P + 1).to_bytes(32, "little"), "y = p + 1 (non-canonical identity)"),
    ((P + 2).to_bytes(32, "little"), "y = p + 2 (non-canonical)"),
    ((2**255 - 1).to_bytes(32, "little"), "y = 2^255 - 1 (non-canonical)"),
    (
        bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
        "a point of order 8",
    ),
    (
        bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
        "a point of order 8",
    ),
    (b"\x02" + bytes(31), "y = 2: not on the curve"),
]


@pytest.mark.parametrize(("public", "why"), BAD_POINTS, ids=[w for _, w in BAD_POINTS])
def test_issuer_key_that_is_not_a_prime_order_point_is_refused(public: bytes, why: str) -> None:
    assert not paserk.is_valid_point(public)
    bad = trust.IssuerKey(paserk.pid(public), public, "nhsa", frozenset({"mi-voucher"}))
    keys = {**issuer_keys(), bad.kid: bad}
    with pytest.raises(TrustListError, match="valid Ed25519 point"):
        trust.load(signed_trust_list(keys), ROOT.public, NOW)


def test_real_keys_are_valid_points() -> None:
    for kp in (ROOT, NHSA, MOHRSS, STRANGER):
        assert paserk.is_valid_point(kp.public)


def _body(entries: list[Any], **top: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "iat": rfc3339.format(TRUST_IAT),
        "exp": rfc3339.format(TRUST_EXP),
        "keys": entries,
        **top,
    }


def _entry(**changes: Any) -> dict[str, Any]:
    entry = key_entry(NHSA, "nhsa", ["mi-voucher"])
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


BAD_LISTS: list[tuple[dict[str, Any], str]] = [
    (_body([_entry(), _entry()]), "the same key twice"),
    (
        _body([_entry(), _entry(issuer="other", cards=["ss-ecard"])]),
        "the same key twice, other roles",
    ),
    (_body([]), "no keys"),
    (_body({"k": _entry()}), "keys not a list"),  # type: ignore[arg-type]
    (_body([_entry(cards=[])]), "empty cards"),
    (_body([_entry(cards=["bogus"])]), "unknown card"),
    (_body([_entry(cards=["mi-voucher", "bogus"])]), "one unknown card among good ones"),
    (_body([_entry(cards="mi-voucher")]), "cards a string, not a list"),
    (_body([_entry(cards=[["mi-voucher"]])]), "cards nested"),
    (_body([{k: v for k, v in _entry().items() if k != "cards"}]), "cards missing"),
    (_body([_entry(state="disabled")]), "unknown state"),
    (_body([_entry(state="Active")]), "state in the wrong case"),
    (_body([_entry(state=1)]), "state a number"),
    (_body([_entry(issuer="NHSA")]), "issuer in upper case"),
    (_body([_entry(issuer="")]), "empty issuer"),
    (_body([_entry(issuer="n" * 33)]), "issuer too long"),
    (_body([_entry(issuer=1)]), "issuer a number"),
    (_body([{k: v for k, v in _entry().items() if k != "issuer"}]), "issuer missing"),
    (_body([_entry(kid=MOHRSS.kid)]), "kid of another key"),
    (_body([_entry(kid=paserk.public_to_paserk(NHSA.public))]), "kid that is the public key"),
    (_body([_entry(public=paserk.public_to_paserk(NHSA.public)[:-1])]), "public key truncated"),
    (_body([_entry(public="k3.public." + paserk.public_to_paserk(NHSA.public)[10:])]), "k3 key"),
    (_body([_entry(public=paserk.secret_to_paserk(NHSA.secret))]), "a secret key as public"),
    (_body([{k: v for k, v in _entry().items() if k != "public"}]), "public missing"),
    (_body([_entry(extra="x")]), "unknown field"),
    (_body([_entry(not_before="2026-01-01T00:00:00")]), "not_before without zone"),
    (_body([_entry(not_after=12345)]), "not_after a number"),
    (
        _body([_entry(not_before=rfc3339.format(NOW), not_after=rfc3339.format(NOW))]),
        "empty validity window",
    ),
    (
        _body([_entry(not_before=rfc3339.format(NOW + 1), not_after=rfc3339.format(NOW))]),
        "validity window backwards",
    ),
    (_body(["k4.public.x"]), "entry not an object"),
    (_body([_entry()], version=0), "version 0"),
    (_body([_entry()], version=-1), "negative version"),
    (_body([_entry()], version="1"), "version a string"),
    (_body([_entry()], version=True), "version a boolean"),
    (_body([_entry()], version=1.0), "version a float"),
    (_body([_entry()], iat="yesterday"), "iat not RFC 3339"),
    (_body([_entry()], exp=int(TRUST_EXP)), "exp a number"),
]


@pytest.mark.parametrize(("body", "why"), BAD_LISTS, ids=[w for _, w in BAD_LISTS])
def test_bad_list_is_refused(body: dict[str, Any], why: str) -> None:
    with pytest.raises(TrustListError):
        trust.load(sign_trust_body(body), ROOT.public, NOW)


def test_hand_built_body_is_accepted_when_good() -> None:
    # The control for the table above: the same builder with nothing wrong.
    loaded = trust.load(sign_trust_body(_body([_entry(name="National HSA")])), ROOT.public, NOW)
    assert list(loaded.keys) == [NHSA.kid]


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b"not json",
        b'{"version":1,"version":2}',  # duplicate key
        orjson.dumps(_body([_entry()]))[:-1] + b',"keys":[]}',  # keys given twice
        b'{"keys":' + b"[" * 5 + b"]" * 5 + b"}",  # deeper than the list's depth limit
    ],
)
def test_body_that_is_not_strict_json_is_refused(raw: bytes) -> None:
    with pytest.raises(TrustListError):
        trust.load(sign_trust_body(raw), ROOT.public, NOW)


# --- the implicit assertion binds each token to its use ---------------------------------------


def test_trust_list_token_is_not_a_qr_token() -> None:
    token = signed_trust_list()
    # The root is no issuer, so in the normal list its kid is unknown...
    assert reason(token) == E.UNKNOWN_KEY
    # ...and even with the root listed as an issuer, the trust-list assertion breaks the
    # signature before any claim is looked at.
    with_root = {**issuer_keys(), **issuer_keys([key_entry(ROOT, "nhsa", ["mi-voucher"])])}
    list_with_root = trust.load(signed_trust_list(with_root), ROOT.public, NOW)
    assert reason(token, trust_list=list_with_root) == E.BAD_SIGNATURE
    # And a verifier cannot even be configured with the trust-list assertion.
    with pytest.raises(ConfigError):
        ClaimPolicy(implicit_assertion=trust.TRUST_LIST_ASSERTION)


def test_qr_token_signed_by_the_root_is_not_a_trust_list() -> None:
    # The payload is a perfect trust list; only the implicit assertion is that of QR tokens.
    body = orjson.dumps(_body([_entry()]))
    token = make_token(signer=ROOT, payload=body)
    assert paseto.verify(token, ROOT.public) == (body, orjson.dumps({"kid": ROOT.kid}))
    with pytest.raises(TrustListError, match="root"):
        trust.load(token, ROOT.public, NOW)
    # The control: the same bytes under the trust-list assertion load.
    assert trust.load(sign_trust_body(body), ROOT.public, NOW).version == 1


def test_qr_claims_signed_by_root_with_list_assertion_are_not_a_list() -> None:
    token = make_token(
        signer=ROOT, implicit=trust.TRUST_LIST_ASSERTION, payload=orjson.dumps(claims())
    )
    with pytest.raises(TrustListError):
        trust.load(token, ROOT.public, NOW)


# --- source files ----------------------------------------------------------------------------

TOML_SOURCE = f"""\
version = 1

[[keys]]
public = "{paserk.public_to_paserk(NHSA.public)}"
issuer = "nhsa"
cards = ["mi-voucher"]
name = "National Healthcare Security Administration"

[[keys]]
public = "{paserk.public_to_paserk(MOHRSS.public)}"
kid = "{MOHRSS.kid}"
issuer = "mohrss"
cards = ["ss-ecard"]
state = "verify-only"
not_before = "2026-01-01T00:00:00+08:00"
not_after = "2027-01-01T00:00:00Z"
"""


def test_load_source_toml(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(TOML_SOURCE, "utf-8")
    keys = trust.load_source(path)
    assert list(keys) == [NHSA.kid, MOHRSS.kid]
    assert keys[MOHRSS.kid].state == "verify-only"
    assert keys[MOHRSS.kid].not_before == rfc3339.parse("2025-12-31T16:00:00Z")


def test_load_source_json(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(orjson.dumps({"keys": ENTRIES}))
    assert trust.load_source(path) == issuer_keys()


def test_load_source_json_and_toml_agree(tmp_path: Path) -> None:
    toml_path = tmp_path / "keys.toml"
    toml_path.write_text(TOML_SOURCE, "utf-8")
    keys = trust.load_source(toml_path)
    json_path = tmp_path / "keys.json"
    json_path.write_bytes(orjson.dumps({"keys": [k.to_json() for k in keys.values()]}))
    assert trust.load_source(json_path) == keys


def test_source_keys_sign_and_load(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(TOML_SOURCE, "utf-8")
    keys = trust.load_source(path)
    loaded = trust.load(trust.sign(keys, ROOT.secret, 2, NOW - 1, NOW + 60), ROOT.public, NOW)
    assert dict(loaded.keys) == keys


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("keys.toml", "keys = ["),  # TOML syntax error
        ("keys.json", "{"),  # JSON syntax error
        ("keys.json", "[]"),  # not an object
        ("keys.json", '{"keys": [], "extra": 1}'),  # unknown top-level field
        ("keys.json", '{"keys": []}'),  # no keys
        ("keys.json", '{"version": 1}'),  # keys missing
        (
            "keys.toml",
            'keys = [{public = "k4.public.AAAA", issuer = "nhsa", cards = ["mi-voucher"]}]',
        ),
        ("keys.json", "\udcff"),  # not UTF-8 (written as surrogateescape below)
    ],
)
def test_bad_source_is_refused(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(TrustListError):
        trust.load_source(path)


def test_missing_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrustListError):
        trust.load_source(tmp_path / "nope.toml")
