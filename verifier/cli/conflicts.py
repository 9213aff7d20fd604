"""`verifier conflicts list`: tokens used twice, found when gateways reconciled offline scans."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson

from verifier import rfc3339
from verifier.cli.admin import STORE_EPILOG, admin_settings, store_flags, with_store
from verifier.config import AdminSettings
from verifier.durations import parse_duration
from verifier.errors import ConfigError
from verifier.records import Conflict, Use
from verifier.store import Store


@dataclass(frozen=True)
class ListOptions:
    store: AdminSettings
    since: float  # Unix seconds; 0 for all


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "conflicts",
        help="double uses found by reconciling gateways' offline scans",
        description="A conflict is a token accepted offline by a gateway sidecar that was also "
        "used elsewhere: at the central service, or through another gateway.",
        epilog=STORE_EPILOG,
    )
    cc = p.add_subparsers(dest="conflicts_command", required=True, metavar="COMMAND")
    listing = cc.add_parser(
        "list",
        parents=[store_flags()],
        help="print conflicts as JSON lines, oldest first",
        description="Print one JSON object per conflict, oldest first: "
        '{"detected_at", "holder", "nonce", "first": USE, "second": USE}, where USE is '
        '{"institution", "gateway", "scanner", "request_id", "at"} ("gateway" null for a use at '
        'the central service; "at" null when no longer known). "holder" is the holder id; no '
        "token or ID number is ever printed.",
        epilog=STORE_EPILOG,
    )
    listing.add_argument(
        "--since",
        metavar="TIME",
        help="only conflicts found at or after TIME: RFC 3339 (2026-12-01T00:00:00+08:00) or a "
        "duration back from now (24h, 7d)",
    )
    listing.set_defaults(func=_run_list)


def parse_since(text: str | None, now: float) -> float:
    """Unix seconds for ``--since``: RFC 3339, or a duration before ``now``; ConfigError."""
    if text is None:
        return 0.0
    try:
        return rfc3339.parse(text.strip())
    except ValueError:
        pass  # not a time: perhaps a duration
    try:
        return now - parse_duration("--since", text) / 1000
    except ConfigError as err:
        raise ConfigError(
            f"--since: expected an RFC 3339 time or a duration such as 24h, got {text!r}"
        ) from err


def _run_list(a: argparse.Namespace) -> int:
    return list_conflicts(
        ListOptions(admin_settings(a, os.environ), parse_since(a.since, time.time()))
    )


def _use(use: Use) -> dict[str, Any]:
    return {
        "institution": use.institution,
        "gateway": use.gateway,
        "scanner": use.scanner,
        "request_id": use.request_id,
        "at": None if use.at is None else rfc3339.format(use.at),
    }


def conflict_view(c: Conflict) -> dict[str, Any]:
    """One line of ``conflicts list``."""
    return {
        "detected_at": rfc3339.format(c.detected_at),
        "holder": c.holder,
        "nonce": c.nonce,
        "first": _use(c.first),
        "second": _use(c.second),
    }


def list_conflicts(opts: ListOptions) -> int:
    """Print the conflicts found since ``opts.since`` as JSON lines; the count on stderr."""

    async def work(store: Store) -> list[Conflict]:
        return await store.conflicts(opts.since)

    found = with_store(opts.store, work)
    for c in found:
        sys.stdout.write(orjson.dumps(conflict_view(c)).decode() + "\n")
    print(f"{len(found)} conflict(s)", file=sys.stderr)
    return 0
