"""The `verifier` command: parse arguments, call the library, turn errors into one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from verifier import __version__
from verifier.errors import VerifierError

# One module per command group; each has add_parser(subparsers) that sets `func`.
COMMANDS = (
    "keys",
    "trust",
    "mint",
    "check",
    "serve",
    "sidecar",
    "registry",
    "institutions",
    "scanners",
    "gateways",
    "conflicts",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verifier",
        description="Verify electronic medical insurance / social security QR tokens.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"verifier.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VerifierError as err:
        print(f"verifier: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
