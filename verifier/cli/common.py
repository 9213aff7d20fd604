"""Small helpers shared by the command-line modules: key files, durations, output."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import orjson

from verifier import paserk
from verifier.errors import ConfigError, KeyFormatError

_DURATION = re.compile(r"([0-9]+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'90', '90s', '15m', '12h', '30d' -> seconds."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or int(m[1]) == 0:
        raise ConfigError(f"bad duration {text!r}: use e.g. 90s, 15m, 12h, 30d")
    return int(m[1]) * _UNITS[m[2]]


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read key file {path}: {err}") from err


def read_secret_key(path: str | Path) -> bytes:
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


def write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 (never briefly world-readable); refuse to overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise ConfigError(f"{path} already exists; refusing to overwrite a key") from err
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def print_json(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def qr_text(data: str) -> str:
    """The data drawn as a QR code with terminal half-block characters."""
    import qrcode  # imported lazily: only the commands that draw need it

    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    qr.add_data(data)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()
