"""Real ``verifier`` processes for tests: start ``serve``, wait until it is ready, signal, stop.

proc = ServeProcess(env, "--workers", "2")   # the console script, in its own session
proc.wait_ready(workers=2)                   # every worker logged "serving on", /readyz is 200
proc.signal(signal.SIGHUP)
proc.stop()                                  # SIGTERM, then the exit code
proc.close()                                 # SIGKILL to its own process group if still alive

Threads drain stdout and stderr into lists, so a chatty process never blocks on a full pipe and a
test can wait for a log line. Only the entry point reads ``os.environ``: :func:`base_env` copies
it without any ``VERIFIER_*`` variable, and each test adds exactly the settings it means.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from service_world import World

VERIFIER = str(Path(sys.executable).with_name("verifier"))
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_SERVING = re.compile(r"verifier\[(\d+)\]: serving on ")


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it; we close it again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**values: str) -> dict[str, str]:
    """This process's environment without VERIFIER_* settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    env.update(values)
    return env


def world_env(world: World, store_url: str, port: int, **values: str) -> dict[str, str]:
    """Environment for ``verifier serve`` on ``world``'s files, ``store_url`` and ``port``.

    ``values`` are added last, so they may replace any of these.
    """
    settings = {
        "VERIFIER_STORE": store_url,
        "VERIFIER_TRUST_LIST": str(world.dir / "trust.paseto"),
        "VERIFIER_ROOT_KEY": str(world.dir / "root.public"),
        "VERIFIER_LISTEN": f"127.0.0.1:{port}",
    }
    return base_env(**{**settings, **values})


def run_verifier(
    args: list[str], env: dict[str, str], timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``verifier ARGS`` to completion (bounded by ``timeout``)."""
    return subprocess.run(
        [VERIFIER, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of a GET on a fresh connection; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (OSError, TimeoutError):
        return 0, b""


def _drain(stream: IO[str], into: list[str]) -> None:
    for line in stream:
        into.append(line.rstrip("\n"))


class ServeProcess:
    """``verifier serve ARGS`` with ``env``; the listen address comes from VERIFIER_LISTEN."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.url = "http://" + env["VERIFIER_LISTEN"]
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.proc = subprocess.Popen(
            [VERIFIER, "serve", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its workers share our own, separate process group
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=_drain, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=_drain, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return "\n".join(self.stderr[-40:])

    def worker_pids(self) -> set[int]:
        """Pids of the processes that logged "serving on" (signal handlers installed)."""
        return {int(m[1]) for line in list(self.stderr) if (m := _SERVING.search(line))}

    def wait_ready(self, workers: int = 1, timeout: float = READY_TIMEOUT_S) -> None:
        """Until ``workers`` processes serve and /readyz answers 200; AssertionError if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"verifier serve exited with {self.proc.returncode}:\n{self.log()}"
                )
            if len(self.worker_pids()) >= workers and http_get(self.url + "/readyz")[0] == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"verifier serve not ready within {timeout} s:\n{self.log()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and the exit code; AssertionError if it does not exit within ``timeout``."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as err:
            raise AssertionError(f"verifier serve ignored SIGTERM for {timeout} s") from err

    def close(self) -> None:
        """Make sure nothing we started is left running (our own session's group only)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(STOP_TIMEOUT_S)
        else:
            # The parent is gone; kill any worker it left behind in its group.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for t in self._threads:
            t.join(STOP_TIMEOUT_S)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
