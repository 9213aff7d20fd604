"""The offline journal: replay and retry, budget in the same transaction, group commit,
outcomes, listings without tokens, and refusal of damaged files."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from verifier.sidecar.budget import AMOUNT, COUNT, OfflineBudget
from verifier.sidecar.journal import (
    CONFIRMED,
    CONFLICT,
    NEW,
    OVER_BUDGET,
    PENDING,
    REJECTED,
    REPLAYED,
    RETRY,
    Acceptance,
    Journal,
    JournalCorrupt,
    JournalError,
    JournalUnavailable,
    Outcome,
)
from verifier.sidecar.journal_file import JournalFile

T = TypeVar("T")
NOW = 1_800_000_000_000
TOKEN = "v4.public.SECRET-TOKEN-BYTES"
ID_NUMBER = "11010519491231002X"


def acc(n: int, **kw: object) -> Acceptance:
    fields: dict[str, object] = {
        "sub": f"H{n}",
        "jti": f"J{n}",
        "token": f"{TOKEN}-{n}",
        "request_id": f"R{n}",
        "scanner": "S1",
        "accepted_at": NOW + n,
    }
    fields.update(kw)
    return Acceptance(**fields)  # type: ignore[arg-type]


def run(path: Path, body: Callable[[Journal], Awaitable[T]], **open_kw: object) -> T:
    async def main() -> T:
        journal = await Journal.open(path, **open_kw)  # type: ignore[arg-type]
        try:
            return await body(journal)
        finally:
            await journal.close()

    return asyncio.run(main())


def test_new_then_replayed_then_retry(tmp_path: Path) -> None:
    async def body(j: Journal) -> None:
        first = await j.record(acc(1))
        assert first.outcome == NEW and first.entry is not None
        assert (first.entry.state, first.entry.token) == (PENDING, f"{TOKEN}-1")
        # same nonce, another request id or another scanner: a second use
        assert (await j.record(acc(1, request_id="R9"))).outcome == REPLAYED
        assert (await j.record(acc(1, scanner="S2"))).outcome == REPLAYED
        # same nonce, scanner and request id: the first answer again, even later
        again = await j.record(acc(1, accepted_at=NOW + 60_000))
        assert again.outcome == RETRY and again.entry == first.entry
        # another holder may have the same jti: the key is (sub, jti)
        assert (await j.record(acc(2, jti="J1"))).outcome == NEW
        assert j.counts() == {PENDING: 2, CONFIRMED: 0, CONFLICT: 0, REJECTED: 0}

    run(tmp_path / "j.db", body)


def test_replay_is_refused_after_a_restart(tmp_path: Path) -> None:
    async def first(j: Journal) -> None:
        assert (await j.record(acc(1))).outcome == NEW

    async def second(j: Journal) -> None:
        assert j.counts()[PENDING] == 1  # counts are loaded on open
        assert (await j.record(acc(1, request_id="other"))).outcome == REPLAYED

    run(tmp_path / "j.db", first)
    run(tmp_path / "j.db", second)


def test_one_loop_turn_is_one_commit_and_items_see_each_other(tmp_path: Path) -> None:
    async def body(j: Journal) -> None:
        items = [acc(n) for n in range(50)] + [acc(7, request_id="dup"), acc(8)]
        # gather() starts every record() in the same loop turn
        results = await asyncio.gather(*(j.record(a) for a in items))
        assert j.commits == 1
        assert [r.outcome for r in results] == [NEW] * 50 + [REPLAYED, RETRY]
        assert j.counts()[PENDING] == 50

    run(tmp_path / "j.db", body)


def test_records_arriving_during_a_commit_form_the_next_group(tmp_path: Path) -> None:
    async def body(j: Journal) -> None:
        first = asyncio.ensure_future(j.record(acc(0)))
        await asyncio.sleep(0)  # record() queues acc(0)
        while j._waiting:  # until the writer has taken it, alone, as a group
            await asyncio.sleep(0)
        later = [asyncio.ensure_future(j.record(acc(n))) for n in range(1, 20)]
        results = await asyncio.gather(first, *later)
        assert all(r.outcome == NEW for r in results)
        assert j.commits == 2

    run(tmp_path / "j.db", body)


def test_budget_is_checked_in_the_same_transaction(tmp_path: Path) -> None:
    budget = OfflineBudget(max_count=2, window_ms=60_000, max_amount=10_000)

    async def body(j: Journal) -> None:
        # three scans of one holder in one turn: the third finds the first two in the batch
        same_holder = [acc(n, sub="H") for n in range(3)]
        results = await asyncio.gather(*(j.record(a) for a in same_holder))
        assert [r.outcome for r in results] == [NEW, NEW, OVER_BUDGET]
        over = results[2]
        assert over.entry is None and over.budget is not None and over.budget.exceeded == COUNT
        # refused scans are not journalled: the nonce stays usable later
        assert j.counts()[PENDING] == 2
        # a retry of an accepted scan is answered as before, not refused by the budget
        assert (await j.record(acc(0, sub="H"))).outcome == RETRY
        # a window later the holder may be accepted again, with the nonce refused before
        later = acc(2, sub="H", accepted_at=NOW + 2 + 60_000)
        assert (await j.record(later)).outcome == NEW
        # amounts: 100.00 yuan per window
        assert (await j.record(acc(10, service="pharmacy", amount=6_000))).outcome == NEW
        big = await j.record(acc(11, sub="H10", service="pharmacy", amount=4_001))
        assert big.outcome == OVER_BUDGET and big.budget and big.budget.exceeded == AMOUNT

    run(tmp_path / "j.db", body, budget=budget)


def test_outcomes_move_pending_rows_once(tmp_path: Path) -> None:
    async def body(j: Journal) -> None:
        ids = []
        for n in range(5):
            entry = (await j.record(acc(n))).entry
            assert entry is not None
            ids.append(entry.id)
        batch = await j.oldest_pending(3)
        assert [e.id for e in batch] == ids[:3]
        moved = await j.mark(
            [
                Outcome(ids[0], CONFIRMED),
                Outcome(ids[1], CONFLICT, "nonce used at INST-2"),
                Outcome(ids[2], REJECTED, "expired"),
            ],
            NOW + 1_000,
        )
        assert moved == {CONFIRMED: 1, CONFLICT: 1, REJECTED: 1}
        # a second, different outcome for a settled row changes nothing
        assert await j.mark([Outcome(ids[0], REJECTED, "late")], NOW + 2_000) == {
            CONFIRMED: 0,
            CONFLICT: 0,
            REJECTED: 0,
        }
        assert j.counts() == {PENDING: 2, CONFIRMED: 1, CONFLICT: 1, REJECTED: 1}
        assert [e.id for e in await j.oldest_pending(10)] == ids[3:]
        (rejected,) = await j.rows(REJECTED)
        assert (rejected.detail, rejected.updated_at) == ("expired", NOW + 1_000)
        (confirmed,) = await j.rows(CONFIRMED)
        assert confirmed.state == CONFIRMED
        assert [e.id for e in await j.rows(limit=2, after_id=ids[1])] == ids[2:4]

    run(tmp_path / "j.db", body)
    # the in-memory counts agree with the file
    file = JournalFile.open(tmp_path / "j.db", create=False)
    try:
        assert file.counts() == {PENDING: 2, CONFIRMED: 1, CONFLICT: 1, REJECTED: 1}
    finally:
        file.close()


def test_listing_leaves_out_the_token_and_masks_id_numbers(tmp_path: Path) -> None:
    async def body(j: Journal) -> None:
        rec = await j.record(acc(1, sub=ID_NUMBER, service="outpatient", amount=12_345))
        assert rec.entry is not None
        await j.mark([Outcome(rec.entry.id, CONFLICT, f"holder {ID_NUMBER} seen at X")], NOW)
        (entry,) = await j.rows()
        view = entry.public()
        assert view == {
            "id": entry.id,
            "sub": "1101**********002X",
            "request_id": "R1",
            "scanner": "S1",
            "accepted_at": "2027-01-15T08:00:00.001+00:00",
            "service": "outpatient",
            "amount": "123.45",
            "state": CONFLICT,
            "detail": "holder 1101**********002X seen at X",
            "updated_at": "2027-01-15T08:00:00.000+00:00",
        }
        for text in (repr(view), repr(entry), repr(acc(1))):
            assert TOKEN not in text
        assert ID_NUMBER not in repr(view)

    run(tmp_path / "j.db", body)


def test_new_journal_is_private_and_durable(tmp_path: Path) -> None:
    run(tmp_path / "j.db", lambda j: j.record(acc(1)))
    assert stat.S_IMODE(os.stat(tmp_path / "j.db").st_mode) == 0o600
    db = sqlite3.connect(tmp_path / "j.db")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        db.close()
    file = JournalFile.open(tmp_path / "j.db")
    try:
        # synchronous is per connection: FULL (2) means every commit is fsynced
        assert file._db.execute("PRAGMA synchronous").fetchone() == (2,)
        assert file.integrity_check() == "ok"
    finally:
        file.close()


def test_a_failed_commit_fails_its_whole_group_and_commits_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.db"

    async def body(j: Journal) -> None:
        assert (await j.record(acc(0))).outcome == NEW
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            results = await asyncio.gather(
                *(j.record(acc(n)) for n in (1, 2)), return_exceptions=True
            )
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert all(isinstance(r, JournalUnavailable) for r in results)
        assert j.counts()[PENDING] == 1
        # nothing of the failed group was written: the same scans are new now
        assert (await j.record(acc(1))).outcome == NEW

    run(path, body, busy_timeout_s=0.05)


def test_check_probes_a_failing_journal_until_it_commits_again(tmp_path: Path) -> None:
    path = tmp_path / "j.db"

    async def body(j: Journal) -> None:
        await j.check()  # healthy: nothing to probe
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(JournalUnavailable):
                await j.record(acc(1))
            with pytest.raises(JournalUnavailable, match="cannot commit"):
                await j.check()  # still locked: the probe commit fails too
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await j.check()  # the probe commits: healthy again
        assert j.failing is None
        assert (await j.record(acc(1))).outcome == NEW

    run(path, body, busy_timeout_s=0.05)


def test_close_commits_what_is_waiting(tmp_path: Path) -> None:
    async def main() -> None:
        j = await Journal.open(tmp_path / "j.db")
        pending = [asyncio.ensure_future(j.record(acc(n))) for n in range(10)]
        await asyncio.sleep(0)
        await j.close()
        assert all(p.result().outcome == NEW for p in pending)
        with pytest.raises(JournalUnavailable):
            await j.record(acc(99))
        await j.close()  # idempotent

    asyncio.run(main())
    file = JournalFile.open(tmp_path / "j.db", create=False)
    try:
        assert file.counts()[PENDING] == 10
    finally:
        file.close()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(b"not a database at all " * 200)
    with pytest.raises(JournalCorrupt, match="not an intact SQLite database"):
        JournalFile.open(path)

    async def main() -> None:
        with pytest.raises(JournalCorrupt):
            await Journal.open(path)

    asyncio.run(main())


def test_a_damaged_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    file = JournalFile.open(path)
    file.record_batch([acc(n) for n in range(2_000)], None)
    file.close()  # the last connection checkpoints the WAL into the file
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(page, len(data), page):
        data[start + 1 : start + 8] = b"\xff" * 7  # wreck each b-tree page header
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt, match=r"failed its integrity check \(PRAGMA quick_check\)"):
        JournalFile.open(path)


def test_a_missing_journal_is_not_created_when_not_asked(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no such file"):
        JournalFile.open(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    JournalFile.open(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="schema version 99"):
        JournalFile.open(path)


@pytest.mark.parametrize(
    "kw",
    [
        {"sub": ""},
        {"jti": ""},
        {"token": ""},
        {"request_id": ""},
        {"scanner": ""},
        {"accepted_at": -1},
        {"accepted_at": 1.5},
        {"service": "pharmacy"},  # without an amount
        {"amount": 100},  # without a service
        {"service": "pharmacy", "amount": -1},
    ],
)
def test_invalid_acceptance(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        acc(1, **kw)


def test_invalid_outcome_and_state() -> None:
    with pytest.raises(ValueError):
        Outcome(1, PENDING)
    assert len(Outcome(1, REJECTED, "x" * 1_000).detail) == 200


def test_rows_refuse_an_unknown_state(tmp_path: Path) -> None:
    file = JournalFile.open(tmp_path / "j.db")
    try:
        with pytest.raises(ValueError):
            file.rows("done")
    finally:
        file.close()
