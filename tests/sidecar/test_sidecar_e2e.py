"""The whole path with real processes: Redis, the centre (`verifier serve`), a TCP relay the
test cuts, restores and slows down, and the sidecar (`verifier sidecar`) behind it.

The tests run in order on one set of processes (each with its own holders, so one test's
offline budget is not another's): online, offline with a double use, a revoked scanner, a
slow upstream. Timing assertions are generous on purpose (a loaded machine must not fail them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from redis_server import RedisServer
from relay import Relay
from service_process import ServeProcess, free_port, http_get, run_verifier, world_env
from service_world import HOSPITAL, World
from sidecar_process import Scanner, SidecarProcess, sidecar_env, wait_for

from verifier import rfc3339
from verifier.store import open_store

pytestmark = pytest.mark.timeout(120)

TIMEOUT_MS = 300


@dataclass
class Link:
    world: World
    centre: ServeProcess
    centre_env: dict[str, str]
    relay: Relay
    sidecar: SidecarProcess
    at_sidecar: Scanner  # the hospital's scanner, through the sidecar
    at_centre: Scanner  # the same scanner, straight to the centre

    def journal(self, state: str | None = None) -> list[dict[str, Any]]:
        args = ["sidecar", "journal", "--journal", self.sidecar.env["VERIFIER_JOURNAL"]]
        done = run_verifier(args + (["--state", state] if state else []), self.sidecar.env)
        assert done.returncode == 0, done.stderr
        return [orjson.loads(line) for line in done.stdout.splitlines()]

    def wait_online(self) -> None:
        wait_for(lambda: self.sidecar.status()["mode"] == "online", 15, "the sidecar online")

    def wait_drained(self) -> dict[str, Any]:
        self.wait_online()
        return wait_for(
            lambda: (s := self.sidecar.status())["pending"] == 0 and s, 20, "journal drained"
        )


@pytest.fixture(scope="module")
def link(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Link]:
    redis_server.ensure_running()
    client = redis_server.client()
    client.flushall()
    client.close()
    world = World(tmp_path_factory.mktemp("world"))

    async def seed() -> None:
        store = await open_store(redis_server.url)
        try:
            await world.seed(store)
        finally:
            await store.close()

    asyncio.run(seed())
    centre_port = free_port()
    env = world_env(world, redis_server.url, centre_port, VERIFIER_AUTH_CACHE_SECONDS="0")
    added = run_verifier(["gateways", "add", "--institution", HOSPITAL], env)
    assert added.returncode == 0, added.stderr
    gateway_credential = added.stdout.split()[0]
    with ServeProcess(env) as centre:
        centre.wait_ready()
        relay = Relay(centre_port)
        journal = tmp_path_factory.mktemp("site") / "sidecar.db"
        side_env = sidecar_env(
            world,
            f"http://127.0.0.1:{relay.port}",
            free_port(),
            journal,
            gateway_credential,
            VERIFIER_UPSTREAM_TIMEOUT_MS=str(TIMEOUT_MS),
        )
        with SidecarProcess(side_env) as sidecar:
            sidecar.wait_ready()
            credential = world.credentials[HOSPITAL]
            yield Link(
                world,
                centre,
                env,
                relay,
                sidecar,
                Scanner(sidecar.url, credential),
                Scanner(centre.url, credential),
            )
        relay.close()


def test_online_scans_are_the_centres_verdicts(link: Link) -> None:
    token = link.world.token(sub="alice")
    status, doc = link.at_sidecar.scan(token, "on-1", service="inpatient", amount="1000.00")
    assert status == 200, doc
    assert (doc["valid"], doc["reason"], doc["covered"], doc["mode"]) == (
        True,
        "ok",
        True,
        "online",
    )
    assert doc["settlement"]["fund"] == "900.00"  # the centre's own answer, passed through
    assert doc["holder"]["id_number"] == "1101**********002X"

    status, doc = link.at_sidecar.scan(token, "on-2")
    assert (status, doc["reason"], doc["mode"]) == (200, "replayed", "online")
    status, doc = link.at_sidecar.scan(token, "on-1", service="inpatient", amount="1000.00")
    assert (doc["valid"], doc["reason"]) == (True, "ok")  # a retry is one use
    assert link.sidecar.status()["mode"] == "online"


def test_cut_offline_acceptance_conflict_budget_and_drain(link: Link) -> None:
    w = link.world
    link.relay.cut()
    plain, double = w.token(sub="bob"), w.token(sub="carol")

    status, doc = link.at_sidecar.scan(plain, "off-1", service="outpatient", amount="20.00")
    assert status == 200, doc
    assert doc == {
        "valid": True,
        "reason": "ok",
        "covered": None,
        "mode": "offline",
        "settle_later": True,
        "card": doc["card"],
        "holder": {"id": "bob"},
        "request_id": "off-1",
    }
    status, doc = link.at_sidecar.scan(plain, "off-2")
    assert (doc["valid"], doc["reason"], doc["mode"]) == (False, "replayed", "offline")

    # Accepted offline here, and used at the centre directly during the cut.
    assert link.at_sidecar.scan(double, "off-3")[1]["reason"] == "ok"
    status, doc = link.at_centre.scan(double, "direct-1")
    assert (status, doc["valid"]) == (200, True)

    # The offline budget: two acceptances per holder per window, then offline_limit.
    dave = [w.token(sub="dave") for _ in range(3)]
    reasons = [link.at_sidecar.scan(t, f"budget-{n}")[1]["reason"] for n, t in enumerate(dave)]
    assert reasons == ["ok", "ok", "offline_limit"]
    status = link.sidecar.status()
    assert (status["mode"], status["pending"]) == ("offline", 4)
    assert status["offline_since"] is not None

    link.relay.restore()
    status = link.wait_drained()  # by itself: nothing here asks for it
    assert status["conflict"] == 1 and status["confirmed"] >= 3
    rows = {r["request_id"]: r for r in link.journal()}
    assert rows["off-1"]["state"] == "confirmed"
    assert rows["off-3"]["state"] == "conflict"
    assert rows["budget-0"]["state"] == rows["budget-1"]["state"] == "confirmed"
    assert "budget-2" not in rows  # refused over budget: nothing journalled

    listed = run_verifier(["conflicts", "list"], link.centre_env)
    assert listed.returncode == 0, listed.stderr
    assert '"carol"' in listed.stdout and double not in listed.stdout

    # Online again: the centre decides, and it knows the offline uses now.
    status, doc = link.at_sidecar.scan(plain, "after-1")
    assert (doc["reason"], doc["mode"]) == ("replayed", "online")


def test_a_revoked_scanner_is_refused_offline_after_a_sync(link: Link) -> None:
    before = link.sidecar.status()["scanners"]
    added = run_verifier(["scanners", "add", "--institution", HOSPITAL], link.centre_env)
    assert added.returncode == 0, added.stderr
    credential = added.stdout.split()[0]
    scanner_id = credential.split(".")[0]
    wait_for(lambda: link.sidecar.status()["scanners"] == before + 1, 10, "the new scanner synced")

    revoked = run_verifier(["scanners", "revoke", scanner_id], link.centre_env)
    assert revoked.returncode == 0, revoked.stderr
    after = time.time()
    wait_for(
        lambda: (s := link.sidecar.status()["synced_at"]) and rfc3339.parse(s) > after + 0.1,
        10,
        "a sync after the revocation",
    )
    link.relay.cut()
    try:
        status, doc = Scanner(link.sidecar.url, credential).scan(link.world.token(sub="erin"))
        assert (status, doc["error"]) == (403, "scanner_revoked")
        status, doc = link.at_sidecar.scan(link.world.token(sub="erin"), "rev-ok")
        assert (status, doc["mode"], doc["valid"]) == (200, "offline", True)
    finally:
        link.relay.restore()
    link.wait_drained()


def test_a_slow_upstream_costs_one_timeout_and_reconciles_as_confirmed(link: Link) -> None:
    link.wait_online()
    link.relay.delay = 3.0  # every answer of the centre arrives long after the scan's deadline
    try:
        waits, ids = [], []
        for n in range(5):
            started = time.monotonic()
            status, doc = link.at_sidecar.scan(link.world.token(sub=f"slow-{n}"), f"slow-{n}")
            waits.append(time.monotonic() - started)
            ids.append(f"slow-{n}")
            assert (status, doc["valid"], doc["mode"]) == (200, True, "offline"), doc
        assert max(waits) < 5 * TIMEOUT_MS / 1000, waits  # not the 3 s the centre takes
    finally:
        link.relay.delay = 0.0
    link.wait_drained()
    rows = {r["request_id"]: r["state"] for r in link.journal()}
    assert [rows[i] for i in ids] == ["confirmed"] * 5


def test_the_sidecar_serves_its_own_api_document(link: Link) -> None:
    code, body = http_get(link.sidecar.url + "/openapi.json")
    assert code == 200
    doc = orjson.loads(body)
    assert "offline_limit" in doc["components"]["schemas"]["ReasonCode"]["enum"]
    assert "/v1/gateway/status" in doc["paths"]
    code, body = http_get(link.centre.url + "/openapi.json")
    assert "/v1/gateway/status" not in orjson.loads(body)["paths"]


def test_a_revoked_gateway_accepts_nothing_offline(link: Link) -> None:
    """Last: the gateway stays revoked. Its sidecar still forwards scans (the centre judges
    them) but accepts none offline: it no longer acts for the institution, and its journal
    could not be reconciled."""
    link.wait_drained()
    gateway_id = link.sidecar.env["VERIFIER_GATEWAY_CREDENTIAL"].split(".")[0]
    revoked = run_verifier(["gateways", "revoke", gateway_id], link.centre_env)
    assert revoked.returncode == 0, revoked.stderr
    wait_for(
        lambda: link.sidecar.status()["gateway_credential"] == "refused",
        10,
        "the sidecar to see its credential refused",
    )
    status, doc = link.at_sidecar.scan(link.world.token(sub="gwrev-1"), "gwrev-1")
    assert (status, doc["mode"]) == (200, "online")  # forwarded: the centre judged it
    link.relay.cut()
    try:
        status, doc = link.at_sidecar.scan(link.world.token(sub="gwrev-2"), "gwrev-2")
        assert (status, doc["error"]) == (503, "store_unavailable"), doc
        assert "refused this gateway's credential" in doc["message"]
        assert link.sidecar.status()["pending"] == 0
    finally:
        link.relay.restore()
    assert any("refused this gateway's credential" in line for line in link.sidecar.stderr)
