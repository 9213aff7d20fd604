"""``bench bound``: the physical bound B on one core for a verification request.

In one run, on one CPU core (the *service core*):

* **V** — Ed25519 signature checks per second: libsodium's ``crypto_sign_open``, through the
  library's :func:`verifier.paseto.open_signed`, on the bytes a typical token's check reads
  (signature ‖ PAE), in a tight loop.
* **C** — full token-core verdicts per second (:func:`verifier.core.verify`: size limits,
  footer, trust list, signature, claims) on the same tokens, in slices interleaved with V's.
  Not part of B; B is what no verifier can beat, C what this one pays.
* **H** — requests per second of a *minimal* aiohttp handler (one POST route answering a fixed
  JSON body, uvloop, no access log), served from the service core and driven by our own bench
  at its maximum rate (closed loop) from the other core(s).

Then ``B = 1 / (1/V + 1/H)``: the rate one worker could reach if a verification cost exactly one
signature check plus one bare aiohttp request. The service's own ``--max`` figure is compared
with B in docs/PERFORMANCE.md. The tokens and their trust list are built here, with the
library's public minting and signing functions.

    bench bound [--core 0] [--duration 10s] [--connections 32] [--out bound.json]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from bench import results, runner
from bench.args import parse_duration
from verifier import b64url, paserk, paseto, trust
from verifier.core import verify as verify_token
from verifier.policy import ClaimPolicy
from verifier.tokens import mint

_BODY = b'{"valid":true,"reason":"ok","covered":true}'


@dataclass(frozen=True)
class BoundOptions:
    core: int
    duration_s: float
    connections: int
    out: Path | None


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def _other_cores(core: int) -> set[int]:
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    return (cores - {core}) or cores


@dataclass(frozen=True)
class TokenSet:
    """Distinct tokens of one issuer, the trust list that accepts them, and for each token the
    bytes its signature check reads (signature ‖ PAE) with the issuer's public key."""

    tokens: list[str]
    trust_list: trust.TrustList
    signed: list[bytes]
    public: bytes
    now: float


def token_set(count: int, now: float) -> TokenSet:
    """``count`` tokens as a scanner fleet sees them: distinct holders and nonces, issue times
    spread over a minute before ``now``."""
    root, issuer = paserk.generate(), paserk.generate()
    keys = {
        issuer.kid: trust.IssuerKey(issuer.kid, issuer.public, "nhsa", frozenset({"mi-voucher"}))
    }
    trust_list = trust.load(
        trust.sign(keys, root.secret, 1, now - 60, now + 3600), root.public, now
    )
    minted = [
        mint(
            issuer.secret,
            iss="nhsa",
            sub=f"holder-{i:06d}",
            card="mi-voucher",
            region="110101",
            iat=now - (i % 60),
        )
        for i in range(count)
    ]
    signed = []
    for token in minted:
        # v4.public.<payload>.<footer>; payload = m || s. The check reads s || PAE(h, m, f, i).
        payload, footer = token.encode("ascii")[len(paseto.HEADER) :].split(b".")
        raw = b64url.decode(payload)
        m, s = raw[: -paseto.SIG_BYTES], raw[-paseto.SIG_BYTES :]
        signed.append(s + paseto.pae(paseto.HEADER, m, b64url.decode(footer), b""))
    return TokenSet(minted, trust_list, signed, issuer.public, now)


def check(made: TokenSet) -> None:
    """Raise unless the token core accepts every token and every signature check passes."""
    policy = ClaimPolicy()
    for token in made.tokens:
        verify_token(token, made.trust_list, policy, made.now)  # raises TokenError
    if not all(paseto.open_signed(signed, made.public) for signed in made.signed):
        raise AssertionError("a signature check failed on a genuine token")


def measure_v(core: int, seconds: float = 3.0) -> tuple[float, float]:
    """(V, C): signature checks and token-core verdicts per second, in a child pinned to
    ``core``, each for about ``seconds`` in interleaved slices."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_v_child, args=(child, core, seconds))
    proc.start()
    child.close()  # the child's end is the child's alone: its exit ends our recv()
    try:
        v, c = parent.recv()
    except EOFError:
        raise RuntimeError("the process measuring V and C exited without a figure") from None
    finally:
        proc.join()
    return float(v), float(c)


_SLICE_S = 0.5  # V and C alternate in slices this long, so both see the machine alike


def _slice(one_pass: Callable[[], int]) -> tuple[int, float]:
    """(operations, seconds) of repeated ``one_pass`` calls for about one slice."""
    done, start = 0, time.perf_counter()
    while (spent := time.perf_counter() - start) < _SLICE_S:
        done += one_pass()
    return done, spent


def _v_child(pipe: Connection, core: int, seconds: float) -> None:
    _pin(core)
    made = token_set(500, time.time())
    check(made)
    policy, trust_list, now, public = ClaimPolicy(), made.trust_list, made.now, made.public
    open_signed, verify = paseto.open_signed, verify_token

    def signatures() -> int:
        for signed in made.signed:
            open_signed(signed, public)
        return len(made.signed)

    def verdicts() -> int:
        for token in made.tokens:
            verify(token, trust_list, policy, now)
        return len(made.tokens)

    v_done = c_done = 0
    v_spent = c_spent = 0.0
    while v_spent < seconds or c_spent < seconds:
        done, spent = _slice(signatures)
        v_done, v_spent = v_done + done, v_spent + spent
        done, spent = _slice(verdicts)
        c_done, c_spent = c_done + done, c_spent + spent
    pipe.send((v_done / v_spent, c_done / c_spent))


def _h_server(pipe: Connection, core: int) -> None:
    """The minimal aiohttp handler, pinned to the service core, on a free loopback port."""
    _pin(core)
    import asyncio

    import uvloop
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=_BODY, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/verify", handle)
        runner_ = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner_.setup()
        site = web.TCPSite(runner_, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner_.addresses[0][1]
        pipe.send(port)
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # until told to stop
        await runner_.cleanup()

    uvloop.run(main())


def measure_h(core: int, duration_s: float, connections: int) -> tuple[float, dict[str, Any]]:
    """Max requests per second of the minimal handler on ``core``, driven from other cores."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_h_server, args=(child, core), daemon=True)
    server.start()
    try:
        port = int(parent.recv())
        saved = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        if saved is not None:
            os.sched_setaffinity(0, _other_cores(core))
        try:
            settings = runner.RunSettings(
                target=f"http://127.0.0.1:{port}/v1/verify",
                credential="bound",
                rate=None,
                duration_s=duration_s,
                connections=connections,
                warmup_s=1.0,
            )
            count = int(duration_s * 200_000)
            outcome = runner.run(settings, runner.SyntheticSource(count, expected="ok"))
        finally:
            if saved is not None:
                os.sched_setaffinity(0, saved)
        doc = results.build(outcome, kind="bound-h")
        return float(doc["achieved_rps"]), doc
    finally:
        parent.send("stop")
        server.join(5)
        if server.is_alive():
            server.kill()


def bound(options: BoundOptions) -> dict[str, Any]:
    v, c = measure_v(options.core)
    h, h_doc = measure_h(options.core, options.duration_s, options.connections)
    b = 1.0 / (1.0 / v + 1.0 / h)
    return {
        "schema_version": 1,
        "kind": "bound",
        "core": options.core,
        "V_verifications_per_s": round(v),
        "C_core_verifications_per_s": round(c),
        "H_minimal_aiohttp_rps": round(h),
        "B_bound_rps": round(b),
        "H_run": {k: h_doc[k] for k in ("achieved_rps", "valid", "invalid_reasons") if k in h_doc},
        "provenance": h_doc.get("provenance"),
        "host": socket.gethostname(),
    }


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bound", help="measure V, C, H and the per-core bound B = 1/(1/V + 1/H)")
    p.add_argument("--core", type=int, default=0, help="the service core (default 0)")
    p.add_argument(
        "--duration", type=parse_duration, default=10.0, help="how long to drive H (default 10s)"
    )
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    p.set_defaults(handler=_handle)


def _handle(ns: argparse.Namespace) -> int:
    try:
        doc = bound(BoundOptions(ns.core, ns.duration, ns.connections, ns.out))
    except (RuntimeError, runner.RunError) as err:
        print(f"bench bound: {err}", file=sys.stderr)
        return 2
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if ns.out is not None:
        ns.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_handle(argparse.Namespace(core=0, duration=5.0, connections=32, out=None)))
