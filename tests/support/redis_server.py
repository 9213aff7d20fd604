"""A real ``redis-server`` for tests: own port, own temp dir, no persistence, fault injection.

server = RedisServer()          # starts it and waits for PING
server.url                      # "redis://127.0.0.1:<port>/0"
server.pause(); server.resume() # SIGSTOP / SIGCONT: the port stays open, nothing answers
server.kill()                   # SIGKILL: connections reset, connects refused
server.restart()                # a new, empty server on the same port
server.stop()                   # for good; also removes the temp dir
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

START_TIMEOUT_S = 10.0


def find_redis_server() -> str | None:
    """Path of the redis-server binary (``$REDIS_SERVER`` or PATH), or None."""
    return os.environ.get("REDIS_SERVER") or shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on 127.0.0.1; started by the constructor."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = found
        self.host = "127.0.0.1"
        self._dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        for attempt in range(3):  # another process may grab the free port first
            self.port = _free_port()
            try:
                self._start()
                break
            except RuntimeError:
                if attempt == 2:
                    shutil.rmtree(self._dir, ignore_errors=True)
                    raise

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _start(self) -> None:
        log = self._dir / "redis.log"
        self._proc = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", self.host),
                *("--save", "", "--appendonly", "no"),
                *("--dir", str(self._dir), "--logfile", str(log)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.paused = False
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers_ping(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{text}")
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running:
            raise RuntimeError("redis-server is not running")
        assert self._proc is not None
        self._proc.send_signal(sig)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and accept bytes, but nothing is answered."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT: the server carries on with whatever it was sent meanwhile."""
        self._signal(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL, and wait for the process to go; all data is lost."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self.paused = False

    def restart(self) -> None:
        """Kill (if still running) and start an empty server on the same port."""
        self.kill()
        self._start()

    def ensure_running(self) -> None:
        """Undo what a failed test may have left behind: resume if paused, restart if dead."""
        if self.paused and self.running:
            self.resume()
        if not self.running:
            self._start()

    def client(self) -> redis.Redis:
        """A plain synchronous client for test set-up and inspection; close it when done."""
        return self.client_for(self.url)

    @staticmethod
    def client_for(url: str) -> redis.Redis:
        """The same, for a URL (e.g. from the ``redis_url`` fixture)."""
        return redis.Redis.from_url(url, socket_timeout=5)

    def stop(self) -> None:
        """Shut the server down for good and remove its directory."""
        if self._proc is not None and self._proc.poll() is None:
            if self.paused:
                self.resume()
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
