"""The workers' shared snapshots: counters add up, stale workers' problems do not count."""

from __future__ import annotations

import time

import orjson

from verifier.service.metrics import Metrics
from verifier.service.peers import FRESH_SECONDS, Peers


def _other(tmp_path, name: str, at: float, problems: list[str], ok: int, open_: int) -> None:
    m = Metrics()
    m.verdicts["ok"] = ok
    m.latency.observe(0.001)
    m.connections_open = open_
    doc = {"pid": 7, "at": at, "problems": problems, "metrics": m.snapshot()}
    (tmp_path / name).write_bytes(orjson.dumps(doc))


def test_counts_add_and_only_fresh_workers_make_the_service_unready(tmp_path) -> None:
    mine = Metrics()
    mine.verdicts["ok"] = 3
    mine.connections_open = 1
    peers = Peers(tmp_path, mine)
    now = time.time()
    _other(tmp_path, "live.json", now, ["store unreachable"], ok=5, open_=2)
    _other(tmp_path, "dead.json", now - FRESH_SECONDS - 1, ["trust list expired"], ok=4, open_=9)

    total = peers.combined()
    assert total.verdicts["ok"] == 12  # the dead worker's counts stay
    assert total.latency.n == 2
    assert total.connections_open == 3  # open connections of live workers only
    assert 'verifier_verdicts_total{reason="ok"} 12' in total.render(1, 0.0, 60.0)
    assert peers.other_problems() == ["worker 7: store unreachable"]
    assert (tmp_path / peers.name).exists()  # answering a scrape wrote this worker's own
    assert mine.verdicts["ok"] == 3  # its own counters untouched
