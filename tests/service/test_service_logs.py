"""The log an operator acts on: each event present once, as text or JSON, never a token or an ID.

One real `verifier serve` with ``VERIFIER_LOG_FORMAT=json`` and ``VERIFIER_ACCESS_LOG=true``
goes through a start on port 0, verdicts, a store outage and its recovery, a trust list
reload and a stop; every line it writes must be JSON and none may carry a token, an ID number
or a credential's secret. The pieces are also tested on their own, in-process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from redis_server import RedisServer
from service_process import ServeProcess, http_get, world_env
from service_world import HOSPITAL, World, running
from test_service_process import rotate_out_nhsa, seed

from verifier.errors import StoreUnavailable
from verifier.records import Scanner
from verifier.service.logs import JsonFormatter, access_line, event
from verifier.service.outage import StoreOutage

ID_NUMBER = "11010519491231002X"  # alice's, in service_world.HOLDERS


def events(proc: ServeProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in list(proc.stderr) if line.strip()]


def wait_for_event(
    proc: ServeProcess, name: str, count: int = 1, timeout: float = 20.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in events(proc) if e.get("event") == name]
        if len(found) >= count:
            return found
        assert proc.proc.poll() is None, f"serve exited:\n{proc.log()}"
        assert time.monotonic() < deadline, f"{count}x {name} not logged:\n{proc.log()}"
        time.sleep(0.02)


def post(url: str, credential: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url + "/v1/verify",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.slow
def test_every_event_once_as_json_without_tokens_or_ids(
    tmp_path, redis_server: RedisServer, redis_url: str
) -> None:
    world = World(tmp_path)
    seed(world, redis_url)
    credential = world.credentials[HOSPITAL]
    env = world_env(
        world,
        redis_url,
        0,  # the log must say the port the kernel picked
        VERIFIER_LOG_FORMAT="json",
        VERIFIER_ACCESS_LOG="true",
        VERIFIER_TRUST_POLL_SECONDS="3600",  # reloads come from SIGHUP only
        VERIFIER_STORE_DEADLINE_MS="200",
    )
    tokens = []
    with ServeProcess(env) as serve:
        [start] = wait_for_event(serve, "start")
        assert start["port"] != 0 and start["level"] == "info" and start["pid"] == serve.pid
        serve.url = f"http://127.0.0.1:{start['port']}"
        assert f"serving on {serve.url} " in start["message"]
        assert http_get(serve.url + "/readyz")[0] == 200

        # Two verdicts (accepted, then replayed): one access line each.
        tokens.append(world.token("alice"))
        body = {"token": tokens[0], "request_id": "r-1", "service": "inpatient", "amount": "10.00"}
        assert post(serve.url, credential, body)[1]["reason"] == "ok"
        assert post(serve.url, credential, {**body, "request_id": "r-2"})[1]["reason"] == "replayed"
        first, second = wait_for_event(serve, "verdict", 2)
        assert first["institution"] == HOSPITAL
        assert first["scanner"] == world.scanner_ids[HOSPITAL]
        assert (first["reason"], first["request_id"], first["valid"]) == ("ok", "r-1", True)
        assert second["reason"] == "replayed" and second["request_id"] == "r-2"
        assert isinstance(first["latency_ms"], float) and first["latency_ms"] >= 0

        # The store stops answering: many 503s, one line; it answers again: one line.
        redis_server.pause()
        try:
            for _ in range(6):
                tokens.append(world.token("bob"))
                status, doc = post(serve.url, credential, {"token": tokens[-1]})
                assert status == 503 and doc["error"] == "store_unavailable", doc
            [down] = wait_for_event(serve, "store_down")
        finally:
            redis_server.resume()
        [up] = wait_for_event(serve, "store_up")
        assert down["level"] == "error" and "no reply within 200 ms" in down["message"]
        assert up["refused"] == 6 and up["down_seconds"] > 0
        tokens.append(world.token("bob"))
        assert post(serve.url, credential, {"token": tokens[-1]})[1]["reason"] == "ok"

        # A new trust list, reloaded on SIGHUP: one line saying which version replaced which.
        rotate_out_nhsa(world)
        serve.signal(signal.SIGHUP)
        [reload] = wait_for_event(serve, "trust_reload")
        assert (reload["version"], reload["previous_version"], reload["changed"]) == (2, 1, True)

        assert serve.stop() == 0, serve.log()
        [stop] = wait_for_event(serve, "stop")
        assert "finished the requests in flight" in stop["message"]

    names = [e.get("event") for e in events(serve)]
    assert names.count("store_down") == 1 and names.count("store_up") == 1
    assert names.count("verdict") == 3  # the 503s are refusals, not verdicts
    text = "\n".join(serve.stderr)
    secret = credential.split(".", 1)[1]
    for needle in [*tokens, ID_NUMBER, "1101**********002X", secret]:
        assert needle not in text


def test_json_lines_carry_the_event_fields_and_the_traceback() -> None:
    logger = logging.getLogger("verifier.test")
    record = logger.makeRecord("verifier.test", logging.WARNING, __file__, 1, "hello", (), None)
    record.event_fields = {"event": "x", "n": 3}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello" and line["event"] == "x" and line["n"] == 3
    assert line["level"] == "warning" and line["logger"] == "verifier.test"
    assert line["time"].endswith("Z") and "T" in line["time"]
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord(
            "verifier.test", logging.ERROR, __file__, 1, "bug", (), sys.exc_info()
        )
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exception"]


def test_an_access_line_names_who_and_what_but_not_the_holder(caplog) -> None:
    scanner = Scanner("s-0123456789ab", "hosp-1", "0" * 64)
    verdict = {
        "valid": True,
        "reason": "ok",
        "covered": True,
        "holder": {"id": "alice", "name": "张*丰", "id_number": "1101**********002X"},
        "request_id": "r-9",
    }
    with caplog.at_level(logging.INFO, logger="verifier.access"):
        access_line(scanner, verdict, 0.000412)
    [record] = caplog.records
    assert record.getMessage() == (
        "verdict ok institution=hosp-1 scanner=s-0123456789ab latency_ms=0.412 request_id=r-9"
    )
    fields = record.event_fields  # type: ignore[attr-defined]
    assert set(fields) == {
        "event",
        "institution",
        "scanner",
        "reason",
        "valid",
        "covered",
        "latency_ms",
        "request_id",
    }


class FlakyStore:
    """ping() fails until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1
        if not self.up:
            raise StoreUnavailable("redis PING: no reply within 50 ms")


def test_an_outage_is_one_line_down_and_one_line_up(caplog) -> None:
    async def main() -> None:
        store = FlakyStore()
        outage = StoreOutage(store, interval=0.01)  # type: ignore[arg-type]
        for _ in range(100):
            outage.failed(StoreUnavailable("redis claim: no reply within 50 ms"))
        await asyncio.sleep(0.05)
        assert outage.down_since is not None and store.pings >= 2
        store.up = True
        await asyncio.sleep(0.05)
        assert outage.down_since is None
        outage.failed(StoreUnavailable("redis claim: ConnectionDown: refused"))  # a new outage
        outage.close()

    with caplog.at_level(logging.INFO, logger="verifier.store"):
        asyncio.run(main())
    got = [(r.event_fields["event"], r.levelname) for r in caplog.records]  # type: ignore[attr-defined]
    assert got == [("store_down", "ERROR"), ("store_up", "WARNING"), ("store_down", "ERROR")]
    assert caplog.records[1].event_fields["refused"] == 100  # type: ignore[attr-defined]


def test_no_access_log_unless_asked(tmp_path, caplog) -> None:
    async def main() -> None:
        world = World(tmp_path)
        async with running(world, "memory://") as svc:
            assert svc.runtime.access_log is False
            await svc.verify(world.token("alice"))

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.name == "verifier.access"]


def test_event_is_free_when_its_level_is_off(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="verifier.x"):
        event(logging.getLogger("verifier.x"), logging.INFO, "quiet", "not shown", n=1)
    assert not caplog.records
