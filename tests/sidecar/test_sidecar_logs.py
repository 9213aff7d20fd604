"""The sidecar's log, as an operator ships it: JSON lines with ``VERIFIER_LOG_FORMAT=json``,
a start line naming the port it got (also for port 0), one access line per verdict with
``VERIFIER_ACCESS_LOG=true``, a stop line; never a token, an ID number or a secret."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from service_world import HOSPITAL
from sidecar_process import Scanner, SidecarProcess
from test_sidecar_process_kill import offline_sidecar

pytestmark = pytest.mark.timeout(60)

ID_NUMBER = "11010519491231002X"  # alice's, in service_world.HOLDERS


def events(side: SidecarProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in list(side.stderr) if line.strip()]


def wait_for_event(side: SidecarProcess, name: str, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        found = [e for e in events(side) if e.get("event") == name]
        if len(found) >= count:
            return found
        assert side.proc.poll() is None or name == "stop", side.log()
        assert time.monotonic() < deadline, f"{count}x {name} not logged:\n{side.log()}"
        time.sleep(0.02)


def test_json_log_with_the_port_it_got_and_an_access_line_per_verdict(tmp_path) -> None:
    world, env, credential = offline_sidecar(tmp_path)
    env |= {
        "VERIFIER_LISTEN": "127.0.0.1:0",
        "VERIFIER_LOG_FORMAT": "json",
        "VERIFIER_ACCESS_LOG": "true",
    }
    tokens = [world.token(sub="alice"), world.token(sub="bob")]
    with SidecarProcess(env) as side:
        [start] = wait_for_event(side, "start")
        assert start["port"] != 0  # the port the kernel picked
        url = f"http://127.0.0.1:{start['port']}"
        assert f"sidecar serving on {url} " in start["message"] and start["pending"] == 0
        scanner = Scanner(url, credential)
        status, doc = scanner.scan(tokens[0], "r-1")
        assert (status, doc["reason"], doc["mode"]) == (200, "ok", "offline")
        status, doc = scanner.scan(tokens[0], "r-2")
        assert (status, doc["reason"]) == (200, "replayed")
        scanner.scan(tokens[1], "r-3")
        scanner.close()
        first, second, _ = wait_for_event(side, "verdict", 3)
        assert (first["reason"], first["request_id"], first["valid"]) == ("ok", "r-1", True)
        assert first["institution"] == HOSPITAL
        assert first["scanner"] == credential.split(".")[0]
        assert (second["reason"], second["valid"]) == ("replayed", False)
        [down] = wait_for_event(side, "upstream_down")  # the centre never answered
        assert down["level"] == "warning"
        assert side.stop() == 0
        wait_for_event(side, "stop")
    text = "\n".join(side.stderr)
    secret = credential.split(".", 1)[1]
    for needle in [*tokens, ID_NUMBER, "1101**********002X", secret]:
        assert needle not in text
