"""`verifier demo --sidecar`: the gateway sidecar's whole path in one process, no Redis.

A centre (embedded store) and a sidecar in front of it, each on its own free port on loopback,
and a scanner talking to the sidecar: a scan online (the centre's verdict), the link cut (the
centre stops listening), a scan offline (journalled, settle later) and its replay refused, the
link back (the centre listens again), and the journal drained by reconciliation on its own.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from verifier import paserk, tokens, trust
from verifier.config import SidecarSettings, load, load_settings
from verifier.credentials import new_credential, new_gateway_credential
from verifier.records import Institution
from verifier.registry import holder_from_fields
from verifier.service.server import open_runtime, start_site
from verifier.sidecar.server import open_sidecar, start_sidecar_site
from verifier.store.memory import MemoryStore

INSTITUTION = "demo-hospital"
HOLDERS = (
    ("demo-alice", "active", "employee", "110101", "张三丰", None, "1200.00", "active"),
    ("demo-bob", "active", "retiree", "110101", "李四", None, "80.00", "active"),
)


async def demo_sidecar() -> int:
    """Run the story once; 0 when every step got the answer it should."""
    logging.getLogger("verifier.sidecar").setLevel(logging.ERROR)  # the story says it all
    with tempfile.TemporaryDirectory(prefix="verifier-sidecar-demo-") as tmp:
        d = Path(tmp)
        root, nhsa = paserk.generate(), paserk.generate()
        keys = {nhsa.kid: trust.IssuerKey(nhsa.kid, nhsa.public, "nhsa", frozenset({"mi-voucher"}))}
        now = time.time()
        (d / "trust.paseto").write_text(trust.sign(keys, root.secret, 1, now, now + 86400))
        (d / "root.public").write_text(paserk.public_to_paserk(root.public))
        store = MemoryStore()
        await store.put_institution(
            Institution(INSTITUTION, "Demo People's Hospital", frozenset({"mi-voucher"}))
        )
        credential, scanner = new_credential(INSTITUTION)
        await store.put_scanner(scanner)
        gateway_credential, gateway = new_gateway_credential(INSTITUTION)
        await store.put_gateway(gateway)
        for row in HOLDERS:
            await store.put_holder(holder_from_fields(*row))
        centre_settings = load_settings(
            {},
            {
                "store": "memory://",
                "trust_list": str(d / "trust.paseto"),
                "root_key": str(d / "root.public"),
                "auth_cache_seconds": 0.0,
            },
        )
        centre_rt = await open_runtime(centre_settings, store)
        centre = await start_site(centre_rt, "127.0.0.1", 0, reuse_port=False)
        port = centre.addresses[0][1]
        print(f"centre:  http://127.0.0.1:{port} (store: memory://)")
        sidecar = await open_sidecar(
            load(
                SidecarSettings,
                {},
                {
                    "upstream": f"http://127.0.0.1:{port}",
                    "gateway_credential": gateway_credential,
                    "root_key": str(d / "root.public"),
                    "journal": str(d / "sidecar.db"),
                    "sync_interval": "1s",
                },
            )
        )
        await sidecar.syncer.sync_once()
        site = await start_sidecar_site(sidecar, "127.0.0.1", 0)
        sidecar.start_background()
        url = f"http://127.0.0.1:{site.addresses[0][1]}"
        print(f"sidecar: {url} (journal {d / 'sidecar.db'}; trust list and scanners synced)\n")
        try:
            async with aiohttp.ClientSession() as http:
                story = Story(http, url, credential, nhsa.secret)
                ok = await story.online()
                await centre.cleanup()
                print("\n-- the link to the centre is cut (the centre stops listening)")
                ok = await story.offline() and ok
                centre = await start_site(centre_rt, "127.0.0.1", port, reuse_port=False)
                print("\n-- the link is back")
                ok = await story.drained(sidecar.journal.counts) and ok
        finally:
            await site.cleanup()
            await sidecar.close()
            await centre.cleanup()
            await store.close()
    print("\nSidecar demo passed." if ok else "\nSidecar demo FAILED.")
    return 0 if ok else 1


class Story:
    def __init__(self, http: aiohttp.ClientSession, url: str, credential: str, key: bytes):
        self.http, self.url, self.key = http, url, key
        self.headers = {"Authorization": f"Bearer {credential}"}
        self.offline_token = ""

    def token(self, sub: str) -> str:
        return tokens.mint(
            self.key, iss="nhsa", sub=sub, card="mi-voucher", region="110101", iat=time.time()
        )

    async def scan(self, what: str, token: str, request_id: str) -> dict[str, Any]:
        body = {"token": token, "request_id": request_id}
        async with self.http.post(self.url + "/v1/verify", json=body, headers=self.headers) as r:
            doc: dict[str, Any] = await r.json()
        shown = {
            k: doc[k] for k in ("valid", "reason", "covered", "mode", "settle_later") if k in doc
        }
        print(f"{what:<34} {r.status} {orjson.dumps(shown).decode()}")
        return doc

    async def status(self) -> dict[str, Any]:
        async with self.http.get(self.url + "/v1/gateway/status") as r:
            doc: dict[str, Any] = await r.json()
        return doc

    async def online(self) -> bool:
        doc = await self.scan("scan online (forwarded):", self.token("demo-alice"), "demo-1")
        return doc.get("mode") == "online" and doc.get("covered") is True

    async def offline(self) -> bool:
        self.offline_token = self.token("demo-bob")
        first = await self.scan("scan offline (journalled first):", self.offline_token, "demo-2")
        again = await self.scan("the same QR code again:", self.offline_token, "demo-3")
        s = await self.status()
        print(f"status: {s['pending']} pending; the centre unanswered since {s['offline_since']}")
        return (
            first.get("mode") == "offline"
            and first.get("settle_later") is True
            and again.get("reason") == "replayed"
        )

    async def drained(self, counts: Any) -> bool:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and counts()["pending"]:
            await asyncio.sleep(0.1)
        s = await self.status()
        print(
            f"status: mode {s['mode']}, {s['pending']} pending, {s['confirmed']} confirmed, "
            f"{s['conflict']} conflict, {s['rejected']} rejected (reconciled by itself)"
        )
        doc = await self.scan("the offline QR code, now online:", self.offline_token, "demo-4")
        return s["pending"] == 0 and s["confirmed"] == 1 and doc.get("reason") == "replayed"
