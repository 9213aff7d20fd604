"""`verifier keys new`: make an Ed25519 key pair as PASERK files."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from verifier import paserk
from verifier.errors import ConfigError
from verifier.keyfiles import write_private

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class NewKeyOptions:
    name: str
    directory: Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="key management")
    ks = p.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    new = ks.add_parser(
        "new", help="write NAME.secret (mode 0600) and NAME.public, print the k4.pid"
    )
    new.add_argument("--name", required=True, help="file name stem, e.g. root or nhsa-2026")
    new.add_argument("--dir", default=".", help="directory to write into (default: .)")
    new.set_defaults(func=lambda a: new_key(NewKeyOptions(a.name, Path(a.dir))))


def new_key(opts: NewKeyOptions) -> int:
    if not _NAME.fullmatch(opts.name):
        raise ConfigError("--name must be 1-64 characters of letters, digits, '.', '_' or '-'")
    if not opts.directory.is_dir():
        raise ConfigError(f"--dir {opts.directory} is not a directory")
    pair = paserk.generate()
    secret_path = opts.directory / f"{opts.name}.secret"
    public_path = opts.directory / f"{opts.name}.public"
    if public_path.exists():
        raise ConfigError(f"{public_path} already exists; refusing to overwrite a key")
    write_private(secret_path, paserk.secret_to_paserk(pair.secret))
    public_path.write_text(paserk.public_to_paserk(pair.public) + "\n")
    print(pair.kid)
    return 0
