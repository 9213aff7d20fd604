"""The workers of one ``verifier serve --workers N`` seen as one service.

The parent makes a directory for the service; every worker writes a snapshot of its counters
and of its readiness problems there (``<pid>-<nonce>.json``, written to a temporary name and
renamed into place) about once a second, when it answers ``/metrics`` and when it stops. The
worker answering ``/metrics`` adds every other worker's last snapshot to its own current
counters; a dead worker's file stays, so its counts stay in the totals (they never go down
when a worker is killed and replaced). ``/readyz`` adds the problems of every other worker
whose snapshot is younger than :data:`FRESH_SECONDS`. None of this is on the request path: a
verify only increments the counters it always did.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from verifier.service.metrics import Metrics

log = logging.getLogger("verifier")

INTERVAL_SECONDS = 1.0
# A snapshot older than this is a worker that stopped (or hangs): its problems no longer
# count, nor its open connections; its counters do.
FRESH_SECONDS = 5.0


class Peers:
    """This worker's view of the service's shared snapshot directory."""

    def __init__(self, directory: Path, metrics: Metrics) -> None:
        self.directory = directory
        self.metrics = metrics
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}.json"
        self.problems: list[str] = []

    def write(self) -> None:
        doc = {
            "pid": os.getpid(),
            "at": time.time(),
            "problems": self.problems,
            "metrics": self.metrics.snapshot(),
        }
        tmp = self.directory / f".{self.name}.tmp"
        try:
            tmp.write_bytes(orjson.dumps(doc))
            os.replace(tmp, self.directory / self.name)
        except OSError as err:  # a full disk must not stop the service answering
            log.warning("could not write this worker's metrics snapshot: %s", err)

    def others(self) -> list[dict[str, Any]]:
        """Every other worker's last snapshot, live or dead (unreadable ones skipped)."""
        out = []
        try:
            names = [p for p in self.directory.iterdir() if p.name.endswith(".json")]
        except OSError:
            return []
        for path in names:
            if path.name == self.name:
                continue
            try:
                out.append(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                continue
        return out

    def combined(self) -> Metrics:
        """This worker's counters plus every other worker's last snapshot."""
        self.write()  # what a scrape shows stays in the totals if this worker is killed
        now = time.time()
        return self.metrics.combined(
            (doc["metrics"], now - doc["at"] < FRESH_SECONDS) for doc in self.others()
        )

    def other_problems(self) -> list[str]:
        now = time.time()
        return [
            f"worker {doc['pid']}: {problem}"
            for doc in self.others()
            if now - doc["at"] < FRESH_SECONDS
            for problem in doc["problems"]
        ]

    async def keep_writing(self, problems: Callable[[], Awaitable[list[str]]]) -> None:
        """Every :data:`INTERVAL_SECONDS`: check readiness, write the snapshot (until cancelled)."""
        while True:
            try:
                self.problems = await problems()
            except Exception:  # noqa: BLE001 - a failed check must not stop the snapshots
                log.exception("readiness check failed")
                self.problems = ["readiness check failed"]
            self.write()
            await asyncio.sleep(INTERVAL_SECONDS)
