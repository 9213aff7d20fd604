"""A small world for service tests: keys, a signed trust list, records, a running service.

``World`` makes the files a real deployment has (root key, trust list); ``running(world,
store)`` starts the real aiohttp app on a free port inside the current event loop.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from verifier import paserk, tokens, trust
from verifier.config import Settings, load_settings
from verifier.credentials import new_credential
from verifier.records import Institution
from verifier.registry import holder_from_fields
from verifier.service.server import open_runtime, start_site
from verifier.store.base import Store

HOSPITAL = "hosp-1"  # enabled for both card types
PHARMACY = "pharm-1"  # enabled for mi-voucher only
CLOSED = "clinic-x"  # designated but disabled
# Settings whose loader wants a duration with a unit, given here as seconds too
CLAIM_SECONDS = ("exp_leeway", "future_leeway", "max_lifetime", "clock_skew")

HOLDERS = (
    # sub, status, scheme, region, name, id number, balance, physical card
    ("alice", "active", "employee", "110101", "张三丰", "11010519491231002X", "1200.00", "active"),
    ("bob", "active", "retiree", "110101", None, None, "50.00", "active"),
    ("carol", "suspended", "employee", "110101", None, None, "0", "active"),
    ("dave", "terminated", "employee", "110101", None, None, "0", "active"),
    ("erin", "active", "employee", "110101", None, None, "10.00", "lost"),
)


@dataclass
class World:
    dir: Path
    root: paserk.KeyPair = field(default_factory=paserk.generate)
    nhsa: paserk.KeyPair = field(default_factory=paserk.generate)
    mohrss: paserk.KeyPair = field(default_factory=paserk.generate)
    credentials: dict[str, str] = field(default_factory=dict)  # institution -> credential
    scanner_ids: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.dir / "root.public").write_text(paserk.public_to_paserk(self.root.public))
        self.write_trust(version=1)

    def issuer_keys(self) -> dict[str, trust.IssuerKey]:
        return {
            self.nhsa.kid: trust.IssuerKey(
                self.nhsa.kid, self.nhsa.public, "nhsa", frozenset({"mi-voucher"})
            ),
            self.mohrss.kid: trust.IssuerKey(
                self.mohrss.kid, self.mohrss.public, "mohrss", frozenset({"ss-ecard"})
            ),
        }

    def write_trust(
        self, version: int, keys: dict[str, trust.IssuerKey] | None = None, ttl: float = 86400
    ) -> None:
        now = time.time()
        token = trust.sign(
            keys or self.issuer_keys(), self.root.secret, version, now - 10, now + ttl
        )
        tmp = self.dir / "trust.tmp"
        tmp.write_text(token)
        tmp.replace(self.dir / "trust.paseto")  # atomic, as an operator's deploy would do

    def settings(self, store_url: str, **extra: Any) -> Settings:
        """The service's settings, as the loader reads them; ``extra`` as flags would give them,
        except that a claim-policy duration may be a Python int of seconds (``max_lifetime=3``)."""
        for name in CLAIM_SECONDS:
            if isinstance(extra.get(name), int):
                extra[name] = f"{extra[name]}s"
        values = {
            "store": store_url,
            "trust_list": str(self.dir / "trust.paseto"),
            "root_key": str(self.dir / "root.public"),
            "listen": "127.0.0.1:0",
            "auth_cache_seconds": 0.0,
            "store_deadline_ms": 100,
            **extra,
        }
        return load_settings({}, values)

    def token(self, sub: str = "alice", card: str = "mi-voucher", **kw: Any) -> str:
        key, iss = (self.nhsa, "nhsa") if card == "mi-voucher" else (self.mohrss, "mohrss")
        kw.setdefault("iat", time.time())
        kw.setdefault("region", "110101")
        return tokens.mint(key.secret, iss=kw.pop("iss", iss), sub=sub, card=card, **kw)

    async def seed(self, store: Store) -> None:
        await store.put_institution(
            Institution(HOSPITAL, "City Hospital", frozenset({"mi-voucher", "ss-ecard"}))
        )
        await store.put_institution(
            Institution(PHARMACY, "Corner Pharmacy", frozenset({"mi-voucher"}))
        )
        await store.put_institution(
            Institution(CLOSED, "Closed Clinic", frozenset({"mi-voucher"}), enabled=False)
        )
        for inst in (HOSPITAL, PHARMACY, CLOSED):
            credential, scanner = new_credential(inst)
            await store.put_scanner(scanner)
            self.credentials[inst] = credential
            self.scanner_ids[inst] = scanner.id
        for row in HOLDERS:
            await store.put_holder(holder_from_fields(*row))


@dataclass
class Service:
    url: str
    http: aiohttp.ClientSession
    world: World
    runtime: Any
    site: Any = None  # verifier.service.server.Site

    async def verify(
        self,
        token: str | None = None,
        *,
        inst: str = HOSPITAL,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        path: str = "/v1/verify",
    ) -> tuple[int, dict[str, Any]]:
        h = {"Authorization": f"Bearer {self.world.credentials[inst]}"} if inst else {}
        h.update(headers or {})
        if json is None and data is None:
            json = {"token": token}
        async with self.http.post(self.url + path, json=json, data=data, headers=h) as resp:
            body = await resp.read()
            try:
                doc = orjson.loads(body) if body else {}
            except ValueError:
                doc = {"_raw": body.decode(errors="replace")}
            doc["_status"] = resp.status
            doc["_headers"] = dict(resp.headers)
            return resp.status, doc


@asynccontextmanager
async def running(
    world: World, store_url: str, store: Store | None = None, **extra: Any
) -> AsyncIterator[Service]:
    settings = world.settings(store_url, **extra)
    rt = await open_runtime(settings, store)
    await world.seed(rt.store)
    runner = await start_site(rt, "127.0.0.1", 0, reuse_port=False)
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            yield Service(f"http://127.0.0.1:{port}", http, world, rt, runner)
    finally:
        await runner.cleanup()
        await rt.store.close()
