"""`verifier demo`: everything in one process, no Redis, no files to prepare.

Makes throw-away keys and a signed trust list, a designated hospital with a scanner
credential and a few insured people in the embedded store, starts the service, prints a
fresh token as a QR code with a ready-to-paste curl line, verifies it once and replays it to
show the refusal, then keeps serving until Ctrl-C (``--once`` exits after the self-check).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

from verifier import paserk, tokens, trust
from verifier.cli.common import qr_text
from verifier.config import load_settings
from verifier.credentials import new_credential
from verifier.errors import ConfigError
from verifier.keyfiles import write_private
from verifier.records import Institution
from verifier.registry import holder_from_fields
from verifier.service.server import install_uvloop, open_runtime, start_site
from verifier.store.memory import MemoryStore

INSTITUTION = "demo-hospital"
TOKEN_TTL = 60  # seconds a shown token stays valid (the service accepts up to 300)
# Sample people; the ID numbers carry valid check digits and are stored masked only.
PEOPLE = (
    (
        "demo-alice",
        "active",
        "employee",
        "110101",
        "张三丰",
        "11010519491231002X",
        "1200.00",
        "active",
    ),
    ("demo-bob", "active", "retiree", "110101", "李四", None, "80.00", "active"),
    ("demo-carol", "suspended", "resident", "310101", "王小明", None, "0", "none"),
    ("demo-dave", "active", "employee", "440301", "赵六", None, "300.00", "lost"),
)


@dataclass(frozen=True)
class DemoOptions:
    listen: str
    once: bool


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a self-contained demo (no Redis needed)")
    p.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        help="HOST:PORT (default 127.0.0.1:8080; port 0 = any free)",
    )
    p.add_argument("--once", action="store_true", help="exit after the self-check")
    p.add_argument(
        "--sidecar",
        action="store_true",
        help="the gateway sidecar instead: centre and sidecar, a scan online, the link cut, "
        "a scan offline, the link back, the journal drained (free ports; ends by itself)",
    )
    p.set_defaults(func=_run)


def _run(a: argparse.Namespace) -> int:
    if a.sidecar:
        from verifier.cli.demo_sidecar import demo_sidecar

        install_uvloop()
        return asyncio.run(demo_sidecar())
    return demo(DemoOptions(a.listen, a.once))


def demo(opts: DemoOptions) -> int:
    install_uvloop()
    try:
        return asyncio.run(_demo(opts))
    except KeyboardInterrupt:
        return 0


async def _demo(opts: DemoOptions) -> int:
    with tempfile.TemporaryDirectory(prefix="verifier-demo-") as tmp:
        d = Path(tmp)
        root, nhsa, mohrss = paserk.generate(), paserk.generate(), paserk.generate()
        keys = {
            nhsa.kid: trust.IssuerKey(nhsa.kid, nhsa.public, "nhsa", frozenset({"mi-voucher"})),
            mohrss.kid: trust.IssuerKey(
                mohrss.kid, mohrss.public, "mohrss", frozenset({"ss-ecard"})
            ),
        }
        now = time.time()
        (d / "trust.paseto").write_text(trust.sign(keys, root.secret, 1, now, now + 86400))
        (d / "root.public").write_text(paserk.public_to_paserk(root.public))
        # The issuer keys, so the "Mint more tokens" hint works while the demo runs.
        write_private(d / "nhsa.secret", paserk.secret_to_paserk(nhsa.secret))
        write_private(d / "mohrss.secret", paserk.secret_to_paserk(mohrss.secret))
        settings = load_settings(
            {},
            {
                "store": "memory://",
                "trust_list": str(d / "trust.paseto"),
                "root_key": str(d / "root.public"),
                "listen": opts.listen,
                "auth_cache_seconds": 0.0,
            },
        )
        store = MemoryStore()
        rt = await open_runtime(settings, store)
        await store.put_institution(
            Institution(
                INSTITUTION, "Demo People's Hospital", frozenset({"mi-voucher", "ss-ecard"})
            )
        )
        credential, scanner = new_credential(INSTITUTION)
        await store.put_scanner(scanner)
        for sub, status, scheme, region, name, id_number, balance, card in PEOPLE:
            await store.put_holder(
                holder_from_fields(sub, status, scheme, region, name, id_number, balance, card)
            )
        host, port = settings.host_port
        try:
            runner = await start_site(rt, host, port, reuse_port=False)
        except OSError as err:
            raise ConfigError(
                f"--listen {opts.listen}: {err.strerror}; try --listen 127.0.0.1:0"
            ) from err
        port = runner.addresses[0][1]
        url = f"http://{host}:{port}/v1/verify"
        try:
            ok = await _show(url, credential, nhsa.secret, opts.once)
            if opts.once:
                return 0 if ok else 1
            print(f"\nServing on http://{host}:{port} (store: memory://). Press Ctrl-C to stop.")
            print(
                "Mint more tokens while the demo runs (its keys live in "
                f"{d} until it stops):\n\n"
                f"  verifier mint --key {shlex.quote(str(d / 'nhsa.secret'))} --iss nhsa "
                "--sub demo-alice --card mi-voucher\n"
                f"  verifier mint --key {shlex.quote(str(d / 'mohrss.secret'))} --iss mohrss "
                "--sub demo-bob --card ss-ecard\n\n"
                "(other holders: demo-carol, suspended; demo-dave, physical card lost). Send one "
                "with the curl line above, its token replaced.",
                flush=True,  # seen at once when the output goes to a pipe or a file
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
            return 0
        finally:
            await runner.cleanup()
            await store.close()


async def _show(url: str, credential: str, issuer_secret: bytes, once: bool) -> bool:
    def fresh() -> str:
        return tokens.mint(
            issuer_secret,
            iss="nhsa",
            sub="demo-alice",
            card="mi-voucher",
            region="110101",
            iat=time.time(),
            ttl=TOKEN_TTL,
        )

    shown = fresh()
    until = time.strftime("%H:%M:%S", time.localtime(time.time() + TOKEN_TTL))
    print("A patient's QR code (electronic medical insurance voucher of demo-alice):\n")
    print(qr_text(shown))
    print(f"It is valid for {TOKEN_TTL} s (until {until}), and for one scan only.")
    if not once:  # with --once the service is gone before anyone could paste the line
        print("Verify it yourself (the first scan is valid, the next says 'replayed'):\n")
        body = {"token": shown, "service": "inpatient", "amount": "1000.00"}
        print(
            f"  curl -s -X POST {url} -H {shlex.quote('Authorization: Bearer ' + credential)} "
            f"-H 'Content-Type: application/json' "
            f"-d {shlex.quote(orjson.dumps(body).decode())}\n"
        )
    token = fresh()  # the self-check uses its own token so the one shown stays unused
    headers = {"Authorization": f"Bearer {credential}"}
    async with aiohttp.ClientSession() as http:
        first = await _post(http, url, headers, token)
        second = await _post(http, url, headers, token)
    print("Self-check, first scan: ", _summary(first))
    print("Self-check, second scan:", _summary(second))
    ok = (
        first.get("valid") is True
        and first.get("covered") is True
        and second.get("reason") == "replayed"
    )
    print("Self-check passed." if ok else "Self-check FAILED.")
    return ok


async def _post(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], token: str
) -> dict[str, object]:
    body = {"token": token, "service": "inpatient", "amount": "1000.00"}
    async with http.post(url, json=body, headers=headers) as resp:
        data = await resp.json()
        return data if isinstance(data, dict) else {}


def _summary(v: dict[str, object]) -> str:
    return orjson.dumps(
        {k: v[k] for k in ("valid", "reason", "covered", "holder", "settlement") if k in v}
    ).decode()
