"""Small helpers shared by the command-line modules: durations, output."""

from __future__ import annotations

import io
import re
import sys

import orjson

from verifier.errors import ConfigError

_DURATION = re.compile(r"([0-9]+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'90', '90s', '15m', '12h', '30d' -> seconds."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or int(m[1]) == 0:
        raise ConfigError(f"bad duration {text!r}: use e.g. 90s, 15m, 12h, 30d")
    return int(m[1]) * _UNITS[m[2]]


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
