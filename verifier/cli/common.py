"""Small helpers shared by the command-line modules: durations, output."""

from __future__ import annotations

import io
import sys

import orjson

from verifier import durations
from verifier.errors import ConfigError


def parse_duration(flag: str, text: str) -> int:
    """Whole seconds, more than zero, of a lifetime flag such as ``--valid-for 30d``.

    The grammar is :func:`verifier.durations.parse_duration` (a bare number is refused); every
    ConfigError names ``flag``.
    """
    ms = durations.parse_duration(flag, text)
    if ms == 0:
        raise ConfigError(f"{flag}: a lifetime must be more than zero, got {text!r}")
    if ms % 1000:
        raise ConfigError(f"{flag}: whole seconds only, got {text!r}")
    return ms // 1000


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
