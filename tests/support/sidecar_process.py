"""A real ``verifier sidecar`` process for tests, and a small blocking client for scans.

side = SidecarProcess(sidecar_env(world, "http://127.0.0.1:9", port, journal, credential))
side.wait_ready()                       # logged "sidecar serving on", /healthz is 200
status, doc = scan(side.url, scanner_credential, token, request_id="r-1")
side.kill()                             # SIGKILL, as a power cut would
side.close()

Only the entry point reads ``os.environ``: the environment is built from :func:`base_env`.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from service_process import STOP_TIMEOUT_S, VERIFIER, _drain, base_env, http_get
from service_world import World

READY_TIMEOUT_S = 30.0


def sidecar_env(
    world: World, upstream: str, port: int, journal: Path, credential: str, **values: str
) -> dict[str, str]:
    """Environment for ``verifier sidecar``: ``world``'s root key, a trust list copy beside the
    journal (the world's, unless the test put one there), ``values`` last."""
    settings = {
        "VERIFIER_UPSTREAM": upstream,
        "VERIFIER_LISTEN": f"127.0.0.1:{port}",
        "VERIFIER_JOURNAL": str(journal),
        "VERIFIER_GATEWAY_CREDENTIAL": credential,
        "VERIFIER_ROOT_KEY": str(world.dir / "root.public"),
        "VERIFIER_UPSTREAM_TIMEOUT_MS": "300",
        "VERIFIER_SYNC_INTERVAL": "500ms",
        "VERIFIER_FAST_PATH": "true",
    }
    return base_env(**{**settings, **values})


class SidecarProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.url = "http://" + env["VERIFIER_LISTEN"]
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.proc = subprocess.Popen(
            [VERIFIER, "sidecar"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=_drain, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=_drain, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def log(self) -> str:
        return "\n".join(self.stderr[-40:])

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sidecar exited with {self.proc.returncode}:\n{self.log()}")
            serving = any("sidecar serving on" in line for line in list(self.stderr))
            if serving and http_get(self.url + "/healthz")[0] == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"sidecar not ready within {timeout} s:\n{self.log()}")

    def status(self) -> dict[str, Any]:
        code, body = http_get(self.url + "/v1/gateway/status")
        assert code == 200, (code, body)
        doc: dict[str, Any] = orjson.loads(body)
        return doc

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT_S)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(STOP_TIMEOUT_S)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for t in self._threads:
            t.join(STOP_TIMEOUT_S)

    def __enter__(self) -> SidecarProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Scanner:
    """One scanner's kept-alive connection to a service (the centre or a sidecar)."""

    def __init__(self, url: str, credential: str, timeout: float = 10.0) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self.credential = credential

    def scan(
        self, token: str, request_id: str | None = None, **extra: str
    ) -> tuple[int, dict[str, Any]]:
        body: dict[str, str] = {"token": token, **extra}
        if request_id is not None:
            body["request_id"] = request_id
        headers = {
            "Authorization": f"Bearer {self.credential}",
            "Content-Type": "application/json",
        }
        try:
            self.conn.request("POST", "/v1/verify", orjson.dumps(body), headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # a fresh connection next time
            raise
        return resp.status, orjson.loads(data) if data else {}

    def close(self) -> None:
        self.conn.close()


def wait_for(check: Any, timeout: float, what: str) -> Any:
    """Poll ``check()`` until it returns a true value; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")
