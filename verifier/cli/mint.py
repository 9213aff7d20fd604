"""`verifier mint`: sign a QR token with an issuer key (what the patient's app shows)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from verifier import tokens
from verifier.cli.common import parse_duration, qr_text
from verifier.keyfiles import read_secret_key
from verifier.records import CARD_TYPES


@dataclass(frozen=True)
class MintOptions:
    key: Path
    iss: str
    sub: str
    card: str
    region: str
    ttl: int  # seconds, more than zero
    qr: bool


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mint", help="print a freshly signed QR token")
    p.add_argument("--key", required=True, help="issuer secret key file (k4.secret)")
    p.add_argument("--iss", required=True, help="issuer id, e.g. nhsa or mohrss")
    p.add_argument("--sub", required=True, help="holder id")
    p.add_argument("--card", required=True, choices=CARD_TYPES)
    p.add_argument("--region", default="110101", help="6-digit region code (default 110101)")
    p.add_argument(
        "--ttl",
        default="60s",
        help="lifetime with a unit, e.g. 60s or 5m (default 60s; the service accepts at most "
        "VERIFIER_MAX_LIFETIME, default 5m)",
    )
    p.add_argument("--qr", action="store_true", help="also draw the token as a QR code")
    p.set_defaults(
        func=lambda a: mint(
            MintOptions(
                Path(a.key), a.iss, a.sub, a.card, a.region, parse_duration("--ttl", a.ttl), a.qr
            )
        )
    )


def mint(opts: MintOptions) -> int:
    token = tokens.mint(
        read_secret_key(opts.key),
        iss=opts.iss,
        sub=opts.sub,
        card=opts.card,
        region=opts.region,
        iat=time.time(),
        ttl=opts.ttl,
    )
    if opts.qr:
        print(qr_text(token))
    print(token)
    return 0
