"""`verifier gateways add|list|revoke`: gateway sidecar credentials (only a hash is stored)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass

from verifier.cli.admin import STORE_EPILOG, admin_settings, check_id, fail, store_flags, with_store
from verifier.cli.common import print_json
from verifier.config import AdminSettings
from verifier.credentials import new_gateway_credential
from verifier.errors import ConfigError
from verifier.records import Gateway, Institution
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
    gateway_id: str


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gateways",
        help="gateway sidecar credentials in the store",
        description="Issue, list and revoke the credentials gateway sidecars call the central "
        "service with. A gateway acts for its institution only: it reads that institution's "
        "scanner directory and the trust list, and reconciles the scans it accepted offline.",
        epilog=STORE_EPILOG,
    )
    gw = p.add_subparsers(dest="gateways_command", required=True, metavar="COMMAND")

    add = gw.add_parser(
        "add",
        parents=[store_flags()],
        help="issue a credential for a new gateway of an institution",
        description="Create a gateway of INST and print its credential <gateway id>.<secret> "
        "on standard output, once: only a SHA-256 hash of the secret is stored, so it cannot "
        "be shown again. Give it to the sidecar as VERIFIER_GATEWAY_CREDENTIAL.",
        epilog=STORE_EPILOG,
    )
    add.add_argument("--institution", required=True, metavar="INST", help="an existing institution")
    add.set_defaults(func=_run_add)

    listing = gw.add_parser(
        "list",
        parents=[store_flags()],
        help="list an institution's gateways and whether each is revoked",
        description="Print the gateways of INST as JSON, revoked ones too: "
        '[{"id": "g-…", "institution": "INST", "revoked": false}, …], ordered by id. No '
        "secret or hash is shown.",
        epilog=STORE_EPILOG,
    )
    listing.add_argument("--institution", required=True, metavar="INST", help="institution id")
    listing.set_defaults(func=_run_list)

    revoke = gw.add_parser(
        "revoke",
        parents=[store_flags()],
        help="revoke a gateway's credential",
        description="Mark gateway ID revoked: its next call gets 403 gateway_revoked (its "
        "scanners keep their own credentials). Exit 1 if there is no such gateway.",
        epilog=STORE_EPILOG,
    )
    revoke.add_argument("gateway_id", metavar="ID", help="gateway id, e.g. g-0123456789ab")
    revoke.set_defaults(func=_run_revoke)


def _run_add(a: argparse.Namespace) -> int:
    return add_gateway(AddOptions(admin_settings(a, os.environ), a.institution))


def _run_list(a: argparse.Namespace) -> int:
    return list_gateways(ListOptions(admin_settings(a, os.environ), a.institution))


def _run_revoke(a: argparse.Namespace) -> int:
    return revoke_gateway(RevokeOptions(admin_settings(a, os.environ), a.gateway_id))


def add_gateway(opts: AddOptions) -> int:
    """Store a new gateway of an existing institution and print its credential once."""
    inst_id = check_id(opts.institution, "--institution")
    credential, gateway = new_gateway_credential(inst_id)

    async def work(store: Store) -> Institution | None:
        inst = await store.get_institution(inst_id)
        if inst is not None:
            await store.put_gateway(gateway)
        return inst

    if with_store(opts.store, work) is None:
        raise ConfigError(
            f"no institution {inst_id!r} in the store; add it first with `verifier institutions put`"
        )
    print(credential)
    print(
        f"gateway {gateway.id} added for institution {inst_id}. Keep the credential above now: "
        "it cannot be shown again (only a hash of it is stored).",
        file=sys.stderr,
    )
    return 0


def list_gateways(opts: ListOptions) -> int:
    """Print the institution's gateways as JSON (id, institution, revoked)."""
    inst_id = check_id(opts.institution, "--institution")

    async def work(store: Store) -> list[Gateway]:
        return await store.gateways_of(inst_id)

    gateways = with_store(opts.store, work)
    print_json([{"id": g.id, "institution": g.institution, "revoked": g.revoked} for g in gateways])
    revoked = sum(g.revoked for g in gateways)
    print(
        f"{len(gateways)} gateway(s) of institution {inst_id}, {revoked} revoked", file=sys.stderr
    )
    return 0


def revoke_gateway(opts: RevokeOptions) -> int:
    """Mark a gateway revoked; 1 if the store has no such gateway."""
    gateway_id = check_id(opts.gateway_id, "ID")

    async def work(store: Store) -> Gateway | None:
        gateway = await store.get_gateway(gateway_id)
        if gateway is not None and not gateway.revoked:
            await store.put_gateway(dataclasses.replace(gateway, revoked=True))
        return gateway

    gateway = with_store(opts.store, work)
    if gateway is None:
        return fail(f"no gateway {gateway_id!r} in the store")
    state = "was already revoked" if gateway.revoked else "revoked"
    print(f"gateway {gateway_id} (institution {gateway.institution}) {state}")
    return 0
