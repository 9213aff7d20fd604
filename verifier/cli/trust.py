"""`verifier trust sign|show`: the root-signed list of trusted issuer keys."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from verifier import paserk, rfc3339, trust
from verifier.cli.common import parse_duration, print_json
from verifier.keyfiles import read_public_key, read_secret_key


@dataclass(frozen=True)
class SignOptions:
    source: Path
    root: Path
    out: Path
    valid_for: int
    version: int | None


@dataclass(frozen=True)
class ShowOptions:
    path: Path
    root: Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trust", help="sign or show a trust list")
    ts = p.add_subparsers(dest="trust_command", required=True, metavar="COMMAND")
    s = ts.add_parser("sign", help="sign a JSON/TOML list of issuer keys with the root key")
    s.add_argument(
        "source",
        help='JSON or TOML file: {"keys": [{"public": "k4.public…", "issuer": "nhsa", "cards": ["mi-voucher"], "state": "active"}]}',
    )
    s.add_argument("--root", required=True, help="root secret key file (k4.secret)")
    s.add_argument("--out", required=True, help="where to write the signed list, e.g. trust.paseto")
    s.add_argument(
        "--valid-for",
        default="30d",
        help="lifetime of the list with a unit, e.g. 30d or 12h (default 30d)",
    )
    s.add_argument(
        "--version",
        type=int,
        default=None,
        help="list version (default: current Unix time, so newer lists win)",
    )
    s.set_defaults(
        func=lambda a: sign(
            SignOptions(
                Path(a.source),
                Path(a.root),
                Path(a.out),
                parse_duration("--valid-for", a.valid_for),
                a.version,
            )
        )
    )
    sh = ts.add_parser("show", help="verify a signed list and print it as JSON")
    sh.add_argument("path")
    sh.add_argument("--root", required=True, help="root public key file (k4.public)")
    sh.set_defaults(func=lambda a: show(ShowOptions(Path(a.path), Path(a.root))))


def sign(opts: SignOptions) -> int:
    keys = trust.load_source(opts.source)
    root = read_secret_key(opts.root)
    now = time.time()
    version = opts.version if opts.version is not None else int(now)
    token = trust.sign(keys, root, version, now, now + opts.valid_for)
    opts.out.write_text(token + "\n")
    print(
        f"signed trust list version {version} with {len(keys)} key(s), root "
        f"{paserk.pid(root[32:])}, valid until {rfc3339.format(now + opts.valid_for)}"
    )
    return 0


def show(opts: ShowOptions) -> int:
    tl = trust.load_file(opts.path, read_public_key(opts.root), time.time())
    print_json(tl.to_json())
    return 0
