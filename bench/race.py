"""``bench race``: one token, sent on many connections at the same instant; one may win.

The single-use guarantee is only as good as the nonce claim under concurrency. To make the
copies collide as closely as possible, every connection is opened first and sent its
request *except the last byte*; the server parses the head and waits for the body. Once
every partial request is out, the last bytes are written on all connections in one loop
that never yields to the event loop, so the service receives all complete requests within
microseconds. Exactly one copy must be valid (``"valid": true``), all others ``replayed``.

    bench race --target URL --credential SCANNER (--token TOKEN |
               --key ISSUER.secret --iss nhsa --sub SUB [--card mi-voucher]) [--copies 50]

Exit status: 0 if exactly one copy was valid and the rest replayed, 1 otherwise, 2 if the
race could not be run (no connection, no answer in time).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.http1 import ProtocolError, build_request, parse_response, split_target
from verifier import tokens
from verifier.errors import ConfigError
from verifier.keyfiles import read_secret_key
from verifier.records import CARD_TYPES

MAX_COPIES = 1000
SETTLE_S = 0.05  # after the partial requests: lets the service read every head
_LOOPBACK = ("localhost", "::1")


class RaceError(RuntimeError):
    """The race could not be run at all (bad target, refused connection, time-out)."""


@dataclass(frozen=True)
class RaceOptions:
    """One race: *copies* connections, each sending *token* once."""

    target: str
    credential: str
    token: str
    copies: int = 50
    json_body: bool = False
    timeout_s: float = 10.0
    allow_remote: bool = False


@dataclass
class RaceResult:
    """Verdict per copy (``reason``, ``http_<status>`` or ``protocol_error``) and how many
    copies the service called valid."""

    copies: int
    verdicts: Counter[str] = field(default_factory=Counter)
    valid: int = 0

    @property
    def passed(self) -> bool:
        """Exactly one copy valid, every other one refused as ``replayed``."""
        return self.valid == 1 and self.verdicts.get("replayed", 0) == self.copies - 1


def check_options(opts: RaceOptions) -> tuple[str, int, str]:
    """Host, port and path of the target; raises :class:`RaceError` for bad options."""
    try:
        host, port, path = split_target(opts.target)
    except ValueError as err:
        raise RaceError(str(err)) from err
    if not (opts.allow_remote or host.startswith("127.") or host in _LOOPBACK):
        raise RaceError(f"target host {host!r} is not loopback (pass --allow-remote)")
    if not 1 <= opts.copies <= MAX_COPIES:
        raise RaceError(f"--copies must be 1..{MAX_COPIES}")
    if not opts.token.isascii():
        raise RaceError("the token must be ASCII text")
    return host, port, path


async def run_race(opts: RaceOptions) -> RaceResult:
    """Run the race in the current event loop (see the module docstring)."""
    host, port, path = check_options(opts)
    if opts.json_body:
        ctype, body = "application/json", orjson.dumps({"token": opts.token})
    else:
        ctype, body = "text/plain", opts.token.encode("ascii")
    request = build_request(host, port, path, opts.credential, ctype, body)
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        async with asyncio.timeout(opts.timeout_s):
            for _ in range(opts.copies):
                streams.append(await asyncio.open_connection(host, port))
            for _, writer in streams:
                writer.write(request[:-1])
            await asyncio.gather(*(writer.drain() for _, writer in streams))
            await asyncio.sleep(SETTLE_S)
            for _, writer in streams:  # no await in this loop: all copies leave together
                writer.write(request[-1:])
            answers = await asyncio.gather(*(_answer(reader) for reader, _ in streams))
    except TimeoutError as err:
        raise RaceError(f"no complete answer within {opts.timeout_s:g} s") from err
    except OSError as err:
        raise RaceError(f"connection to {host}:{port} failed: {err}") from err
    finally:
        for _, writer in streams:
            writer.close()
    result = RaceResult(opts.copies)
    for verdict, valid in answers:
        result.verdicts[verdict] += 1
        result.valid += valid
    return result


def race(opts: RaceOptions) -> RaceResult:
    """:func:`run_race` in a fresh event loop."""
    return asyncio.run(run_race(opts))


async def _answer(reader: asyncio.StreamReader) -> tuple[str, bool]:
    """Read one response: its verdict and whether it said ``"valid": true``."""
    buf = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return "connection_closed", False
        buf += chunk
        try:
            parsed = parse_response(buf)
        except ProtocolError:
            return "protocol_error", False
        if parsed is not None:
            break
    consumed, verdict = parsed
    if verdict.startswith("http_") or verdict == "bad_json":
        return verdict, False
    document = orjson.loads(buf[buf.find(b"\r\n\r\n") + 4 : consumed])  # a 200 in JSON
    return verdict, isinstance(document, dict) and document.get("valid") is True


def render(result: RaceResult, target: str) -> str:
    """The count per verdict and the outcome, for the terminal."""
    lines = [f"{result.copies} copies of one token on {result.copies} connections to {target}:"]
    for verdict, n in result.verdicts.most_common():
        lines.append(f"  {verdict:<28} {n:>5}")
    lines.append(f"  {'(valid: true)':<28} {result.valid:>5}")
    if result.passed:
        lines.append(f"PASS: exactly one copy valid, {result.copies - 1} replayed")
    else:
        lines.append(f"FAIL: {result.valid} valid; expected exactly 1 and every other replayed")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``bench race``."""
    p = sub.add_parser(
        "race",
        help="send one token on many connections at once: exactly one may be valid",
        description="Open --copies connections, send the same token on all of them at the "
        "same instant, and count the verdicts. Exit 0 only if exactly one copy is valid "
        "and every other one is replayed; 1 otherwise; 2 if the race could not run.",
    )
    p.add_argument("--target", required=True, help="URL, e.g. http://127.0.0.1:8080/v1/verify")
    p.add_argument("--credential", required=True, help="scanner credential (Bearer token)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--token", help="the token to send (must be fresh and unused)")
    which.add_argument("--key", type=Path, help="mint a fresh token with this issuer k4.secret")
    p.add_argument("--iss", help="issuer id for --key, e.g. nhsa")
    p.add_argument("--sub", help="holder id for --key")
    p.add_argument("--card", default="mi-voucher", choices=CARD_TYPES, help="for --key")
    p.add_argument("--region", default="110101", help="for --key (default 110101)")
    p.add_argument("--copies", type=int, default=50, help="connections, one copy each (50)")
    p.add_argument("--json", action="store_true", help='send {"token": …} JSON bodies')
    p.add_argument("--timeout", type=float, default=10.0, help="seconds for the whole race")
    p.add_argument("--allow-remote", action="store_true", help="permit a non-loopback target")
    p.set_defaults(handler=_run)


def _run(a: argparse.Namespace) -> int:
    try:
        if a.token is not None:
            token = a.token.strip()
        elif not a.iss or not a.sub:
            raise RaceError("--key needs --iss and --sub")
        else:
            secret = read_secret_key(a.key)
            token = tokens.mint(
                secret, iss=a.iss, sub=a.sub, card=a.card, region=a.region, iat=time.time()
            )
        opts = RaceOptions(
            a.target, a.credential, token, a.copies, a.json, a.timeout, a.allow_remote
        )
        result = race(opts)
    except (RaceError, ConfigError) as err:
        print(f"bench race: error: {err}", file=sys.stderr)
        return 2
    print(render(result, a.target))
    return 0 if result.passed else 1
