"""PASETO v4.public, step by step as the specification writes it.

This layer knows nothing about claims or trust: it signs and verifies a message under an
Ed25519 key with an optional footer and implicit assertion. A verifier is either given the key
(:func:`verify`) or lets the footer choose it from the caller's own list (:func:`verify_with`).
See ``verifier.core`` for the verdict on an insurance token.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple, Protocol, TypeVar

import nacl.bindings

from verifier import b64url

HEADER = b"v4.public."
SIG_BYTES = 64

try:  # libsodium directly: avoids PyNaCl's per-call output buffer and exception.
    from nacl._sodium import ffi as _ffi
    from nacl._sodium import lib as _lib

    _SCRATCH_BYTES = 16384
    _scratch = _ffi.new("unsigned char[]", _SCRATCH_BYTES)
    _scratch_len = _ffi.new("unsigned long long *")
except ImportError:  # pragma: no cover - PyNaCl always ships _sodium today
    _lib = None


def pae(*pieces: bytes) -> bytes:
    """Pre-Authentication Encoding: LE64(count) || for each piece LE64(len) || piece."""
    out = [struct.pack("<Q", len(pieces))]
    for p in pieces:
        out.append(struct.pack("<Q", len(p)))
        out.append(p)
    return b"".join(out)


def _pae3(m: bytes, f: bytes, i: bytes, prefix: bytes = b"") -> bytes:
    """``prefix || PAE("v4.public.", m, f, i)``, specialised for the hot path.

    The verifier passes the signature as ``prefix``: libsodium's crypto_sign_open takes
    ``sig || message``, and building both in one join saves a copy of the message.
    """
    return b"".join(
        (
            prefix,
            b"\x04\x00\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x00\x00\x00\x00\x00v4.public.",
            len(m).to_bytes(8, "little"),
            m,
            len(f).to_bytes(8, "little"),
            f,
            len(i).to_bytes(8, "little"),
            i,
        )
    )


def open_signed(sig_and_message: bytes, pk: bytes) -> bool:
    """True iff ``sig_and_message`` is a 64-byte Ed25519 signature followed by the message it
    signs under the 32-byte public key ``pk``."""
    if len(pk) != 32 or len(sig_and_message) < SIG_BYTES:
        raise ValueError("an Ed25519 public key is 32 bytes and a signature 64")
    n = len(sig_and_message)
    if _lib is not None and n <= _SCRATCH_BYTES:
        # Only the return code is used; the scratch output is never read.
        return _lib.crypto_sign_open(_scratch, _scratch_len, sig_and_message, n, pk) == 0
    try:
        nacl.bindings.crypto_sign_open(sig_and_message, pk)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def sign(secret_key: bytes, message: bytes, footer: bytes = b"", implicit: bytes = b"") -> str:
    """Build a v4.public token (spec: v4.Sign)."""
    # 1-2. h = "v4.public."; m2 = PAE(h, m, f, i)
    m2 = _pae3(message, footer, implicit)
    # 3. sig = crypto_sign_detached(m2, sk)
    sig = nacl.bindings.crypto_sign(m2, secret_key)[:SIG_BYTES]
    # 4. h || b64(m || sig) [|| "." || b64(f)]
    token = HEADER + b64url.encode(message + sig)
    if footer:
        token += b"." + b64url.encode(footer)
    return token.decode("ascii")


class PasetoError(ValueError):
    """Raised by :func:`verify_with` and :func:`verify` with one of: header, encoding, signature."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Key(Protocol):
    """What v4.Verify needs of a key: its 32-byte Ed25519 public key."""

    @property
    def public(self) -> bytes: ...


K = TypeVar("K", bound=Key)


class _KnownKey(NamedTuple):
    """A key known before the token is read (see :func:`verify`)."""

    public: bytes


def _segments(token: bytes) -> tuple[bytes, bytes]:
    """Check the header h and split the token: (encoded payload, encoded footer or b"")."""
    if not token.startswith(HEADER):
        raise PasetoError("header", "not v4.public")
    payload, dot, footer = token[len(HEADER) :].partition(b".")
    if not payload or b"." in footer or (dot and not footer):
        raise PasetoError("encoding", "wrong number of segments")
    return payload, footer


def decode_footer(encoded: bytes) -> bytes:
    """The footer f from its segment as written in the token (b"" when there is none)."""
    try:
        return b64url.decode(encoded)
    except ValueError as err:
        raise PasetoError("encoding", "footer is not strict base64url") from err


def verify_with(
    token: bytes, choose_key: Callable[[bytes], tuple[bytes, K]], implicit: bytes = b""
) -> tuple[bytes, bytes, K]:
    """v4.Verify, spec steps 1-6, with the key chosen by the token's footer.

    ``choose_key`` receives the footer segment as written in the token (b"" if there is none)
    before anything else is decoded. It returns ``(f, key)``: f decoded with
    :func:`decode_footer` (or remembered from an earlier call: strict base64url gives each
    footer one spelling) and the key to verify with, taken from the caller's own list, never
    from the token. It may raise to refuse the token. Returns ``(m, f, key)``; raises
    PasetoError.
    """
    # 1-2. h must be "v4.public." (checked before anything is read); split off the footer f.
    #      PASETO lets a verifier compare f with an expected value; here f names the key
    #      instead, so the caller decodes it and chooses the key before the payload is read.
    payload, encoded_footer = _segments(token)
    f, key = choose_key(encoded_footer)
    # 3. Decode the payload (strict base64url); s = its last 64 bytes, m = the rest.
    try:
        raw = b64url.decode(payload)
    except ValueError as err:
        raise PasetoError("encoding", "payload is not strict base64url") from err
    if len(raw) < SIG_BYTES:
        raise PasetoError("encoding", "payload shorter than a signature")
    m, s = raw[:-SIG_BYTES], raw[-SIG_BYTES:]
    # 4. m2 = PAE(h, m, f, i), built right behind s (libsodium's crypto_sign_open takes s || m2).
    # 5. Ed25519: s must be a valid signature of m2 under the key.
    if not open_signed(_pae3(m, f, implicit, s), key.public):
        raise PasetoError("signature", "invalid signature")
    # 6. Return m (with the footer and the key it was verified with).
    return m, f, key


def split(token: bytes) -> tuple[bytes, bytes]:
    """Steps 1-2 alone, for tools that take a token apart: (encoded payload, decoded footer)."""
    payload, encoded_footer = _segments(token)
    return payload, decode_footer(encoded_footer)


def verify(token: str | bytes, public_key: bytes, implicit: bytes = b"") -> tuple[bytes, bytes]:
    """v4.Verify with a known key: return (message, footer) or raise PasetoError."""
    if isinstance(token, str):
        if not token.isascii():
            raise PasetoError("encoding", "token is not ASCII")
        token = token.encode("ascii")
    key = _KnownKey(public_key)
    message, footer, _ = verify_with(token, lambda f: (decode_footer(f), key), implicit)
    return message, footer
