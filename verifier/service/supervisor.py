"""``verifier serve --workers N``: the parent process that keeps N workers serving.

Each worker is a process serving the shared port (SO_REUSEPORT). The parent only supervises:

* A worker that exits while the service is not stopping (a crash, the OOM killer, a stray
  SIGKILL) is logged with its exit code or signal and started again after a back-off that
  doubles with each death in the last minute (1 s, 2 s, 4 s, …, at most 30 s; :class:`Restarts`).
  The other workers keep serving meanwhile.
* If workers keep dying (5 deaths within 60 s: Redis gone at start-up, a file removed, a bug),
  restarting will not help: the parent logs why it gives up, stops the other workers and exits 1,
  so systemd, Docker or the operator sees a failed service instead of one on part of its
  capacity.
* SIGTERM or SIGINT: every worker gets SIGTERM, stops accepting, finishes the requests in
  flight and exits; the parent exits 0 once all have (1 if one did not stop cleanly). SIGHUP
  is passed on (each worker reloads the trust list).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from verifier.service.logs import event

log = logging.getLogger("verifier")

# Exit codes of a worker stopped by our own SIGTERM/SIGINT before its handlers were up.
_CLEAN = (0, -signal.SIGTERM, -signal.SIGINT)


@dataclass
class Restarts:
    """When to restart a worker that died, and when to give up (pure; ``now`` in seconds)."""

    max_deaths: int = 5  # this many deaths within ``window`` seconds: give up
    window: float = 60.0
    first_delay: float = 1.0
    max_delay: float = 30.0
    deaths: list[float] = field(default_factory=list)

    def died(self, now: float) -> float | None:
        """Record a death at ``now``: the delay before its restart, or None to give up."""
        self.deaths = [t for t in self.deaths if now - t < self.window] + [now]
        if len(self.deaths) >= self.max_deaths:
            return None
        return min(self.first_delay * 2 ** (len(self.deaths) - 1), self.max_delay)


def describe_exit(code: int | None) -> str:
    """``exited with code 1``, ``was killed by SIGKILL``."""
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Runs ``workers`` processes made by ``start`` until a stop signal (see the module)."""

    def __init__(
        self,
        workers: int,
        start: Callable[[], BaseProcess],
        restarts: Restarts | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.start = start
        self.restarts = restarts or Restarts()
        self.clock = clock
        self.slots: list[BaseProcess | None] = [None] * workers
        self.due: dict[int, float] = {}  # slot -> when its worker is started (again)
        self.stopping = False
        self.gave_up = False
        self.unclean: list[str] = []  # workers that did not stop cleanly when told to
        self._signals: list[int] = []

    def run(self) -> int:
        """Start the workers, supervise them until they have stopped; the exit status."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        previous = {
            sig: signal.signal(sig, lambda signum, _frame: self._signals.append(signum))
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
        }
        old_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        try:
            for slot in range(len(self.slots)):
                self.slots[slot] = self.start()
            self._loop(wake_r)
        finally:
            signal.set_wakeup_fd(old_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            wake_r.close()
            wake_w.close()
        if self.gave_up or self.unclean:
            return 1
        event(log, logging.INFO, "stop", f"stopped: all {len(self.slots)} workers drained")
        return 0

    def _loop(self, wake: socket.socket) -> None:
        while True:
            self._handle_signals()
            live = {p.sentinel: (slot, p) for slot, p in enumerate(self.slots) if p is not None}
            if self.stopping and not live:
                return
            now = self.clock()
            for slot, at in sorted(self.due.items()):
                if at <= now:
                    del self.due[slot]
                    self.slots[slot] = p = self.start()
                    live[p.sentinel] = (slot, p)
                    event(log, logging.INFO, "worker_restart", f"worker {p.pid} started", pid=p.pid)
            timeout = max(0.0, min(self.due.values()) - now) if self.due else None
            ready = wait([*live, wake], timeout)
            try:
                while wake.recv(512):
                    pass
            except BlockingIOError:
                pass
            for sentinel in ready:
                if sentinel in live:
                    self._exited(*live[sentinel])

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGHUP:
                self._send(signal.SIGHUP)
            elif not self.stopping:
                event(
                    log,
                    logging.INFO,
                    "stopping",
                    f"{signal.Signals(signum).name}: stopping the workers once they have "
                    "finished the requests in flight",
                )
                self._stop()

    def _stop(self) -> None:
        self.stopping = True
        self.due.clear()
        self._send(signal.SIGTERM)  # not SIGINT: a worker ignores it until its loop runs

    def _send(self, sig: signal.Signals) -> None:
        for p in self.slots:
            if p is not None and p.pid is not None and p.exitcode is None:
                try:
                    os.kill(p.pid, sig)
                except ProcessLookupError:
                    pass

    def _exited(self, slot: int, p: BaseProcess) -> None:
        p.join()
        self.slots[slot] = None
        how = describe_exit(p.exitcode)
        if self.stopping:
            if p.exitcode not in _CLEAN:
                self.unclean.append(f"worker {p.pid} {how}")
                event(log, logging.ERROR, "worker_exit", f"worker {p.pid} {how} while stopping")
            return
        now = self.clock()
        delay = self.restarts.died(now)
        recent = len(self.restarts.deaths)
        if delay is None:
            self.gave_up = True
            event(
                log,
                logging.CRITICAL,
                "workers_failing",
                f"worker {p.pid} {how}: {recent} worker deaths within "
                f"{self.restarts.window:g} s, so restarting will not help; stopping the "
                "service (see the lines above for why the workers die)",
                pid=p.pid,
                exit_code=p.exitcode,
                deaths=recent,
            )
            self._stop()
            return
        self.due[slot] = now + delay
        event(
            log,
            logging.ERROR,
            "worker_exit",
            f"worker {p.pid} {how}; starting another in {delay:g} s "
            f"({recent} death(s) within {self.restarts.window:g} s; the service stops at "
            f"{self.restarts.max_deaths})",
            pid=p.pid,
            exit_code=p.exitcode,
            restart_in=delay,
            deaths=recent,
        )
