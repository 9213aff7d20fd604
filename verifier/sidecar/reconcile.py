"""Draining the journal: every offline acceptance is sent to the centre, and its outcome kept.

While the centre answers, pending rows go to ``POST /v1/reconcile`` (gateway credential) in
batches of up to :data:`BATCH` rows, first journalled first::

    {"items": [{"token", "request_id", "scanner", "accepted_at", "service"?, "amount"?}]}

and the centre answers one result per item, in order, each with its ``outcome``
(``confirmed`` with the verdict as of now, ``conflict``, or ``rejected`` with a ``reason``).
Each row keeps its outcome for good (:meth:`Journal.mark`), with the rejection's reason or the
confirmed verdict's reason as its detail. A result without one of those outcomes (the centre
could not decide: its store did not answer) leaves the row pending for the next round; so does
a batch the centre refuses as a whole, which is logged. Sending a row twice is harmless: the
centre gives the same item the same outcome.

The drain runs beside online traffic, on the background client, and waits whenever the breaker
is open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from verifier.money import format_fen
from verifier.sidecar.breaker import CLOSED, Breaker
from verifier.sidecar.journal import (
    CONFIRMED,
    CONFLICT,
    PENDING,
    REJECTED,
    Entry,
    Journal,
    JournalUnavailable,
    Outcome,
)
from verifier.sidecar.journal_types import format_ms
from verifier.sidecar.sync import CredentialRefused, SyncFailed, check_answer
from verifier.sidecar.upstream import Upstream, UpstreamFailed

log = logging.getLogger("verifier.sidecar")

RECONCILE_PATH = "/v1/reconcile"
BATCH = 256
_OUTCOMES = (CONFIRMED, CONFLICT, REJECTED)
_SPLIT = ("fund", "personal_account", "out_of_pocket")  # the settlement's parts, in yuan


def item(row: Entry) -> dict[str, Any]:
    """The reconcile item for one journal row."""
    out: dict[str, Any] = {
        "token": row.token,
        "request_id": row.request_id,
        "scanner": row.scanner,
        "accepted_at": format_ms(row.accepted_at),
    }
    if row.service is not None and row.amount is not None:
        out["service"], out["amount"] = row.service, format_fen(row.amount)
    return out


def outcomes(rows: list[Entry], doc: object) -> list[Outcome]:
    """The outcomes the centre gave ``rows`` (``{"results": [...]}``, one per row, in order).

    A result whose outcome is not final is left out: its row stays pending.
    """
    results = doc.get("results") if type(doc) is dict else None
    if type(results) is not list or len(results) != len(rows):
        raise ValueError("the answer is not one result per item")
    out = []
    for row, result in zip(rows, results, strict=True):
        if type(result) is not dict:
            continue
        state = result.get("outcome")
        if state in _OUTCOMES:
            out.append(Outcome(row.id, state, _detail(result)))
    return out


def _detail(result: dict[str, Any]) -> str:
    """What the journal keeps of a result: a rejection's reason; for a confirmation, the
    verdict's reason (it says the coverage) and, when the scan named a bill, how the centre
    split it: ``ok; fund 80.00, personal account 12.00, out of pocket 8.00``."""
    verdict = result.get("verdict")
    if type(verdict) is not dict:
        return str(result.get("reason") or "")
    detail = str(verdict.get("reason") or "")
    split = verdict.get("settlement")
    if type(split) is dict:
        parts = [(k.replace("_", " "), split.get(k)) for k in _SPLIT]
        detail += "; " + ", ".join(f"{name} {amount}" for name, amount in parts if amount)
    return detail


class Drainer:
    """Sends pending rows to the centre while it answers; see the module docstring."""

    def __init__(
        self,
        upstream: Upstream,
        credential: str,
        breaker: Breaker,
        journal: Journal,
        idle_s: float = 1.0,
        on_settled: Callable[[list[Entry]], None] = lambda rows: None,
    ) -> None:
        self.upstream = upstream
        self.credential = credential
        self.breaker = breaker
        self.journal = journal
        self.idle_s = idle_s
        self.on_settled = on_settled  # rows the centre has judged
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for pending rows now (the centre is back)."""
        self._wake.set()

    async def drain_once(self) -> int:
        """One batch; how many rows got their outcome. Raises UpstreamFailed, SyncFailed
        (CredentialRefused for a 401/403), ValueError."""
        rows = await self.journal.oldest_pending(BATCH)
        if not rows:
            return 0
        body = orjson.dumps({"items": [item(r) for r in rows]})
        answer = await self.upstream.forward(
            RECONCILE_PATH,
            body,
            content_type="application/json",
            authorization=f"Bearer {self.credential}",
            request_id=None,
        )
        check_answer(f"POST {RECONCILE_PATH}", answer)
        self.breaker.record_success(int(time.time() * 1000))  # the centre answered
        settled = outcomes(rows, orjson.loads(answer.body))
        moved = await self.journal.mark(settled, int(time.time() * 1000))
        judged = {o.id for o in settled}
        self.on_settled([r for r in rows if r.id in judged])
        log.info(
            "reconciled %d offline acceptances: %s",
            len(settled),
            ", ".join(f"{n} {state}" for state, n in moved.items() if n) or "none moved",
        )
        return len(settled)

    async def run(self) -> None:
        while True:
            busy = False
            breaker = self.breaker
            if (
                breaker.state == CLOSED
                and breaker.refused is None  # a sync accepted again clears it
                and self.journal.counts()[PENDING] > 0
            ):
                try:
                    busy = await self.drain_once() > 0
                except CredentialRefused as err:
                    self.breaker.credential_refused(str(err))
                except (UpstreamFailed, SyncFailed, ValueError, orjson.JSONDecodeError) as err:
                    log.warning("reconciliation failed, will retry: %s", err)
                except JournalUnavailable as err:
                    log.error("reconciliation outcomes not stored, will retry: %s", err)
            if busy:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.idle_s)
            except TimeoutError:
                pass
            self._wake.clear()
