"""SIGKILL during a burst of offline acceptances loses nothing that was reported.

A child process journals acceptances in a loop and prints each one after its commit (as the
sidecar answers 200 only after the commit). It is killed with SIGKILL mid-burst; after that,
every acceptance it reported must be in the journal, the file must pass the full
``PRAGMA integrity_check``, and a replay of a reported nonce must be refused.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from verifier.sidecar.journal import REPLAYED, Acceptance, Journal
from verifier.sidecar.journal_file import JournalFile

CHILD = Path(__file__).with_name("journal_child.py")
ROOT = Path(__file__).resolve().parents[2]
REPORTED_BEFORE_KILL = 2_000


def test_sigkill_loses_no_reported_acceptance(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path)], stdout=subprocess.PIPE, env=env, cwd=ROOT
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline() == b"ready\n"
        reported: list[str] = []
        while len(reported) < REPORTED_BEFORE_KILL:
            line = child.stdout.readline()
            assert line.endswith(b"\n"), "the child stopped by itself"
            reported.append(line.decode().strip())
        child.send_signal(signal.SIGKILL)  # mid-burst: 16 scanners are committing
        rest = child.stdout.read()  # lines written before the kill, still in the pipe
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    reported += [ln for ln in rest.decode().split("\n")[:-1]]  # only complete lines

    file = JournalFile.open(path, create=False)  # recovers the WAL; quick_check passes
    try:
        assert file.integrity_check() == "ok"
        journalled = {e.jti for e in file.iter_rows()}
    finally:
        file.close()
    missing = set(reported) - journalled
    assert not missing, f"{len(missing)} reported acceptances lost, e.g. {sorted(missing)[:3]}"

    async def replay() -> None:
        journal = await Journal.open(path)
        try:
            n, i = reported[-1][1:].split("-")
            again = Acceptance(f"H{n}-{i}", reported[-1], "v4.public.x", "other", f"S{n}", 5)
            assert (await journal.record(again)).outcome == REPLAYED
        finally:
            await journal.close()

    asyncio.run(replay())
