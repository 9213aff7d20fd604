"""`verifier check`: verify one token offline against a signed trust list."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from verifier import core, rfc3339, trust
from verifier.cli.common import print_json
from verifier.errors import ConfigError, TokenError
from verifier.keyfiles import read_public_key
from verifier.policy import ClaimPolicy


@dataclass(frozen=True)
class CheckOptions:
    token: str
    trust: Path
    root: Path
    at: float | None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="verify a token; exit 0 only if it is valid")
    p.add_argument("token", help="the token, or - to read it from standard input")
    p.add_argument("--trust", required=True, help="signed trust list file")
    p.add_argument("--root", required=True, help="root public key file")
    p.add_argument("--at", default=None, help="verify as of this RFC 3339 time instead of now")
    p.set_defaults(func=_run)


def _run(a: argparse.Namespace) -> int:
    at = None
    if a.at is not None:
        try:
            at = rfc3339.parse(a.at)
        except ValueError as err:
            raise ConfigError(f"--at: {err}") from err
    token = sys.stdin.read().strip() if a.token == "-" else a.token.strip()
    return check(CheckOptions(token, Path(a.trust), Path(a.root), at))


def check(opts: CheckOptions) -> int:
    now = time.time() if opts.at is None else opts.at
    # The trust list itself is checked at the same instant, so --at can look back in time.
    tl = trust.load_file(opts.trust, read_public_key(opts.root), now)
    try:
        v = core.verify(opts.token, tl, ClaimPolicy(), now)
    except TokenError as err:
        print_json({"valid": False, "reason": err.reason, "detail": err.detail})
        return 1
    print_json(
        {
            "valid": True,
            "reason": "ok",
            "claims": {
                "iss": v.iss,
                "sub": v.sub,
                "jti": v.jti,
                "card": v.card,
                "region": v.region,
                "iat": rfc3339.format(v.iat),
                "exp": rfc3339.format(v.exp),
                "nbf": None if v.nbf is None else rfc3339.format(v.nbf),
                "kid": v.kid,
            },
        }
    )
    return 0
