"""`verifier scanners add|list|revoke`: scanner credentials (only a hash of the secret is stored)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass

from verifier.cli.admin import STORE_EPILOG, admin_settings, check_id, fail, store_flags, with_store
from verifier.cli.common import print_json
from verifier.config import AdminSettings
from verifier.credentials import new_credential
from verifier.errors import ConfigError
from verifier.records import Institution, Scanner
from verifier.store import Store


@dataclass(frozen=True)
class AddOptions:
    store: AdminSettings
    institution: str


@dataclass(frozen=True)
class ListOptions:
    store: AdminSettings
    institution: str


@dataclass(frozen=True)
class RevokeOptions:
    store: AdminSettings
    scanner_id: str


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scanners",
        help="scanner credentials in the store",
        description="Issue, list and revoke the bearer credentials scanners call the service with.",
        epilog=STORE_EPILOG,
    )
    sc = p.add_subparsers(dest="scanners_command", required=True, metavar="COMMAND")

    add = sc.add_parser(
        "add",
        parents=[store_flags()],
        help="issue a credential for a new scanner of an institution",
        description="Create a scanner of INST and print its credential <scanner id>.<secret> "
        "on standard output, once: only a SHA-256 hash of the secret is stored, so it cannot "
        "be shown again. The scanner sends it as 'Authorization: Bearer <credential>'.",
        epilog=STORE_EPILOG,
    )
    add.add_argument("--institution", required=True, metavar="INST", help="an existing institution")
    add.set_defaults(func=_run_add)

    listing = sc.add_parser(
        "list",
        parents=[store_flags()],
        help="list an institution's scanners and whether each is revoked",
        description="Print the scanners of INST as JSON, revoked ones too: "
        '[{"id": "s-…", "institution": "INST", "revoked": false}, …], ordered by id. No '
        "secret or hash is shown. Exit 1 if there is no such institution.",
        epilog=STORE_EPILOG,
    )
    listing.add_argument("--institution", required=True, metavar="INST", help="institution id")
    listing.set_defaults(func=_run_list)

    revoke = sc.add_parser(
        "revoke",
        parents=[store_flags()],
        help="revoke a scanner's credential",
        description="Mark scanner ID revoked: its calls get 403 scanner_revoked within the "
        "service's auth cache time (VERIFIER_AUTH_CACHE_SECONDS, default 2 s). Exit 1 if "
        "there is no such scanner.",
        epilog=STORE_EPILOG,
    )
    revoke.add_argument("scanner_id", metavar="ID", help="scanner id, e.g. s-0123456789ab")
    revoke.set_defaults(func=_run_revoke)


def _run_add(a: argparse.Namespace) -> int:
    return add_scanner(AddOptions(admin_settings(a, os.environ), a.institution))


def _run_list(a: argparse.Namespace) -> int:
    return list_scanners(ListOptions(admin_settings(a, os.environ), a.institution))


def _run_revoke(a: argparse.Namespace) -> int:
    return revoke_scanner(RevokeOptions(admin_settings(a, os.environ), a.scanner_id))


def add_scanner(opts: AddOptions) -> int:
    """Store a new scanner of an existing institution and print its credential once."""
    inst_id = check_id(opts.institution, "--institution")
    credential, scanner = new_credential(inst_id)

    async def work(store: Store) -> Institution | None:
        inst = await store.get_institution(inst_id)
        if inst is not None:
            await store.put_scanner(scanner)
        return inst

    inst = with_store(opts.store, work)
    if inst is None:
        raise ConfigError(
            f"no institution {inst_id!r} in the store; add it first with `verifier institutions put`"
        )
    print(credential)
    print(
        f"scanner {scanner.id} added for institution {inst_id}. Keep the credential above now: "
        "it cannot be shown again (only a hash of it is stored).",
        file=sys.stderr,
    )
    if not inst.enabled:
        print(
            f"note: institution {inst_id} is disabled; this scanner's tokens get "
            "institution_not_enabled until it is enabled again",
            file=sys.stderr,
        )
    return 0


def list_scanners(opts: ListOptions) -> int:
    """Print the institution's scanners as JSON (id, institution, revoked); 1 if no such
    institution."""
    inst_id = check_id(opts.institution, "--institution")

    async def work(store: Store) -> tuple[Institution | None, list[Scanner]]:
        return await store.get_institution(inst_id), await store.scanners_of(inst_id)

    inst, scanners = with_store(opts.store, work)
    if inst is None and not scanners:
        return fail(f"no institution {inst_id!r} in the store")
    print_json([{"id": s.id, "institution": s.institution, "revoked": s.revoked} for s in scanners])
    revoked = sum(s.revoked for s in scanners)
    print(
        f"{len(scanners)} scanner(s) of institution {inst_id}, {revoked} revoked",
        file=sys.stderr,
    )
    return 0


def revoke_scanner(opts: RevokeOptions) -> int:
    """Mark a scanner revoked; 1 if the store has no such scanner."""
    scanner_id = check_id(opts.scanner_id, "ID")

    async def work(store: Store) -> Scanner | None:
        scanner = await store.get_scanner(scanner_id)
        if scanner is not None and not scanner.revoked:
            await store.put_scanner(dataclasses.replace(scanner, revoked=True))
        return scanner

    scanner = with_store(opts.store, work)
    if scanner is None:
        return fail(f"no scanner {scanner_id!r} in the store")
    state = "was already revoked" if scanner.revoked else "revoked"
    print(f"scanner {scanner_id} (institution {scanner.institution}) {state}")
    return 0
