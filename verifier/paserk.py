"""PASERK k4 key serialisation: ``k4.secret.``, ``k4.public.`` and the key id ``k4.pid.``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions

from verifier import b64url
from verifier.errors import KeyFormatError

SECRET_PREFIX = "k4.secret."
PUBLIC_PREFIX = "k4.public."
PID_PREFIX = "k4.pid."


def public_to_paserk(pk: bytes) -> str:
    if len(pk) != 32:
        raise KeyFormatError("a k4 public key is 32 bytes")
    return PUBLIC_PREFIX + b64url.encode(pk).decode()


def secret_to_paserk(sk: bytes) -> str:
    if len(sk) != 64:
        raise KeyFormatError("a k4 secret key is 64 bytes (seed || public key)")
    return SECRET_PREFIX + b64url.encode(sk).decode()


def pid(pk: bytes) -> str:
    """The PASERK id of a public key: ``k4.pid.`` + b64url(BLAKE2b-264(h || paserk))."""
    digest = hashlib.blake2b((PID_PREFIX + public_to_paserk(pk)).encode(), digest_size=33).digest()
    return PID_PREFIX + b64url.encode(digest).decode()


def _decode(text: str, prefix: str, size: int, what: str) -> bytes:
    if not isinstance(text, str) or not text.startswith(prefix):
        raise KeyFormatError(f"not a {prefix}… key")
    try:
        raw = b64url.decode(text[len(prefix) :].encode("ascii"))
    except (ValueError, UnicodeEncodeError) as err:
        raise KeyFormatError(f"{what}: bad base64url") from err
    if len(raw) != size:
        raise KeyFormatError(f"{what}: must be {size} bytes, got {len(raw)}")
    return raw


def public_from_paserk(text: str) -> bytes:
    return _decode(text, PUBLIC_PREFIX, 32, "public key")


def secret_from_paserk(text: str) -> bytes:
    """Decode a k4.secret and check that its public half belongs to its seed."""
    sk = _decode(text, SECRET_PREFIX, 64, "secret key")
    derived, _ = nacl.bindings.crypto_sign_seed_keypair(sk[:32])
    if derived != sk[32:]:
        raise KeyFormatError("secret key: public half does not match the seed")
    return sk


@dataclass(frozen=True, slots=True)
class KeyPair:
    secret: bytes  # 64 bytes: seed || public
    public: bytes

    @property
    def kid(self) -> str:
        return pid(self.public)


def generate() -> KeyPair:
    pk, sk = nacl.bindings.crypto_sign_keypair()
    return KeyPair(sk, pk)


def from_seed(seed: bytes) -> KeyPair:
    pk, sk = nacl.bindings.crypto_sign_seed_keypair(seed)
    return KeyPair(sk, pk)


def is_valid_point(pk: bytes) -> bool:
    """True for a canonical Ed25519 point in the prime-order subgroup (not small order)."""
    try:
        return bool(len(pk) == 32 and nacl.bindings.crypto_core_ed25519_is_valid_point(pk))
    except nacl.exceptions.CryptoError:
        return False
