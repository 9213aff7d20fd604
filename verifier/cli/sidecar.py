"""`verifier sidecar`: run the gateway sidecar; `verifier sidecar journal`: list its journal."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import orjson

from verifier.config import SidecarSettings, load
from verifier.sidecar.journal import STATES
from verifier.sidecar.journal_file import JournalFile

DESCRIPTION = (
    "Serve the scanner API on a hospital's network: online, every scan is forwarded to the "
    "central service (--upstream); when it cannot be reached in time, scans are decided "
    "offline, journalled durably (--journal) and reconciled with the centre once it is back. "
    "Settings come from flags, then VERIFIER_* environment variables (the gateway credential "
    "only from VERIFIER_GATEWAY_CREDENTIAL or the config file, never a flag), then the config "
    "file."
)


EPILOG = """\
other settings (environment or config file; durations take a unit, e.g. 90s, 12h):
  VERIFIER_GATEWAY_CREDENTIAL   <gateway id>.<secret> from `verifier gateways add` (required)
  VERIFIER_UPSTREAM_TIMEOUT_MS  a scan's wait for the centre, then offline (300)
  VERIFIER_OFFLINE_LIMIT        offline acceptances per holder per window (2)
  VERIFIER_OFFLINE_WINDOW       the budget's window (24h)
  VERIFIER_OFFLINE_MAX_AMOUNT   yuan per holder per window offline (500.00)
  VERIFIER_OFFLINE_MAX_AGE      how long after losing the centre scans are accepted offline (12h)
  VERIFIER_SYNC_INTERVAL        scanner directory and trust list sync (10s)
  VERIFIER_LOG_LEVEL, VERIFIER_LOG_FORMAT (text|json), VERIFIER_ACCESS_LOG, and the connection
  and claim-policy settings of `verifier serve`; docs/OPERATIONS.md, "Gateway sidecars"."""


@dataclass(frozen=True)
class JournalOptions:
    journal: str
    state: str | None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sidecar",
        help="run the gateway sidecar",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--upstream", help="the central service, http://HOST:PORT (VERIFIER_UPSTREAM)")
    p.add_argument(
        "--listen", help="HOST:PORT for scanners (VERIFIER_LISTEN, default 127.0.0.1:8080)"
    )
    p.add_argument("--journal", help="journal file (VERIFIER_JOURNAL, default sidecar.db)")
    p.add_argument("--trust-list", help="local trust list copy (VERIFIER_TRUST_LIST)")
    p.add_argument("--root-key", help="root public key file (VERIFIER_ROOT_KEY)")
    p.add_argument("--config", help="TOML config file (VERIFIER_CONFIG)")
    p.set_defaults(func=_run)
    sc = p.add_subparsers(dest="sidecar_command", metavar="COMMAND")
    j = sc.add_parser(
        "journal",
        help="print the journal as JSON lines",
        description="One JSON object per journalled offline acceptance, oldest first: holder "
        "id (sub), request id, scanner, times, amount, state and the centre's detail. Never a "
        "token or an ID number. Safe while the sidecar runs.",
    )
    j.add_argument(
        "--journal",
        default=argparse.SUPPRESS,
        help="journal file (VERIFIER_JOURNAL, default sidecar.db)",
    )
    j.add_argument("--state", choices=STATES, help="only rows in this state")
    j.set_defaults(func=_run_journal)


def _run(a: argparse.Namespace) -> int:
    from verifier.sidecar.server import run_sidecar  # aiohttp and friends only when serving

    overrides = {
        "upstream": a.upstream,
        "listen": a.listen,
        "journal": a.journal,
        "trust_list": a.trust_list,
        "root_key": a.root_key,
    }
    return run_sidecar(load(SidecarSettings, os.environ, overrides, a.config))


def _run_journal(a: argparse.Namespace) -> int:
    path = getattr(a, "journal", None) or os.environ.get("VERIFIER_JOURNAL") or "sidecar.db"
    return print_journal(JournalOptions(path, a.state))


def print_journal(opts: JournalOptions) -> int:
    """Write the journal's rows as JSON lines to standard output."""
    journal = JournalFile.open(opts.journal, create=False)
    try:
        out = sys.stdout.buffer
        for entry in journal.iter_rows(opts.state):
            out.write(orjson.dumps(entry.public(), option=orjson.OPT_APPEND_NEWLINE))
        out.flush()
    finally:
        journal.close()
    return 0
