"""``bench bound``: the physical bound B on one core for a verification request.

In one run, on one CPU core (the *service core*):

* **V** — bare libsodium Ed25519 verifications per second (``crypto_sign_open`` on a typical
  token's signature and PAE, in a tight loop; :mod:`bench.coremicro` does the same).
* **H** — requests per second of a *minimal* aiohttp handler (one POST route answering a fixed
  JSON body, uvloop, no access log), served from the service core and driven by our own bench
  at its maximum rate (closed loop) from the other core(s).

Then ``B = 1 / (1/V + 1/H)``: the rate one worker could reach if a verification cost exactly one
signature check plus one bare aiohttp request. The service's own ``--max`` figure is compared
with B in docs/PERFORMANCE.md.

    bench bound [--core 0] [--duration 10s] [--connections 32] [--out bound.json]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from bench import results, runner
from bench.args import parse_duration

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


def measure_v(core: int, seconds: float = 3.0) -> float:
    """Bare libsodium verifications per second, in a child pinned to ``core``."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_v_child, args=(child, core, seconds))
    proc.start()
    rate = float(parent.recv())
    proc.join()
    return rate


def _v_child(pipe: Connection, core: int, seconds: float) -> None:
    _pin(core)
    from bench import coremicro
    from verifier import paseto

    _, bare, _, _ = coremicro._setup(500)
    lib, scratch, scratch_len = paseto._lib, paseto._scratch, paseto._scratch_len
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for signed, pk in bare:
            lib.crypto_sign_open(scratch, scratch_len, signed, len(signed), pk)
        done += len(bare)
    pipe.send(done / (time.perf_counter() - start))


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
    v = measure_v(options.core)
    h, h_doc = measure_h(options.core, options.duration_s, options.connections)
    b = 1.0 / (1.0 / v + 1.0 / h)
    return {
        "schema_version": 1,
        "kind": "bound",
        "core": options.core,
        "V_verifications_per_s": round(v),
        "H_minimal_aiohttp_rps": round(h),
        "B_bound_rps": round(b),
        "H_run": {k: h_doc[k] for k in ("achieved_rps", "valid", "invalid_reasons") if k in h_doc},
        "provenance": h_doc.get("provenance"),
        "host": socket.gethostname(),
    }


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bound", help="measure V, H and the per-core bound B = 1/(1/V + 1/H)")
    p.add_argument("--core", type=int, default=0, help="the service core (default 0)")
    p.add_argument(
        "--duration", type=parse_duration, default=10.0, help="how long to drive H (default 10s)"
    )
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    p.set_defaults(handler=_handle)


def _handle(ns: argparse.Namespace) -> int:
    doc = bound(BoundOptions(ns.core, ns.duration, ns.connections, ns.out))
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if ns.out is not None:
        ns.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_handle(argparse.Namespace(core=0, duration=5.0, connections=32, out=None)))
