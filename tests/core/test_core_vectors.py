"""Known-answer tests: the official PASETO v4 and PASERK k4 vectors, parametrised by name."""

from __future__ import annotations

from typing import Any

import pytest
from helpers_core import NOW, load_vectors

from verifier import b64url, core, paserk, paseto, strictjson
from verifier import errors as E
from verifier.errors import KeyFormatError, TokenError
from verifier.policy import ClaimPolicy
from verifier.records import CARD_TYPES
from verifier.trust import IssuerKey, TrustList

V4 = load_vectors("v4.json")
SIGN_VECTORS = [v for v in V4 if v["name"].startswith("4-S-")]
FAIL_VECTORS = [v for v in V4 if v["expect-fail"]]
LOCAL_VECTORS = [v for v in V4 if v["token"].startswith("v4.local.") and not v["expect-fail"]]
# The v4.public key of the 4-S-* vectors: an expect-fail v4.public token must not verify under it.
VECTOR_PUBLIC = bytes.fromhex(SIGN_VECTORS[0]["public-key"])


def by_name(vectors: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("vec", vectors, ids=[v["name"] for v in vectors])


def test_vector_files_hold_what_the_tests_expect() -> None:
    # Guards against an empty or truncated vector file silently running zero cases.
    assert [v["name"] for v in SIGN_VECTORS] == ["4-S-1", "4-S-2", "4-S-3"]
    assert {v["name"] for v in FAIL_VECTORS} == {"4-F-1", "4-F-2", "4-F-3", "4-F-4", "4-F-5"}
    assert len(LOCAL_VECTORS) == 9


@by_name(SIGN_VECTORS)
def test_v4_public_vector_verifies(vec: dict[str, Any]) -> None:
    message, footer = paseto.verify(
        vec["token"], bytes.fromhex(vec["public-key"]), vec["implicit-assertion"].encode()
    )
    assert message == vec["payload"].encode()
    assert footer == vec["footer"].encode()


@by_name(SIGN_VECTORS)
def test_v4_public_vector_is_reproduced_by_sign(vec: dict[str, Any]) -> None:
    # Ed25519 is deterministic, so signing must give the very same token.
    secret = bytes.fromhex(vec["secret-key"])
    assert paserk.from_seed(bytes.fromhex(vec["secret-key-seed"])).secret == secret
    token = paseto.sign(
        secret,
        vec["payload"].encode(),
        vec["footer"].encode(),
        vec["implicit-assertion"].encode(),
    )
    assert token == vec["token"]


@by_name(SIGN_VECTORS)
def test_v4_public_vector_fails_with_another_implicit_assertion(vec: dict[str, Any]) -> None:
    with pytest.raises(paseto.PasetoError) as info:
        paseto.verify(vec["token"], VECTOR_PUBLIC, vec["implicit-assertion"].encode() + b"x")
    assert info.value.kind == "signature"


def _trust_for_vector_kid(footer: bytes) -> TrustList:
    """A trust list in which the vector's footer kid names the vectors' public key, so that a
    v4.public expect-fail token gets as far as the signature check."""
    kid = "unused"
    if footer.startswith(b"{"):
        kid = strictjson.loads_object(footer)["kid"]
    key = IssuerKey(kid, VECTOR_PUBLIC, "vector", frozenset(CARD_TYPES))
    return TrustList(1, NOW - 60, NOW + 60, {kid: key})


@by_name(FAIL_VECTORS)
def test_expect_fail_vector_is_rejected(vec: dict[str, Any]) -> None:
    token: str = vec["token"]
    implicit = vec["implicit-assertion"].encode()
    with pytest.raises(paseto.PasetoError):
        paseto.verify(token, VECTOR_PUBLIC, implicit)
    footer = b64url.decode(token.rsplit(".", 1)[1].encode()) if token.count(".") == 3 else b""
    policy = ClaimPolicy(implicit_assertion=implicit)
    with pytest.raises(TokenError) as info:
        core.verify(token, _trust_for_vector_kid(footer), policy, NOW)
    if token.startswith("v4.public."):
        assert info.value.reason == E.BAD_SIGNATURE  # the key is found; the signature is wrong
    else:
        assert info.value.reason == E.UNSUPPORTED_TOKEN  # v3.local / v4.local


@by_name(LOCAL_VECTORS)
def test_valid_v4_local_vector_is_unsupported(vec: dict[str, Any]) -> None:
    # Genuine v4.local tokens are still not ours: only v4.public is accepted.
    with pytest.raises(TokenError) as info:
        core.verify(vec["token"], _trust_for_vector_kid(b""), ClaimPolicy(), NOW)
    assert info.value.reason == E.UNSUPPORTED_TOKEN
    with pytest.raises(paseto.PasetoError) as perr:
        paseto.verify(vec["token"], VECTOR_PUBLIC)
    assert perr.value.kind == "header"


# --- PASERK k4 ---------------------------------------------------------------------------

PID = load_vectors("k4.pid.json")
PUBLIC = load_vectors("k4.public.json")
SECRET = load_vectors("k4.secret.json")


def _ok(vectors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in vectors if not v["expect-fail"]]


def _fail(vectors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in vectors if v["expect-fail"]]


def test_paserk_vector_files_hold_what_the_tests_expect() -> None:
    assert (len(_ok(PID)), len(_fail(PID))) == (3, 2)
    assert (len(_ok(PUBLIC)), len(_fail(PUBLIC))) == (3, 1)
    assert (len(_ok(SECRET)), len(_fail(SECRET))) == (3, 2)


@by_name(_ok(PID))
def test_k4_pid_vector(vec: dict[str, Any]) -> None:
    assert paserk.pid(bytes.fromhex(vec["key"])) == vec["paserk"]


@by_name(_fail(PID))
def test_k4_pid_fail_vector(vec: dict[str, Any]) -> None:
    # fail-1: a 31-byte key; fail-2: a 49-byte (k3, P-384) key. Neither has a k4.pid.
    with pytest.raises(KeyFormatError):
        paserk.pid(bytes.fromhex(vec["key"]))


@by_name(_ok(PUBLIC))
def test_k4_public_vector(vec: dict[str, Any]) -> None:
    key = bytes.fromhex(vec["key"])
    assert paserk.public_to_paserk(key) == vec["paserk"]
    assert paserk.public_from_paserk(vec["paserk"]) == key


@by_name(_fail(PUBLIC))
def test_k4_public_fail_vector(vec: dict[str, Any]) -> None:
    # A k3 (P-384) public key must neither serialise as k4 nor parse when spelled as k3.
    key = bytes.fromhex(vec["key"])
    with pytest.raises(KeyFormatError):
        paserk.public_to_paserk(key)
    with pytest.raises(KeyFormatError):
        paserk.public_from_paserk("k3.public." + b64url.encode(key).decode())


@by_name(_ok(SECRET))
def test_k4_secret_vector(vec: dict[str, Any]) -> None:
    key = bytes.fromhex(vec["key"])
    assert paserk.secret_to_paserk(key) == vec["paserk"]
    assert paserk.secret_from_paserk(vec["paserk"]) == key
    pair = paserk.from_seed(bytes.fromhex(vec["secret-key-seed"]))
    assert (pair.secret, pair.public) == (key, bytes.fromhex(vec["public-key"]))


@by_name(_fail(SECRET))
def test_k4_secret_fail_vector(vec: dict[str, Any]) -> None:
    # fail-1: 31 bytes (short); fail-2: 48 bytes (a k3 secret).
    key = bytes.fromhex(vec["key"])
    with pytest.raises(KeyFormatError):
        paserk.secret_to_paserk(key)
    for prefix in ("k4.secret.", "k3.secret."):
        with pytest.raises(KeyFormatError):
            paserk.secret_from_paserk(prefix + b64url.encode(key).decode())


def test_k4_secret_whose_public_half_is_not_its_seeds_is_rejected() -> None:
    seed_of_2 = bytes.fromhex(SECRET[1]["secret-key-seed"])
    public_of_3 = bytes.fromhex(SECRET[2]["public-key"])
    forged = paserk.SECRET_PREFIX + b64url.encode(seed_of_2 + public_of_3).decode()
    with pytest.raises(KeyFormatError, match="does not match"):
        paserk.secret_from_paserk(forged)


GOOD_PUBLIC = PUBLIC[1]["paserk"]  # k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8
GOOD_SECRET = SECRET[1]["paserk"]


@pytest.mark.parametrize(
    "text",
    [
        GOOD_PUBLIC.replace("k4.", "k3.", 1),  # wrong version
        GOOD_PUBLIC.replace("k4.", "k2.", 1),  # wrong version (same Ed25519 key size)
        GOOD_PUBLIC.replace("public", "local", 1),  # wrong type
        GOOD_SECRET,  # a secret key where a public key is expected
        PID[1]["paserk"],  # a key id is not a key
        GOOD_PUBLIC + "=",  # padding
        GOOD_PUBLIC[:-1] + "9",  # non-zero trailing bits (…jo9 instead of …jo8)
        GOOD_PUBLIC[:-4],  # 29 bytes
        GOOD_PUBLIC + "AA",  # 33 bytes
        GOOD_PUBLIC.replace("-", "+"),  # standard-alphabet character
        GOOD_PUBLIC[:20] + "é" + GOOD_PUBLIC[21:],  # non-ASCII
        "K4.PUBLIC." + GOOD_PUBLIC[10:],  # the prefix is case-sensitive
        "",
    ],
)
def test_public_paserk_of_wrong_kind_or_spelling_is_rejected(text: str) -> None:
    with pytest.raises(KeyFormatError):
        paserk.public_from_paserk(text)


@pytest.mark.parametrize(
    "text",
    [
        GOOD_SECRET.replace("k4.", "k3.", 1),  # wrong version
        GOOD_PUBLIC,  # a public key where a secret key is expected
        GOOD_SECRET + "=",  # padding
        GOOD_SECRET[:-4],  # short
    ],
)
def test_secret_paserk_of_wrong_kind_or_spelling_is_rejected(text: str) -> None:
    with pytest.raises(KeyFormatError):
        paserk.secret_from_paserk(text)
