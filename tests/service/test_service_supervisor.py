"""`serve --workers N` is supervised: a worker that dies is logged and replaced, a stop is clean.

The restart policy (:class:`Restarts`) is pure and tested as a table; :class:`Supervisor` runs
on real (forked) processes; the last test SIGKILLs a worker of a real `verifier serve`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import threading
import time

import pytest
from service_process import ServeProcess, free_port, http_get, world_env
from service_world import World
from test_service_process import (
    GENEROUS_DEADLINE_MS,
    metrics,
    nhsa_tokens,
    reasons,
    seed,
    verdict_counts,
    wait_for_log,
    wait_for_totals,
)

from verifier.service.supervisor import Restarts, Supervisor, describe_exit

_FORK = multiprocessing.get_context("fork")


@pytest.mark.parametrize(
    "deaths, delay",
    [
        ([0.0], 1.0),  # the first death: restart after a second
        ([0.0, 1.0], 2.0),  # the second within the window: twice as long
        ([0.0, 1.0, 3.0, 7.0], 8.0),  # the fourth
        ([0.0, 1.0, 3.0, 7.0, 15.0], None),  # the fifth within 60 s: give up
        ([0.0, 61.0], 1.0),  # a death older than the window is forgotten
        ([0.0, 30.0, 70.0], 2.0),  # at 70 s only the deaths at 30 and 70 count
    ],
)
def test_restart_delays(deaths: list[float], delay: float | None) -> None:
    r = Restarts()
    assert [r.died(t) for t in deaths][-1] == delay


def test_restart_delay_is_capped() -> None:
    r = Restarts(max_deaths=100, max_delay=30.0)
    assert [r.died(float(t)) for t in range(8)][-1] == 30.0


@pytest.mark.parametrize(
    "code, text",
    [(1, "exited with code 1"), (0, "exited with code 0"), (-9, "was killed by SIGKILL")],
)
def test_describe_exit(code: int, text: str) -> None:
    assert describe_exit(code) == text


def _crash() -> None:
    os._exit(3)


def _serve_until_terminated() -> None:
    # A forked child inherits the supervisor's handler: back to SIGTERM's default action,
    # which ends it as it ends a real worker whose own handlers are not up yet.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    time.sleep(60)


def test_workers_that_keep_dying_stop_the_service(caplog: pytest.LogCaptureFixture) -> None:
    started: list[int] = []

    def start() -> multiprocessing.process.BaseProcess:
        p = _FORK.Process(target=_crash)
        p.start()
        started.append(p.pid or 0)
        return p

    restarts = Restarts(max_deaths=4, first_delay=0.01, max_delay=0.05)
    with caplog.at_level(logging.INFO, logger="verifier"):
        assert Supervisor(2, start, restarts).run() == 1
    deaths = [
        r for r in caplog.records if getattr(r, "event_fields", {}).get("event") == "worker_exit"
    ]
    gave_up = [
        r
        for r in caplog.records
        if getattr(r, "event_fields", {}).get("event") == "workers_failing"
    ]
    assert len(deaths) == 3 and len(gave_up) == 1, caplog.text
    assert "exited with code 3; starting another in 0.01 s" in deaths[0].getMessage()
    assert "4 worker deaths within 60 s" in gave_up[0].getMessage()
    assert len(started) == 2 + 2  # two at start, two restarts; the third is not made


def test_sigterm_stops_every_worker_and_exits_0(caplog: pytest.LogCaptureFixture) -> None:
    procs: list[multiprocessing.process.BaseProcess] = []

    def start() -> multiprocessing.process.BaseProcess:
        p = _FORK.Process(target=_serve_until_terminated)
        p.start()
        procs.append(p)
        return p

    def terminate_when_started() -> None:
        # The supervisor installs its handlers before it starts a worker.
        deadline = time.monotonic() + 20
        while len(procs) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # for the children to take SIGTERM's default action back
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_when_started, daemon=True).start()
    with caplog.at_level(logging.INFO, logger="verifier"):
        assert Supervisor(3, start).run() == 0
    assert all(p.exitcode == -signal.SIGTERM for p in procs)
    assert "stopped: all 3 workers drained" in caplog.text


@pytest.mark.slow
def test_a_sigkilled_worker_is_logged_and_replaced(tmp_path, redis_url):
    world = World(tmp_path)
    seed(world, redis_url)
    env = world_env(world, redis_url, 0, VERIFIER_STORE_DEADLINE_MS=GENEROUS_DEADLINE_MS)
    with ServeProcess(env, "--workers", "2") as serve:
        # Port 0: the kernel picks one port, and both workers serve it (the log says which).
        deadline = time.monotonic() + 30
        while len(serve.worker_pids()) < 2:
            assert time.monotonic() < deadline and serve.proc.poll() is None, serve.log()
            time.sleep(0.05)
        ports = set(re.findall(r"serving on http://127\.0\.0\.1:(\d+) ", serve.log()))
        assert len(ports) == 1 and ports != {"0"}, serve.log()
        serve.url = f"http://127.0.0.1:{ports.pop()}"
        serve.wait_ready(workers=2)

        victim = min(serve.worker_pids())
        os.kill(victim, signal.SIGKILL)
        wait_for_log(serve, f"worker {victim} was killed by SIGKILL; starting another in", 1)
        # The other worker keeps the port answering while the replacement starts.
        statuses = set()
        while len(serve.worker_pids()) < 3:
            assert serve.proc.poll() is None, serve.log()
            statuses.add(http_get(serve.url + "/healthz")[0])
            time.sleep(0.05)
        assert statuses <= {200}, statuses
        assert set(reasons(serve.url, world, nhsa_tokens(world, 20))) == {"ok"}

        assert serve.stop() == 0, serve.log()  # was 247: the dead worker's code
        assert "stopped: all 2 workers drained" in serve.log()
        assert "Traceback" not in serve.log()


def test_metrics_and_readiness_speak_for_every_worker(tmp_path, redis_url):
    world = World(tmp_path)
    seed(world, redis_url)
    env = world_env(world, redis_url, free_port(), VERIFIER_STORE_DEADLINE_MS=GENEROUS_DEADLINE_MS)
    with ServeProcess(env, "--workers", "2") as serve:
        serve.wait_ready(workers=2)
        # 40 verifies, each on its own connection: the kernel spreads them over both workers.
        assert reasons(serve.url, world, nhsa_tokens(world, 40)) == ["ok"] * 40
        wait_for_totals(serve.url, (40, 0))
        for _ in range(20):  # fresh connections: either worker answers, both say 40
            text = metrics(serve.url)
            assert verdict_counts(text) == (40, 0)
            assert "verifier_request_seconds_count 40" in text

        # A worker killed outright: its counts stay in the totals while it is replaced.
        victim = min(serve.worker_pids())
        os.kill(victim, signal.SIGKILL)
        wait_for_log(serve, f"worker {victim} was killed by SIGKILL; starting another in", 1)
        while len(serve.worker_pids()) < 3:
            assert serve.proc.poll() is None, serve.log()
            assert verdict_counts(metrics(serve.url))[0] == 40
            time.sleep(0.05)
        serve.wait_ready(workers=3)
        assert reasons(serve.url, world, nhsa_tokens(world, 10)) == ["ok"] * 10
        wait_for_totals(serve.url, (50, 0))
        for _ in range(20):
            assert verdict_counts(metrics(serve.url)) == (50, 0)
        assert http_get(serve.url + "/readyz")[0] == 200

        assert serve.stop() == 0, serve.log()
        assert "Traceback" not in serve.log()
