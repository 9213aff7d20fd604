"""`verifier institutions put|get`: designated institutions and the cards they may accept."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from verifier import registry
from verifier.cli.admin import STORE_EPILOG, admin_settings, check_id, fail, store_flags, with_store
from verifier.cli.common import print_json
from verifier.config import AdminSettings
from verifier.records import CARD_TYPES


@dataclass(frozen=True)
class PutOptions:
    store: AdminSettings
    inst_id: str
    name: str
    cards: str
    enabled: bool = True


@dataclass(frozen=True)
class GetOptions:
    store: AdminSettings
    inst_id: str


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "institutions",
        help="designated hospitals and pharmacies in the store",
        description="Write and read designated institutions and the card types they accept.",
        epilog=STORE_EPILOG,
    )
    ins = p.add_subparsers(dest="institutions_command", required=True, metavar="COMMAND")

    put = ins.add_parser(
        "put",
        parents=[store_flags()],
        help="add or replace one institution; print the stored record",
        description="Store INST as designated and enabled for the card types in --cards "
        "(replacing any record with the same id), and print the stored record as JSON. "
        "Its scanners are refused with institution_not_enabled for any other card type, "
        "and for every card while it is disabled.",
        epilog=STORE_EPILOG,
    )
    put.add_argument("inst_id", metavar="INST", help="institution id (1-64 of A-Z a-z 0-9 _ -)")
    put.add_argument("--name", required=True, help="the institution's name")
    put.add_argument(
        "--cards",
        required=True,
        metavar="LIST",
        help=f"comma-separated card types it accepts: {', '.join(CARD_TYPES)}",
    )
    put.add_argument(
        "--disable",
        action="store_true",
        help="store it disabled: its scanners get institution_not_enabled for every token",
    )
    put.set_defaults(func=_run_put)

    get = ins.add_parser(
        "get",
        parents=[store_flags()],
        help="print one institution's stored record",
        description="Print the stored record of INST as JSON; exit 1 if there is none.",
        epilog=STORE_EPILOG,
    )
    get.add_argument("inst_id", metavar="INST", help="institution id")
    get.set_defaults(func=_run_get)


def _run_put(a: argparse.Namespace) -> int:
    opts = PutOptions(admin_settings(a, os.environ), a.inst_id, a.name, a.cards, not a.disable)
    return put_institution(opts)


def _run_get(a: argparse.Namespace) -> int:
    return get_institution(GetOptions(admin_settings(a, os.environ), a.inst_id))


def put_institution(opts: PutOptions) -> int:
    """Validate and store one institution, then print its stored record as JSON."""
    inst = registry.institution_from_fields(opts.inst_id, opts.name, opts.cards, opts.enabled)
    with_store(opts.store, lambda store: store.put_institution(inst))
    print_json(registry.institution_to_json(inst))
    return 0


def get_institution(opts: GetOptions) -> int:
    """Print the stored record of one institution as JSON; 1 if the store has none."""
    inst_id = check_id(opts.inst_id, "INST")
    inst = with_store(opts.store, lambda store: store.get_institution(inst_id))
    if inst is None:
        return fail(f"no institution {inst_id!r} in the store")
    print_json(registry.institution_to_json(inst))
    return 0
