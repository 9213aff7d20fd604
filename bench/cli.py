"""``bench``: the command line. Parses flags into frozen option objects; the work is in the library.

Every subcommand lives in its own module, listed in :data:`COMMANDS`. A command module
provides ``add_parser(subparsers)``, which adds its sub-parser and sets ``handler``: a
function from the parsed ``argparse.Namespace`` to an exit status. To add a command
(``corpus``, ``race``, ``quick`` …), write such a module and append one line here.

``bench --version`` prints the code version: the package version and, from a git
checkout, the commit (the same text the report and the plot carry).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from bench.results import current_code_version
from bench.runner import SettingsError

#: (subcommand, module) in the order ``bench --help`` lists them.
COMMANDS: list[tuple[str, str]] = [
    ("run", "bench.run_cmd"),
    ("report", "bench.report"),
    ("plot", "bench.plot"),
    ("compare", "bench.compare"),
    ("find-max", "bench.findmax"),
    ("calibrate", "bench.calibrate"),
    ("corpus", "bench.corpus_cmd"),
    ("race", "bench.race"),
    ("quick", "bench.quick"),
    ("bound", "bench.bound"),
]


class _VersionAction(argparse.Action):
    """``--version``: asks git only when given, not on every ``bench`` start."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"bench {current_code_version()}")
        parser.exit()


def build_parser(commands: Sequence[tuple[str, str]] | None = None) -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per entry of *commands* (:data:`COMMANDS`)."""
    parser = argparse.ArgumentParser(
        prog="bench", description="Open-loop load-test bench for the QR token verifier."
    )
    parser.add_argument("--version", action=_VersionAction, help="print the code version")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for _, module in COMMANDS if commands is None else commands:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bench`` console script; returns the exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return int(ns.handler(ns))
    except SettingsError as err:
        parser.error(str(err))
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
