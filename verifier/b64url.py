"""Strict unpadded base64url (RFC 4648 §5), as PASETO requires.

One byte string has exactly one accepted spelling: no padding, no characters outside the
URL-safe alphabet, and the unused trailing bits of the last character must be zero.
"""

from __future__ import annotations

import binascii

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_FROM_STD = bytes.maketrans(b"+/", b"-_")
_TO_STD = bytes.maketrans(b"-_", b"+/")
# '+', '/' and '=' belong to standard base64 only: translate() deletes them, so a changed
# length reveals them; binascii's strict mode then rejects anything else outside the alphabet.
_FOREIGN = b"+/="
# The last character of a 2-char tail carries 4 unused bits, of a 3-char tail 2 unused bits.
_CLEAN_TAIL = {
    2: frozenset(c for i, c in enumerate(_ALPHABET) if i & 0x0F == 0),
    3: frozenset(c for i, c in enumerate(_ALPHABET) if i & 0x03 == 0),
}
_PAD = (b"", b"", b"==", b"=")


def encode(data: bytes) -> bytes:
    """Unpadded base64url of ``data``."""
    return binascii.b2a_base64(data, newline=False).translate(_FROM_STD).rstrip(b"=")


def decode(text: bytes) -> bytes:
    """Decode strict unpadded base64url; raise ValueError on any non-canonical input."""
    rem = len(text) & 3
    if rem == 1:
        raise ValueError("impossible base64url length")
    std = text.translate(_TO_STD, _FOREIGN)
    if len(std) != len(text):
        raise ValueError("padding or standard-alphabet characters in base64url")
    if rem and text[-1] not in _CLEAN_TAIL[rem]:
        raise ValueError("non-zero trailing bits or bad final character")
    try:
        return binascii.a2b_base64(std + _PAD[rem], strict_mode=True)
    except binascii.Error as err:
        raise ValueError("not base64url") from err
