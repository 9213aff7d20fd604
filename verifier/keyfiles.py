"""Key files on disk: PASERK text in, raw key bytes out; new secret keys written mode 0600.

Every failure is a ConfigError naming the file, so a command can print it as one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from verifier import paserk
from verifier.errors import ConfigError, KeyFormatError


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read key file {path}: {err}") from err


def read_secret_key(path: str | Path) -> bytes:
    """The 64-byte Ed25519 secret key of a k4.secret file."""
    try:
        return paserk.secret_from_paserk(_read(path))
    except KeyFormatError as err:
        raise ConfigError(f"{path}: {err}") from err


def read_public_key(path: str | Path) -> bytes:
    """A k4.public file; a k4.secret file is accepted too (its public half is used)."""
    text = _read(path)
    try:
        if text.startswith(paserk.SECRET_PREFIX):
            return paserk.secret_from_paserk(text)[32:]
        return paserk.public_from_paserk(text)
    except KeyFormatError as err:
        raise ConfigError(f"{path}: {err}") from err


def read_root_key(path: str | Path) -> bytes:
    """The root public key of ``VERIFIER_ROOT_KEY``; a ConfigError names the setting."""
    try:
        return read_public_key(path)
    except ConfigError as err:
        raise ConfigError(f"VERIFIER_ROOT_KEY: {err}") from err


def write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 (never briefly world-readable); refuse to overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise ConfigError(f"{path} already exists; refusing to overwrite a key") from err
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
