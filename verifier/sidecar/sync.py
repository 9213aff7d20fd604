"""What the sidecar keeps from the centre while it answers: the scanner directory and the
signed trust list; and the probe that tells when an unreachable centre answers again.

- ``GET /v1/gateway/scanners`` (gateway credential): the institution's scanners, kept in
  memory and on disk (:mod:`verifier.sidecar.directory`).
- ``GET /v1/trust-list``: the signed trust list as the centre serves it. It is checked against
  the sidecar's own root key (:func:`verifier.trust.load`: signature, expiry, no downgrade);
  a newer version is written over the local copy (atomically) and loaded. A list the root key
  does not sign is logged and ignored: the centre cannot make the sidecar trust a key.
- The probe: while the breaker is open, ``GET /readyz`` at the centre every probe interval;
  the first answer closes the breaker (and wakes the journal's drain).

Sync calls use their own client with a longer deadline than scans; a sync the centre does not
answer (connection error, timeout, 5xx) counts as a failure for the breaker as a scan's
forward would, so an outage with no scans is seen too; a 401/403 to the gateway credential
(revoked, or unknown at the centre) is :meth:`Breaker.credential_refused`: no offline
acceptance until a sync is accepted again. The probe uses the scans' client and deadline, as a
scan would.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from verifier import trust
from verifier.errors import RecordError, TrustListError
from verifier.service.logs import event
from verifier.service.trustwatch import TrustWatch
from verifier.sidecar.breaker import Breaker
from verifier.sidecar.directory import Directory, GatewayScanners, write_atomically
from verifier.sidecar.upstream import Upstream, UpstreamAnswer, UpstreamFailed

log = logging.getLogger("verifier.sidecar")

SCANNERS_PATH = "/v1/gateway/scanners"
TRUST_LIST_PATH = "/v1/trust-list"


def _now_ms() -> int:
    return int(time.time() * 1000)


class SyncFailed(Exception):
    """One sync step did not complete; the message says which and why (for the log)."""


class CredentialRefused(SyncFailed):
    """The centre answered 401 or 403 to the gateway credential."""


def check_answer(what: str, answer: UpstreamAnswer) -> None:
    """SyncFailed unless ``answer`` is a 200; CredentialRefused for a 401 or 403."""
    if answer.status == 200:
        return
    try:
        doc = orjson.loads(answer.body)
        code = doc.get("error") if type(doc) is dict else None
    except orjson.JSONDecodeError:
        code = None
    said = f"{answer.status} {code}" if type(code) is str else str(answer.status)
    if answer.status in (401, 403):
        raise CredentialRefused(f"{what}: the centre refused the gateway credential ({said})")
    raise SyncFailed(f"{what}: status {said}")


def save_trust_list(path: Path, text: str) -> None:
    """Keep a signed trust list (checked by the caller) as the local copy, atomically."""
    write_atomically(path, (text.strip() + "\n").encode("ascii"))


async def fetch_trust_list(upstream: Upstream, credential: str) -> str:
    """The signed trust list the centre serves (its text), unchecked."""
    answer = await upstream.get(TRUST_LIST_PATH, authorization=f"Bearer {credential}")
    check_answer(f"GET {TRUST_LIST_PATH}", answer)
    body = answer.body.strip()
    if body.startswith(b"{"):  # a JSON wrapper: {"trust_list": "<signed text>"}
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise SyncFailed(f"GET {TRUST_LIST_PATH}: not JSON") from err
        text = doc.get("trust_list") if type(doc) is dict else None
        if type(text) is not str:
            raise SyncFailed(f"GET {TRUST_LIST_PATH}: no trust_list in the answer")
        return text
    try:
        return body.decode("ascii")
    except UnicodeDecodeError as err:
        raise SyncFailed(f"GET {TRUST_LIST_PATH}: not a signed trust list") from err


class Syncer:
    """Directory and trust-list sync every ``interval_ms`` while online, and the probe."""

    def __init__(
        self,
        upstream: Upstream,
        prober: Upstream,
        credential: str,
        breaker: Breaker,
        scanners: GatewayScanners,
        directory_path: Path,
        watch: TrustWatch,
        interval_ms: int,
        on_restored: Callable[[], None],
    ) -> None:
        self.upstream = upstream
        self.prober = prober  # the scans' client: "answers" means within a scan's deadline
        self.credential = credential
        self.breaker = breaker
        self.scanners = scanners
        self.directory_path = directory_path
        self.watch = watch
        self.interval_s = interval_ms / 1000
        self.on_restored = on_restored
        self.syncs = 0  # completed syncs (for status and tests)
        self.synced_at: int | None = None  # ms
        self._now = asyncio.Event()

    def soon(self) -> None:
        """Sync at once rather than at the next interval (the centre is back)."""
        self._now.set()

    async def sync_once(self) -> None:
        """Directory, then trust list. Raises SyncFailed or UpstreamFailed."""
        answer = await self.upstream.get(SCANNERS_PATH, authorization=f"Bearer {self.credential}")
        check_answer(f"GET {SCANNERS_PATH}", answer)
        try:
            directory = Directory.from_json(orjson.loads(answer.body))
        except (orjson.JSONDecodeError, RecordError) as err:
            raise SyncFailed(f"GET {SCANNERS_PATH}: {err}") from err
        if directory != self.scanners.directory:
            await asyncio.to_thread(directory.save, self.directory_path)
            self.scanners.replace(directory)
            log.info("scanner directory synced: %d scanners", len(directory.scanners))
        await self.sync_trust_list()
        self.breaker.record_success(_now_ms())  # the centre answered
        self.breaker.credential_accepted()
        self.syncs += 1
        self.synced_at = _now_ms()

    async def sync_trust_list(self) -> None:
        text = await fetch_trust_list(self.upstream, self.credential)
        current = self.watch.current
        try:
            new = trust.load(text, self.watch.root_public, time.time(), current)
        except TrustListError as err:
            raise SyncFailed(f"trust list from the centre refused: {err}") from err
        if new.version > current.version:
            await asyncio.to_thread(save_trust_list, self.watch.path, text)
            self.watch.reload()

    async def run(self) -> None:
        while True:
            if self.breaker.state == "closed":
                try:
                    await self.sync_once()
                except CredentialRefused as err:
                    self.breaker.credential_refused(str(err))
                except UpstreamFailed as err:
                    self.breaker.record_failure(_now_ms())  # the centre did not answer
                    log.warning("sync with the centre failed: %s", err)
                except (SyncFailed, OSError) as err:
                    log.warning("sync with the centre failed: %s", err)
            try:
                await asyncio.wait_for(self._now.wait(), self.interval_s)
            except TimeoutError:
                pass
            self._now.clear()

    async def probe(self) -> None:
        """While the breaker is open, probe the centre; close it at the first answer."""
        while True:
            delay = self.breaker.probe_delay(_now_ms())
            if delay is None or delay > 0:
                await asyncio.sleep(0.05 if delay is None else min(delay, 50) / 1000)
                continue
            if await self.prober.probe():
                self.breaker.record_success(_now_ms())
                event(log, logging.INFO, "upstream_up", "the central service answers again: online")
                self.soon()
                self.on_restored()
            else:
                self.breaker.record_failure(_now_ms())
