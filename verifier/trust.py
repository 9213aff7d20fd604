"""The trust list: root key → issuer keys → tokens (three-layer key hierarchy).

An offline root key signs the list of issuer keys. The signed list is itself a v4.public
token whose payload is ``{"version", "iat", "exp", "keys": [...]}`` and whose footer names
the root's ``kid``; it is signed with the implicit assertion :data:`TRUST_LIST_ASSERTION`
so that a trust list can never be mistaken for a QR token, or the reverse.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from verifier import paserk, paseto, rfc3339, strictjson
from verifier.errors import KeyFormatError, TrustListError
from verifier.records import CARD_TYPES

TRUST_LIST_ASSERTION = b"insurance-qr-verifier/trust-list/v1"
KEY_STATES = ("active", "verify-only", "revoked")
MAX_CLOCK_SKEW = 300  # seconds a trust list's iat may lie ahead of our clock
# An issuer id such as "nhsa": the one definition, also built into the token core's patterns.
ISSUER_PATTERN = r"[a-z][a-z0-9_-]{0,31}"
_ISSUER = re.compile(ISSUER_PATTERN)


@dataclass(frozen=True, slots=True)
class IssuerKey:
    kid: str  # k4.pid of the public key
    public: bytes
    issuer: str  # e.g. "nhsa", "mohrss"
    cards: frozenset[str]
    state: str = "active"  # active | verify-only | revoked
    not_before: float | None = None
    not_after: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "public": paserk.public_to_paserk(self.public),
            "kid": self.kid,
            "issuer": self.issuer,
            "cards": sorted(self.cards),
            "state": self.state,
        }
        if self.not_before is not None:
            out["not_before"] = rfc3339.format(self.not_before)
        if self.not_after is not None:
            out["not_after"] = rfc3339.format(self.not_after)
        return out


@dataclass(frozen=True, slots=True)
class TrustList:
    version: int
    iat: float
    exp: float
    keys: Mapping[str, IssuerKey] = field(default_factory=dict)  # by kid

    def is_fresh(self, now: float) -> bool:
        return now < self.exp

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "iat": rfc3339.format(self.iat),
            "exp": rfc3339.format(self.exp),
            "keys": [k.to_json() for k in self.keys.values()],
        }


def parse_key_entry(entry: object, where: str) -> IssuerKey:
    """Validate one issuer key entry (from a source file or a signed list)."""
    if not isinstance(entry, dict):
        raise TrustListError(f"{where}: must be an object")
    unknown = set(entry) - {
        "public",
        "kid",
        "issuer",
        "cards",
        "state",
        "not_before",
        "not_after",
        "name",
    }
    if unknown:
        raise TrustListError(f"{where}: unknown field(s) {sorted(unknown)}")
    try:
        public = paserk.public_from_paserk(entry.get("public", ""))
    except KeyFormatError as err:
        raise TrustListError(f"{where}.public: {err}") from err
    if not paserk.is_valid_point(public):
        raise TrustListError(
            f"{where}.public: not a valid Ed25519 point (small order or non-canonical)"
        )
    kid = paserk.pid(public)
    if entry.get("kid", kid) != kid:
        raise TrustListError(f"{where}.kid does not match the public key")
    issuer = entry.get("issuer")
    if not isinstance(issuer, str) or not _ISSUER.fullmatch(issuer):
        raise TrustListError(f"{where}.issuer must be a short lowercase id such as 'nhsa'")
    cards = entry.get("cards")
    if not isinstance(cards, list) or not cards or not all(c in CARD_TYPES for c in cards):
        raise TrustListError(f"{where}.cards must be a non-empty list of {list(CARD_TYPES)}")
    state = entry.get("state", "active")
    if state not in KEY_STATES:
        raise TrustListError(f"{where}.state must be one of {list(KEY_STATES)}")
    window = []
    for name in ("not_before", "not_after"):
        value = entry.get(name)
        try:
            window.append(None if value is None else rfc3339.parse(value))
        except ValueError as err:
            raise TrustListError(f"{where}.{name}: {err}") from err
    if window[0] is not None and window[1] is not None and window[0] >= window[1]:
        raise TrustListError(f"{where}: not_before must be before not_after")
    return IssuerKey(kid, public, issuer, frozenset(cards), state, window[0], window[1])


def _parse_keys(entries: object) -> dict[str, IssuerKey]:
    if not isinstance(entries, list) or not entries:
        raise TrustListError("keys must be a non-empty list")
    keys: dict[str, IssuerKey] = {}
    for n, entry in enumerate(entries):
        key = parse_key_entry(entry, f"keys[{n}]")
        if key.kid in keys:
            raise TrustListError(f"keys[{n}]: duplicate key {key.kid}")
        keys[key.kid] = key
    return keys


def load_source(path: str | Path) -> dict[str, IssuerKey]:
    """Read the human-written source (JSON or TOML) ``{"keys": [...]}``."""
    path = Path(path)
    try:
        text = path.read_bytes()
        if path.suffix == ".toml":
            data = tomllib.loads(text.decode())
        else:
            data = strictjson.loads_object(text, max_depth=4, max_keys=4096)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, strictjson.JSONError) as err:
        raise TrustListError(f"{path}: {err}") from err
    if not isinstance(data, dict) or set(data) - {"keys", "version"}:
        raise TrustListError(f"{path}: expected an object with a 'keys' list")
    return _parse_keys(data.get("keys"))


def sign(
    keys: Mapping[str, IssuerKey], root_secret: bytes, version: int, iat: float, exp: float
) -> str:
    """Sign a trust list with the root key."""
    if exp <= iat:
        raise TrustListError("the trust list must expire after it is issued")
    body = TrustList(version, iat, exp, dict(keys)).to_json()
    footer = orjson.dumps({"kid": paserk.pid(root_secret[32:])})
    return paseto.sign(root_secret, orjson.dumps(body), footer, TRUST_LIST_ASSERTION)


def load(token: str, root_public: bytes, now: float, current: TrustList | None = None) -> TrustList:
    """Verify and parse a signed trust list; refuse a stale, expired or downgraded one."""
    try:
        message, footer = paseto.verify(token.strip(), root_public, TRUST_LIST_ASSERTION)
    except (paseto.PasetoError, UnicodeEncodeError) as err:
        raise TrustListError(f"not signed by the configured root key ({err})") from err
    try:
        f = strictjson.loads_object(footer)
        body = strictjson.loads_object(message, max_depth=4, max_keys=4096)
    except strictjson.JSONError as err:
        raise TrustListError(f"trust list is not valid JSON: {err}") from err
    if f.get("kid") != paserk.pid(root_public):
        raise TrustListError("trust list footer does not name the root key")
    unknown = set(body) - {"version", "iat", "exp", "keys"}
    if unknown:
        raise TrustListError(f"unknown trust list field(s) {sorted(unknown)}")
    version = body.get("version")
    if type(version) is not int or version < 1:
        raise TrustListError("version must be a positive integer")
    try:
        iat, exp = rfc3339.parse(body.get("iat")), rfc3339.parse(body.get("exp"))
    except ValueError as err:
        raise TrustListError(f"bad iat/exp: {err}") from err
    if now >= exp:
        raise TrustListError(f"trust list expired at {rfc3339.format(exp)}")
    if iat > now + MAX_CLOCK_SKEW:
        raise TrustListError(f"trust list issued in the future ({rfc3339.format(iat)})")
    if current is not None and version < current.version:
        raise TrustListError(
            f"version {version} is older than the loaded version {current.version}"
        )
    keys = _parse_keys(body.get("keys"))
    if current is not None and version == current.version and keys != current.keys:
        raise TrustListError(
            f"version {version} is loaded already with other keys; bump the version"
        )
    return TrustList(version, iat, exp, keys)


def load_file(
    path: str | Path, root_public: bytes, now: float, current: TrustList | None = None
) -> TrustList:
    try:
        token = Path(path).read_text("ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise TrustListError(f"{path}: {err}") from err
    return load(token, root_public, now, current)
