"""The sidecar's framing of the endpoint, in one process: a real centre (memory store) and a
real sidecar in front of it, on loopback. What the process tests do not look at closely:
what is forwarded, what comes back, who is admitted, and the sidecar's own documents.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from nacl.signing import SigningKey
from service_world import HOSPITAL, World, running

from verifier import paserk
from verifier.config import SidecarSettings, load
from verifier.credentials import new_credential, new_gateway_credential
from verifier.errors import ALL_REASONS, SIDECAR_REASONS, ConfigError
from verifier.records import Institution
from verifier.service.server import Site
from verifier.sidecar.directory import Directory
from verifier.sidecar.server import Sidecar, open_sidecar, start_sidecar_site

pytestmark = pytest.mark.timeout(30)


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


@dataclasses.dataclass
class Pair:
    world: World
    http: aiohttp.ClientSession
    url: str  # the sidecar's
    sidecar: Sidecar
    stranger: str  # a credential the centre knows and the sidecar's directory does not
    site: Site

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.url + path) as resp:
            return resp.status, orjson.loads(await resp.read())

    async def post(
        self, path: str, credential: str | None, **kw: Any
    ) -> tuple[int, dict[str, Any]]:
        headers = kw.pop("headers", {})
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        async with self.http.post(self.url + path, headers=headers, **kw) as resp:
            return resp.status, orjson.loads(await resp.read())


@asynccontextmanager
async def pair(tmp_path: Path, **settings: Any) -> AsyncIterator[Pair]:
    world = World(tmp_path)
    async with running(world, "memory://") as centre:
        # The directory of an earlier sync: the hospital's scanner, but not the stranger.
        stranger, scanner = new_credential(HOSPITAL)
        await centre.runtime.store.put_scanner(scanner)
        gateway_credential, gateway = new_gateway_credential(HOSPITAL)
        await centre.runtime.store.put_gateway(gateway)
        known = await centre.runtime.store.get_scanner(world.scanner_ids[HOSPITAL])
        inst = Institution(HOSPITAL, "City Hospital", frozenset({"mi-voucher", "ss-ecard"}))
        journal = tmp_path / "sidecar.db"
        Directory(inst, {known.id: known}).save(Path(f"{journal}.scanners.json"))
        shutil.copy(world.dir / "trust.paseto", f"{journal}.trust.paseto")
        values = {
            "upstream": centre.url,
            "gateway_credential": gateway_credential,
            "root_key": str(world.dir / "root.public"),
            "journal": str(journal),
            "listen": "127.0.0.1:0",
            **settings,
        }
        sidecar = await open_sidecar(load(SidecarSettings, {}, values))
        site = await start_sidecar_site(sidecar, "127.0.0.1", 0)
        port = site.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as http:
                yield Pair(world, http, f"http://127.0.0.1:{port}", sidecar, stranger, site)
        finally:
            await site.cleanup()
            await sidecar.close()


@in_loop
async def test_online_answer_is_the_centres_with_mode_added(tmp_path: Path) -> None:
    async with pair(tmp_path) as p:
        cred = p.world.credentials[HOSPITAL]
        token = p.world.token(sub="alice")
        body = {"token": token, "request_id": "r-1", "service": "inpatient", "amount": "10.00"}
        status, doc = await p.post("/v1/verify", cred, json=body)
        assert status == 200
        assert (doc["reason"], doc["covered"], doc["mode"], doc["request_id"]) == (
            "ok",
            True,
            "online",
            "r-1",
        )
        assert doc["settlement"]["amount"] == "10.00"
        # The same request again is a retry at the centre: same scanner, same request id.
        status, again = await p.post("/v1/verify", cred, json=body)
        assert again == doc
        # text/plain goes on as text/plain, with a request id the sidecar made.
        status, doc = await p.post(
            "/v1/verify",
            cred,
            data=p.world.token(sub="bob"),
            headers={"Content-Type": "text/plain"},
        )
        assert (status, doc["reason"], doc["mode"]) == (200, "ok", "online")
        assert doc["request_id"].startswith("gw-")


@in_loop
async def test_admission_rules_are_the_endpoints(tmp_path: Path) -> None:
    async with pair(tmp_path) as p:
        cred = p.world.credentials[HOSPITAL]
        status, doc = await p.post("/v1/verify", None, json={"token": "x"})
        assert (status, doc["error"]) == (401, "unauthorized")
        status, doc = await p.post("/v1/verify", cred, data=b"x" * 9000)
        assert (status, doc["error"]) == (413, "body_too_large")
        status, doc = await p.post("/v1/verify", cred, json={"token": 1})
        assert (status, doc["error"]) == (400, "malformed_request")
        status, doc = await p.post(
            "/v1/verify", cred, data=b"{}", headers={"Content-Type": "application/xml"}
        )
        assert (status, doc["error"]) == (415, "unsupported_media_type")


@in_loop
async def test_a_scanner_the_directory_does_not_know_is_the_centres_to_judge(
    tmp_path: Path,
) -> None:
    async with pair(tmp_path) as p:
        token = p.world.token(sub="alice")
        status, doc = await p.post("/v1/verify", p.stranger, json={"token": token})
        assert (status, doc["reason"], doc["mode"]) == (200, "ok", "online")
        # A credential nobody issued: the centre's 401 comes back as the same refusal.
        forged = p.stranger.split(".")[0].replace("s-", "s-f")[:14] + "." + "B" * 43
        status, doc = await p.post("/v1/verify", forged, json={"token": token})
        assert (status, doc["error"]) == (401, "unauthorized")
        # Offline, only the directory admits.
        p.sidecar.breaker.state = "open"
        p.sidecar.breaker.next_probe_at = 2**62  # no probe during the test
        status, doc = await p.post("/v1/verify", p.stranger, json={"token": token})
        assert (status, doc["error"]) == (401, "unauthorized")
        status, doc = await p.post(
            "/v1/verify", p.world.credentials[HOSPITAL], json={"token": p.world.token()}
        )
        assert (status, doc["mode"], doc["settle_later"]) == (200, "offline", True)


@in_loop
async def test_batch_items_are_forwarded_one_by_one(tmp_path: Path) -> None:
    async with pair(tmp_path) as p:
        token = p.world.token(sub="alice")
        items = [{"token": token, "request_id": "b-1"}, {"token": token, "request_id": "b-2"}]
        status, doc = await p.post(
            "/v1/verify/batch", p.world.credentials[HOSPITAL], json={"items": items}
        )
        assert status == 200
        reasons = sorted(r["reason"] for r in doc["results"])
        assert reasons == ["ok", "replayed"]
        assert {r["mode"] for r in doc["results"]} == {"online"}


@in_loop
async def test_status_and_the_sidecars_api_document(tmp_path: Path) -> None:
    async with pair(tmp_path) as p:
        async with p.http.get(p.url + "/v1/gateway/status") as resp:
            status = await resp.json()
        assert status["mode"] == "online" and status["offline_since"] is None
        assert {status[s] for s in ("pending", "confirmed", "conflict", "rejected")} == {0}
        async with p.http.get(p.url + "/metrics") as resp:
            metrics = (await resp.read()).decode()
        assert "\nverifier_sidecar_online 1\n" in metrics
        assert 'verifier_sidecar_journal_rows{state="pending"} 0' in metrics
        assert "verifier_verdicts_total" in metrics  # the endpoint's own, first
        async with p.http.get(p.url + "/openapi.json") as resp:
            doc = json.loads(await resp.read())
        reasons = doc["components"]["schemas"]["ReasonCode"]
        assert set(reasons["enum"]) == ALL_REASONS | SIDECAR_REASONS
        assert "- `offline_limit`: " in reasons["description"]
        assert "/v1/gateway/status" in doc["paths"]
        assert set(doc["components"]["schemas"]["GatewayStatus"]["required"]) == set(status) - {
            "trust_list_version",
            "scanners",
            "synced_at",
            "gateway_credential",
        }
        text = json.dumps(doc)
        for ref in set(_refs(doc)):
            node: Any = doc
            for part in ref[2:].split("/"):
                node = node[part]
        assert "#/components/schemas/HolderId" in text


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return out + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@in_loop
async def test_offline_for_longer_than_the_max_age_is_a_503(tmp_path: Path) -> None:
    async with pair(tmp_path, offline_max_age="5s") as p:
        cred = p.world.credentials[HOSPITAL]
        breaker = p.sidecar.breaker
        breaker.state, breaker.next_probe_at = "open", 2**62  # no probe during the test
        breaker.offline_since = int(time.time() * 1000) - 4_000
        status, doc = await p.post("/v1/verify", cred, json={"token": p.world.token()})
        assert (status, doc["mode"]) == (200, "offline")
        breaker.offline_since = int(time.time() * 1000) - 6_000
        async with p.http.post(
            p.url + "/v1/verify",
            json={"token": p.world.token()},
            headers={"Authorization": f"Bearer {cred}"},
        ) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"
            assert (await resp.json())["error"] == "store_unavailable"


@in_loop
async def test_a_token_accepted_offline_is_replayed_online_until_reconciled(
    tmp_path: Path,
) -> None:
    async with pair(tmp_path) as p:  # no background drain in this test: rows stay pending
        cred = p.world.credentials[HOSPITAL]
        breaker = p.sidecar.breaker
        breaker.state, breaker.next_probe_at = "open", 2**62
        token = p.world.token(sub="bob")
        body = {"token": token, "request_id": "off-1"}
        status, doc = await p.post("/v1/verify", cred, json=body)
        assert (doc["reason"], doc["mode"]) == ("ok", "offline")
        breaker.record_success(0)  # the centre answers again; the row is not reconciled yet
        status, doc = await p.post("/v1/verify", cred, json={"token": token, "request_id": "x"})
        assert (status, doc["reason"]) == (200, "replayed")  # the centre would say ok
        status, doc = await p.post("/v1/verify", cred, json=body)  # the same request: a retry
        assert (doc["reason"], doc["mode"]) == ("ok", "online")
        assert await p.sidecar.drainer.drain_once() == 1  # retry + row: confirmed, not a conflict
        assert p.sidecar.journal.counts()["confirmed"] == 1
        assert not p.sidecar.runtime.pipeline.unreconciled  # type: ignore[attr-defined]
        status, doc = await p.post("/v1/verify", cred, json={"token": token, "request_id": "y"})
        assert (doc["reason"], doc["mode"]) == ("replayed", "online")  # the centre's own now


@in_loop
async def test_a_journal_that_cannot_commit_is_an_outage_until_it_can(tmp_path: Path) -> None:
    """Offline, a scan is accepted only once journalled: while the journal cannot commit
    (another process holds its write lock) scans are 503, /readyz says so, and the log has one
    store_down line, then one store_up line once a probe commit works again."""
    async with pair(tmp_path) as p:
        cred = p.world.credentials[HOSPITAL]
        breaker = p.sidecar.breaker
        breaker.state, breaker.next_probe_at = "open", 2**62  # offline, no probe
        outage = p.site.front.endpoint.outage
        outage.interval = 0.05
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("verifier.store").addHandler(handler)
        locker = sqlite3.connect(tmp_path / "sidecar.db", isolation_level=None, timeout=0)
        try:
            locker.execute("BEGIN IMMEDIATE")  # the journal's commits now fail (busy)
            for _ in range(3):
                status, doc = await p.post("/v1/verify", cred, json={"token": p.world.token()})
                assert (status, doc["error"]) == (503, "store_unavailable")
            status, ready = await p.get("/readyz")
            assert (status, ready["problems"]) == (503, ["store unreachable"])
            await asyncio.sleep(0.3)  # probes keep failing: still one outage
            locker.execute("ROLLBACK")
            for _ in range(100):
                if outage.down_since is None:
                    break
                await asyncio.sleep(0.02)
            events = [getattr(r, "event_fields", {}).get("event") for r in records]
            assert events == ["store_down", "store_up"], events
            assert "cannot commit" in records[0].getMessage()
            assert records[1].event_fields["refused"] == 3  # type: ignore[attr-defined]
            status, ready = await p.get("/readyz")
            assert (status, ready["problems"]) == (200, [])
            status, doc = await p.post("/v1/verify", cred, json={"token": p.world.token()})
            assert (status, doc["reason"], doc["mode"]) == (200, "ok", "offline")
        finally:
            locker.close()
            logging.getLogger("verifier.store").removeHandler(handler)


@in_loop
async def test_the_first_trust_list_is_kept_only_once_the_root_key_accepts_it(
    tmp_path: Path,
) -> None:
    """No local copy at the first start: the centre's list is fetched, and kept only if the
    sidecar's own root key signs it; a credential the centre refuses is named as such."""
    world = World(tmp_path)
    async with running(world, "memory://") as centre:
        gateway_credential, gateway = new_gateway_credential(HOSPITAL)
        await centre.runtime.store.put_gateway(gateway)
        other_root = tmp_path / "other.public"
        other_root.write_text(paserk.public_to_paserk(SigningKey.generate().verify_key.encode()))
        journal = tmp_path / "sidecar.db"
        values = {
            "upstream": centre.url,
            "gateway_credential": gateway_credential,
            "root_key": str(other_root),
            "journal": str(journal),
        }
        with pytest.raises(ConfigError, match="^VERIFIER_ROOT_KEY: .*nothing was kept"):
            await open_sidecar(load(SidecarSettings, {}, values))
        assert not Path(f"{journal}.trust.paseto").exists()

        stranger, _ = new_gateway_credential(HOSPITAL)  # never stored at the centre
        values |= {"gateway_credential": stranger, "root_key": str(world.dir / "root.public")}
        with pytest.raises(ConfigError, match="^VERIFIER_GATEWAY_CREDENTIAL: .*refused"):
            await open_sidecar(load(SidecarSettings, {}, values))

        values["gateway_credential"] = gateway_credential
        sidecar = await open_sidecar(load(SidecarSettings, {}, values))
        await sidecar.close()
        assert Path(f"{journal}.trust.paseto").exists()
