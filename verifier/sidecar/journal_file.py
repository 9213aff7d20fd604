"""The journal's SQLite file: schema, durability settings, and one method per transaction.

Synchronous and single-threaded on purpose: :class:`verifier.sidecar.journal.Journal` runs
every call on one writer thread and groups the acceptances of a loop turn into one
:meth:`JournalFile.record_batch`; ``verifier sidecar journal`` uses this class directly.

Durability: WAL mode with ``synchronous=FULL``, so a commit has reached the disk (the WAL is
fsynced) before :meth:`record_batch` returns: a process kill loses no acceptance that was
answered, nor does a power loss on a disk that honours flushes. Opening runs ``PRAGMA quick_check`` and refuses a damaged file.
The token is stored because reconciliation must send it to the centre; it never leaves this
file except in that request, and :meth:`Entry.public` and ``repr`` leave it out.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from verifier.sidecar.budget import OfflineBudget, Use
from verifier.sidecar.journal_types import (
    NEW,
    OVER_BUDGET,
    PENDING,
    REPLAYED,
    RETRY,
    SETTLED_STATES,
    STATES,
    Acceptance,
    Entry,
    JournalCorrupt,
    JournalError,
    JournalUnavailable,
    Outcome,
    Recorded,
)

SCHEMA_VERSION = 1
_COLUMNS = (
    "id, sub, jti, token, request_id, scanner, accepted_at, service, amount, state, detail,"
    " updated_at"
)
_SCHEMA = f"""
CREATE TABLE journal (
    id          INTEGER PRIMARY KEY,
    sub         TEXT    NOT NULL,
    jti         TEXT    NOT NULL,
    token       TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    scanner     TEXT    NOT NULL,
    accepted_at INTEGER NOT NULL,          -- ms since the epoch
    service     TEXT,
    amount      INTEGER CHECK (amount IS NULL OR amount >= 0),   -- fen
    state       TEXT    NOT NULL DEFAULT '{PENDING}'
                CHECK (state IN ({", ".join(f"'{s}'" for s in STATES)})),
    detail      TEXT    NOT NULL DEFAULT '',
    updated_at  INTEGER NOT NULL,          -- ms since the epoch
    UNIQUE (sub, jti)
);
CREATE INDEX journal_by_state ON journal (state);  -- each index entry ends with the id
PRAGMA user_version = {SCHEMA_VERSION};
"""

T = TypeVar("T")


class JournalFile:
    """An open journal database. Not thread-safe: use it from one thread only."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, create: bool = True, busy_timeout_s: float = 1.0
    ) -> JournalFile:
        """Open (or create) the journal at ``path``, checking its integrity first.

        ``busy_timeout_s``: how long a write waits for another process's lock on the file
        (say, an operator's ``sqlite3`` shell) before the transaction fails.

        Raises JournalCorrupt when the file is not an intact journal, JournalError when it
        cannot be opened (missing with ``create=False``, permissions, a newer schema).
        A new file is created readable by its owner only: it holds tokens.
        """
        p = Path(path)
        if not p.exists():
            if not create:
                raise JournalError(f"journal {p}: no such file")
            try:
                os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as err:
                raise JournalError(f"journal {p}: cannot create: {err.strerror}") from err
        try:
            db = sqlite3.connect(p, isolation_level=None, timeout=busy_timeout_s)
        except sqlite3.Error as err:
            raise JournalError(f"journal {p}: cannot open: {err}") from err
        try:
            _check_intact(db, p)
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
                raise JournalError(f"journal {p}: cannot switch to WAL mode")
            db.execute("PRAGMA synchronous=FULL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
            elif version != SCHEMA_VERSION:
                raise JournalError(
                    f"journal {p}: schema version {version}, this program reads {SCHEMA_VERSION}"
                )
        except sqlite3.Error as err:
            db.close()
            raise JournalError(f"journal {p}: {err}") from err
        except JournalError:
            db.close()
            raise
        return cls(db, p)

    def close(self) -> None:
        self._db.close()

    # -- writes: each is one durable transaction ----------------------------------------

    def record_batch(
        self, items: Sequence[Acceptance], budget: OfflineBudget | None
    ) -> list[Recorded]:
        """Record offline acceptances in one transaction; one Recorded per item, in order.

        Per item: a (sub, jti) already journalled is RETRY when scanner and request id match
        the row (the row is returned) and REPLAYED otherwise; else the budget (if any) may
        refuse it (OVER_BUDGET, nothing written); else the row is written (NEW). Items of one
        batch see each other's rows. Returns only after the commit is durable; on any SQLite
        error nothing is committed and JournalUnavailable is raised for the whole batch.
        """
        return self._transaction(lambda: [self._record_one(item, budget) for item in items])

    def probe(self) -> None:
        """One durable write that changes nothing (the schema version, rewritten): raises
        JournalUnavailable while the journal cannot commit (locked, read-only, disk full)."""
        self._transaction(lambda: self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}"))

    def _transaction(self, work: Callable[[], T]) -> T:
        """``work`` in one durable write transaction: committed whole, or rolled back and
        JournalUnavailable raised on any SQLite error."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = work()
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise JournalUnavailable(f"journal {self.path}: cannot commit: {err}") from err
        return out

    def _record_one(self, item: Acceptance, budget: OfflineBudget | None) -> Recorded:
        db = self._db
        row = db.execute(
            f"SELECT {_COLUMNS} FROM journal WHERE sub = ? AND jti = ?", (item.sub, item.jti)
        ).fetchone()
        if row is not None:
            first = Entry(*row)
            if first.scanner == item.scanner and first.request_id == item.request_id:
                return Recorded(RETRY, first, None)
            return Recorded(REPLAYED, None, None)
        if budget is not None:
            uses = db.execute(
                "SELECT accepted_at, amount FROM journal WHERE sub = ? AND accepted_at > ?",
                (item.sub, budget.window_start(item.accepted_at)),
            )
            decision = budget.decide((Use(*u) for u in uses), item.amount, item.accepted_at)
            if not decision.allowed:
                return Recorded(OVER_BUDGET, None, decision)
        cur = db.execute(
            "INSERT INTO journal (sub, jti, token, request_id, scanner, accepted_at, service,"
            " amount, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item.sub,
                item.jti,
                item.token,
                item.request_id,
                item.scanner,
                item.accepted_at,
                item.service,
                item.amount,
                item.accepted_at,
            ),
        )
        assert cur.lastrowid is not None
        return Recorded(NEW, Entry.of(cur.lastrowid, item), None)

    def mark(self, outcomes: Sequence[Outcome], now_ms: int) -> dict[str, int]:
        """Settle pending rows with the centre's outcomes in one durable transaction.

        Only a row still pending changes (a row keeps its first outcome). Returns how many rows
        moved to each settled state. Raises JournalUnavailable on a SQLite error.
        """
        moved = dict.fromkeys(SETTLED_STATES, 0)

        def settle() -> None:
            for o in outcomes:
                cur = self._db.execute(
                    "UPDATE journal SET state = ?, detail = ?, updated_at = ?"
                    " WHERE id = ? AND state = ?",
                    (o.state, o.detail, now_ms, o.id, PENDING),
                )
                moved[o.state] += cur.rowcount

        self._transaction(settle)
        return moved

    # -- reads ----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Rows per state, every state present (0 when none)."""
        out = dict.fromkeys(STATES, 0)
        for state, n in self._db.execute("SELECT state, count(*) FROM journal GROUP BY state"):
            out[state] = n
        return out

    def oldest_pending(self, limit: int) -> list[Entry]:
        """Up to ``limit`` pending rows, first journalled first: the next reconcile batch."""
        return self.rows(PENDING, limit=limit)

    def rows(
        self, state: str | None = None, *, limit: int = 1000, after_id: int = 0
    ) -> list[Entry]:
        """Up to ``limit`` rows (of ``state``, or all) with id > ``after_id``, in id order.

        Ids grow in journal order, so ``after_id=<last id seen>`` pages through a journal
        that is still being written.
        """
        return list(self.iter_rows(state, limit=limit, after_id=after_id))

    def iter_rows(
        self, state: str | None = None, *, limit: int | None = None, after_id: int = 0
    ) -> Iterator[Entry]:
        """Rows in id (journal) order, streamed (for ``verifier sidecar journal``)."""
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        where = "id > ?" + (" AND state = ?" if state else "")
        params: tuple[object, ...] = (after_id, state) if state else (after_id,)
        sql = f"SELECT {_COLUMNS} FROM journal WHERE {where} ORDER BY id"
        if limit is not None:
            sql, params = sql + " LIMIT ?", (*params, limit)
        for row in self._db.execute(sql, params):
            yield Entry(*row)

    def integrity_check(self) -> str:
        """``"ok"``, or SQLite's first complaint (``PRAGMA integrity_check``, the full scan)."""
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])


def _check_intact(db: sqlite3.Connection, path: Path) -> None:
    try:
        rows = db.execute("PRAGMA quick_check(3)").fetchall()
    except sqlite3.DatabaseError as err:
        raise JournalCorrupt(f"journal {path} is not an intact SQLite database: {err}") from err
    if rows != [("ok",)]:
        lines = [ln for r in rows for ln in str(r[0]).splitlines() if not ln.startswith("***")]
        raise JournalCorrupt(
            f"journal {path} failed its integrity check (PRAGMA quick_check): "
            + ("; ".join(lines) or "no answer")
            + ". It is not used; move it aside and keep it (its pending rows are unreconciled)."
        )
