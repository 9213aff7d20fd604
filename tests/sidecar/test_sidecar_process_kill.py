"""A sidecar SIGKILLed during a burst of offline acceptances loses none that it answered.

The sidecar runs as a real process with no centre to reach (its upstream is a closed port),
on a scanner directory and trust list left by an earlier sync. Eight scanners send scans of
distinct holders as fast as they are answered; the process is killed mid-burst. After a
restart on the same journal: every scan answered 200 valid is a journal row, the database
passes SQLite's full integrity check, and each of those tokens is refused as a replay.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import orjson
import pytest
from service_process import free_port, run_verifier
from service_world import HOSPITAL, World
from sidecar_process import Scanner, SidecarProcess, sidecar_env, wait_for

from verifier.credentials import new_credential
from verifier.records import Institution
from verifier.sidecar.directory import Directory

pytestmark = pytest.mark.timeout(90)

SCANNERS = 8


def offline_sidecar(tmp_path: Path) -> tuple[World, dict[str, str], str]:
    """A world, the sidecar's environment (upstream unreachable), a scanner credential."""
    world = World(tmp_path)
    journal = tmp_path / "sidecar.db"
    credential, scanner = new_credential(HOSPITAL)
    inst = Institution(HOSPITAL, "City Hospital", frozenset({"mi-voucher", "ss-ecard"}))
    Directory(inst, {scanner.id: scanner}).save(Path(str(journal) + ".scanners.json"))
    shutil.copy(world.dir / "trust.paseto", str(journal) + ".trust.paseto")
    env = sidecar_env(
        world,
        f"http://127.0.0.1:{free_port()}",  # nothing listens: offline from the first scan
        free_port(),
        journal,
        "g-000000000000." + "A" * 43,
    )
    return world, env, credential


def test_kill_during_offline_burst_loses_no_answered_acceptance(tmp_path: Path) -> None:
    world, env, credential = offline_sidecar(tmp_path)
    accepted: dict[str, str] = {}  # request id -> token, for every 200 valid offline answer
    lock = threading.Lock()
    stop = threading.Event()

    def burst(n: int, url: str) -> None:
        client = Scanner(url, credential, timeout=5)
        i = 0
        while not stop.is_set():
            token, rid = world.token(sub=f"burst-{n}-{i}"), f"b-{n}-{i}"
            i += 1
            try:
                status, doc = client.scan(token, rid)
            except OSError:
                return  # the sidecar is gone
            if status == 200 and doc.get("valid") is True:
                assert doc["mode"] == "offline" and doc["covered"] is None, doc
                with lock:
                    accepted[rid] = token
        client.close()

    with SidecarProcess(env) as side:
        side.wait_ready()
        threads = [threading.Thread(target=burst, args=(n, side.url)) for n in range(SCANNERS)]
        for t in threads:
            t.start()
        wait_for(lambda: len(accepted) >= 200, 30, "200 offline acceptances")
        side.kill()
        stop.set()
        for t in threads:
            t.join(10)
    answered = dict(accepted)
    assert len(answered) >= 200

    journal = env["VERIFIER_JOURNAL"]
    with sqlite3.connect(journal) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    listed = run_verifier(["sidecar", "journal", "--journal", journal], env)
    assert listed.returncode == 0, listed.stderr
    rows = [orjson.loads(line) for line in listed.stdout.splitlines()]
    in_journal = {r["request_id"] for r in rows}
    assert set(answered) <= in_journal
    assert all(r["state"] == "pending" for r in rows)
    assert not any(token in listed.stdout for token in answered.values())

    with SidecarProcess(env) as side:
        side.wait_ready()
        assert side.status()["pending"] == len(rows)
        client = Scanner(side.url, credential)
        for rid, token in list(answered.items())[:: max(1, len(answered) // 25)]:
            status, doc = client.scan(token, "again-" + rid)
            assert (status, doc["reason"], doc["mode"]) == (200, "replayed", "offline"), doc
            status, doc = client.scan(token, rid)  # the same request again: its first answer
            assert (status, doc["valid"], doc["reason"]) == (200, True, "ok"), doc
        client.close()
