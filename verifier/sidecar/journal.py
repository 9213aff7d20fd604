"""The durable offline journal, for the event loop: one writer thread, one commit per group.

Offline, a scan may be answered ``valid`` only after its nonce is committed to disk
(:mod:`verifier.sidecar.journal_file`: SQLite, WAL, ``synchronous=FULL``). An fsync costs
from a fraction of a millisecond to several, so commits are grouped, the way PostgreSQL groups
WAL flushes: every :meth:`Journal.record` call made while the writer is idle or busy joins the
next group, and one transaction on the writer thread commits the whole group before any of its
callers is answered. Calls made in one loop turn therefore always share a commit, and under
load a group holds every scan that arrived during the previous commit. Durability is never
weakened to go faster.

All SQLite work, reads included, runs on the single writer thread, so the connection is never
shared and a budget check and the write it allows happen in one transaction.

Typical use::

    journal = await Journal.open("sidecar.db", budget=OfflineBudget())
    rec = await journal.record(Acceptance(sub, jti, token, request_id, scanner, now_ms))
    if rec.outcome == NEW: ...  # durable: answer valid, offline, settle later
    await journal.close()
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from verifier.sidecar.budget import OfflineBudget
from verifier.sidecar.journal_file import JournalFile
from verifier.sidecar.journal_types import (
    CONFIRMED,
    CONFLICT,
    NEW,
    OVER_BUDGET,
    PENDING,
    REJECTED,
    REPLAYED,
    RETRY,
    STATES,
    Acceptance,
    Entry,
    JournalCorrupt,
    JournalError,
    JournalUnavailable,
    Outcome,
    Recorded,
)

T = TypeVar("T")
_Waiter = tuple[Acceptance, "asyncio.Future[Recorded]"]


class Journal:
    """The journal as the sidecar uses it; build it with :meth:`open`, end it with :meth:`close`."""

    def __init__(
        self,
        file: JournalFile,
        executor: ThreadPoolExecutor,
        budget: OfflineBudget | None,
        counts: dict[str, int],
    ) -> None:
        self._file = file
        self._executor = executor
        self._budget = budget
        self._counts = counts
        self._waiting: list[_Waiter] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._writer = asyncio.get_running_loop().create_task(self._write_groups())
        self.commits = 0  # group commits so far (for metrics and tests)
        self.failing: JournalUnavailable | None = None  # the last commit's error, until one works

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        budget: OfflineBudget | None = None,
        busy_timeout_s: float = 1.0,
    ) -> Journal:
        """Open or create the journal at ``path`` (integrity-checked; see JournalFile.open).

        With a ``budget``, :meth:`record` refuses a holder whose offline budget is spent.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        loop = asyncio.get_running_loop()
        try:
            file = await loop.run_in_executor(
                executor, lambda: JournalFile.open(path, busy_timeout_s=busy_timeout_s)
            )
            counts = await loop.run_in_executor(executor, file.counts)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(file, executor, budget, counts)

    async def record(self, item: Acceptance) -> Recorded:
        """Journal one offline acceptance; returns once its group is durably committed.

        NEW: accept the scan. RETRY: the same scanner and request id were journalled before
        (``entry`` is that row): answer as the first time. REPLAYED: refuse. OVER_BUDGET: the
        holder's offline budget is spent (``budget`` says which limit), nothing written.
        Raises JournalUnavailable when the commit failed (the scan must not be accepted). If
        the caller is cancelled, the row may still be committed; a retry then gets RETRY.
        """
        if self._closed or self._writer.done():
            raise JournalUnavailable("journal is closed")
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._wake.set()
        return await future

    async def _write_groups(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                if self._closed:
                    return
                # Wakes on the loop turn after the first record(): every record() made in
                # that turn is in the group by then.
                await self._wake.wait()
                self._wake.clear()
                continue
            group, self._waiting = self._waiting, []
            try:
                results = await loop.run_in_executor(
                    self._executor,
                    self._file.record_batch,
                    [item for item, _ in group],
                    self._budget,
                )
            except JournalUnavailable as err:
                self.failing = err
                _fail(group, err)
                continue
            except BaseException as err:
                # A bug or a cancelled loop: no caller may wait forever for this group.
                _fail(group, JournalUnavailable(f"journal writer stopped: {err!r}"))
                raise
            self.commits += 1
            self.failing = None
            self._counts[PENDING] += sum(r.outcome == NEW for r in results)
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def check(self) -> None:
        """Nothing while the last commit worked; after a failed one, a probe commit
        (:meth:`JournalFile.probe`), which raises JournalUnavailable until the journal can
        commit again."""
        if self.failing is None:
            return
        if self._closed or self._writer.done():
            raise JournalUnavailable("journal is closed")
        await self._run(self._file.probe)
        self.failing = None

    def counts(self) -> dict[str, int]:
        """Rows per state as of the last commit (kept in memory; no database read)."""
        return dict(self._counts)

    async def rows(
        self, state: str | None = None, *, limit: int = 1000, after_id: int = 0
    ) -> list[Entry]:
        """Up to ``limit`` rows (of ``state``, or all) with id > ``after_id``, in id order."""
        return await self._run(lambda: self._file.rows(state, limit=limit, after_id=after_id))

    async def oldest_pending(self, limit: int) -> list[Entry]:
        """The next reconciliation batch: up to ``limit`` pending rows, first journalled first."""
        return await self._run(lambda: self._file.oldest_pending(limit))

    async def mark(self, outcomes: Sequence[Outcome], now_ms: int) -> dict[str, int]:
        """Store the centre's outcomes for pending rows, durably; returns rows moved per state.

        A row that is no longer pending keeps its first outcome.
        """
        moved = await self._run(lambda: self._file.mark(outcomes, now_ms))
        for state, n in moved.items():
            self._counts[state] += n
            self._counts[PENDING] -= n
        return moved

    async def integrity_check(self) -> str:
        """``"ok"`` or SQLite's first complaint (full ``PRAGMA integrity_check``)."""
        return await self._run(self._file.integrity_check)

    async def close(self) -> None:
        """Commit what is waiting, stop the writer, close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        try:
            await self._writer
        finally:
            await self._run(self._file.close)
            self._executor.shutdown(wait=True)

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


def _fail(group: list[_Waiter], err: JournalUnavailable) -> None:
    for _, future in group:
        if not future.done():
            future.set_exception(err)


__all__ = [
    "CONFIRMED",
    "CONFLICT",
    "NEW",
    "OVER_BUDGET",
    "PENDING",
    "REJECTED",
    "REPLAYED",
    "RETRY",
    "STATES",
    "Acceptance",
    "Entry",
    "Journal",
    "JournalCorrupt",
    "JournalError",
    "JournalUnavailable",
    "Outcome",
    "Recorded",
]
