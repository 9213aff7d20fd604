"""`verifier registry put|get|import`: insured holders in the store (identity kept masked)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from verifier import registry
from verifier.cli.admin import (
    STORE_EPILOG,
    Progress,
    admin_settings,
    check_id,
    fail,
    store_flags,
    with_store,
)
from verifier.cli.common import print_json
from verifier.config import AdminSettings
from verifier.errors import ConfigError, RecordError, StoreUnavailable
from verifier.records import HOLDER_STATUSES, PHYSICAL_CARD_STATES, SCHEMES, Holder
from verifier.store import Store

IMPORT_EPILOG = f"""\
FILE is JSON Lines (UTF-8): one JSON object per line, one holder per object, with the
same fields as `registry put`:

  required  "sub"            holder id, the token's sub (1-64 of A-Z a-z 0-9 _ -)
            "status"         {" | ".join(HOLDER_STATUSES)}
            "scheme"         {" | ".join(SCHEMES)}
            "region"         6-digit region code of the insured region
  optional  "name"           full name; only the masked form is stored
            "id_number"      18-character citizen ID number, checked; only its mask is stored
            "balance"        personal account balance in yuan, a STRING: "1234.50" (default "0")
            "physical_card"  {" | ".join(PHYSICAL_CARD_STATES)} (default none)

Example line:
  {{"sub": "h-0001", "status": "active", "scheme": "employee", "region": "110105", "name": "张三明", "id_number": "11010519491231002X", "balance": "1250.00", "physical_card": "active"}}

Unknown keys, a sub given twice and a JSON number as balance are errors. Blank lines and a
UTF-8 byte order mark are ignored. The whole file is checked before anything is written: if
any line is bad, the bad lines are listed (with line numbers) and nothing is imported. A holder
already in the store with the same sub is replaced.

{STORE_EPILOG}"""


@dataclass(frozen=True)
class PutOptions:
    store: AdminSettings
    sub: str
    status: str
    scheme: str
    region: str
    name: str | None = None
    id_number: str | None = None
    balance: str | None = None
    physical_card: str | None = None


@dataclass(frozen=True)
class GetOptions:
    store: AdminSettings
    sub: str


@dataclass(frozen=True)
class ImportOptions:
    store: AdminSettings
    path: Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "registry",
        help="insured holders in the store",
        description="Write and read the holders the service checks coverage against.",
        epilog=STORE_EPILOG,
    )
    rs = p.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")

    put = rs.add_parser(
        "put",
        parents=[store_flags()],
        help="add or replace one holder; print the stored (masked) record",
        description="Validate one holder, store it (replacing any with the same SUB) and "
        "print the stored record as JSON. Name and ID number are stored masked only.",
        epilog=STORE_EPILOG,
    )
    put.add_argument("sub", metavar="SUB", help="holder id, the token's sub")
    put.add_argument("--status", required=True, choices=HOLDER_STATUSES)
    put.add_argument("--scheme", required=True, choices=SCHEMES)
    put.add_argument("--region", required=True, metavar="CODE", help="6-digit region code")
    put.add_argument("--name", help="full name (stored masked, e.g. 张*明)")
    put.add_argument(
        "--id-number",
        metavar="ID",
        help="18-character citizen ID number (only its mask is stored); '-' reads it from "
        "standard input, which keeps it out of shell history and the process list",
    )
    put.add_argument("--balance", metavar="YUAN", help="personal account balance, e.g. 1250.00")
    put.add_argument("--physical-card", choices=PHYSICAL_CARD_STATES, help="default: none")
    put.set_defaults(func=_run_put)

    get = rs.add_parser(
        "get",
        parents=[store_flags()],
        help="print one holder's stored (masked) record",
        description="Print the stored record of SUB as JSON; exit 1 if there is none.",
        epilog=STORE_EPILOG,
    )
    get.add_argument("sub", metavar="SUB", help="holder id")
    get.set_defaults(func=_run_get)

    imp = rs.add_parser(
        "import",
        parents=[store_flags()],
        help="check a JSONL file of holders, then store them all",
        description="Import holders from a JSON Lines file, all or nothing as far as "
        "checking goes; progress is shown on standard error, the count on standard output.",
        epilog=IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", metavar="FILE.jsonl", help="JSON Lines file of holders")
    imp.set_defaults(func=_run_import)


def _run_put(a: argparse.Namespace) -> int:
    id_number = a.id_number
    if id_number == "-":
        id_number = sys.stdin.readline().strip()
    opts = PutOptions(
        admin_settings(a, os.environ),
        a.sub,
        a.status,
        a.scheme,
        a.region,
        a.name,
        id_number,
        a.balance,
        a.physical_card,
    )
    return put_holder(opts)


def _run_get(a: argparse.Namespace) -> int:
    return get_holder(GetOptions(admin_settings(a, os.environ), a.sub))


def _run_import(a: argparse.Namespace) -> int:
    return import_holders(ImportOptions(admin_settings(a, os.environ), Path(a.file)))


def put_holder(opts: PutOptions) -> int:
    """Validate and store one holder, then print its stored (masked) record as JSON."""
    holder = registry.holder_from_fields(
        opts.sub,
        opts.status,
        opts.scheme,
        opts.region,
        name=opts.name,
        id_number=opts.id_number,
        balance=opts.balance,
        physical_card=opts.physical_card,
    )
    with_store(opts.store, lambda store: store.put_holder(holder))
    print_json(registry.holder_to_json(holder))
    return 0


def get_holder(opts: GetOptions) -> int:
    """Print the stored record of one holder as JSON; 1 if the store has none."""
    sub = check_id(opts.sub, "SUB")
    holder = with_store(opts.store, lambda store: store.get_holder(sub))
    if holder is None:
        return fail(f"no holder {sub!r} in the store")
    print_json(registry.holder_to_json(holder))
    return 0


def read_holders(path: Path) -> list[Holder]:
    """Every holder in the JSONL file at ``path``; RecordError listing bad lines if any."""
    try:
        with path.open(encoding="utf-8") as f:
            return registry.parse_jsonl(f)
    except registry.RegistryFileError as err:
        listed = "\n".join(f"  {line}" for line in err.errors)
        more = err.count - len(err.errors)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise RecordError(
            f"{path}: {err.count} bad line(s); nothing was imported\n{listed}{tail}"
        ) from err
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"cannot read {path}: not UTF-8 ({err.reason} at byte {err.start})"
        ) from err


def import_holders(opts: ImportOptions) -> int:
    """Check the whole file, then store every holder in pipelined chunks; print the count."""
    holders = read_holders(opts.path)
    progress = Progress(len(holders), sys.stderr, sys.stderr.isatty())

    async def work(store: Store) -> int:
        return await store.put_holders(holders, on_progress=progress.update)

    try:
        count = with_store(opts.store, work)
    except StoreUnavailable as err:
        raise StoreUnavailable(
            f"{err}; {progress.done} of {len(holders)} holder(s) were written before that, "
            "and importing the file again is safe (records are replaced)"
        ) from err
    finally:
        progress.finish()
    print(f"imported {count} holder(s) from {opts.path}")
    return 0
