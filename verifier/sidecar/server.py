"""Running a sidecar: assemble its runtime, serve it through the service's framings, and keep
the background work going (probe, directory and trust-list sync, journal drain).

The sidecar is the same :class:`verifier.service.endpoint.Endpoint` as the centre, served by
the same :func:`verifier.service.server.start_site` (fast path and aiohttp), with its own
``pipeline`` (:class:`verifier.sidecar.verdicts.GatewayVerdicts`), its own scanner admission
(:class:`verifier.sidecar.directory.GatewayScanners`), its own API document, and one more
route, ``GET /v1/gateway/status``. What the endpoint calls its ``store`` (readiness, and the
probe that ends a logged outage) is :class:`Health`: the scanner directory and the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import orjson

from verifier import trust
from verifier.config import SidecarSettings
from verifier.errors import ConfigError, RecordError, StoreUnavailable, TrustListError
from verifier.keyfiles import read_root_key
from verifier.service.endpoint import Answer, Endpoint, Runtime
from verifier.service.logs import configure_logging, event
from verifier.service.metrics import Metrics
from verifier.service.server import (
    Site,
    claim_policy,
    connection_limits,
    install_uvloop,
    start_site,
)
from verifier.service.trustwatch import TrustWatch
from verifier.sidecar.breaker import CLOSED, Breaker, BreakerPolicy
from verifier.sidecar.budget import OfflineBudget
from verifier.sidecar.directory import Directory, GatewayScanners
from verifier.sidecar.journal import STATES, Journal, JournalUnavailable
from verifier.sidecar.journal_types import format_ms
from verifier.sidecar.openapi import OFFLINE_TOO_LONG, SIDECAR_OPENAPI, STATUS_PATH
from verifier.sidecar.reconcile import Drainer
from verifier.sidecar.sync import (
    CredentialRefused,
    Syncer,
    SyncFailed,
    fetch_trust_list,
    save_trust_list,
)
from verifier.sidecar.upstream import Upstream, UpstreamFailed
from verifier.sidecar.verdicts import GatewayVerdicts
from verifier.store.base import Store

log = logging.getLogger("verifier.sidecar")

SYNC_TIMEOUT_MS = 10_000  # directory, trust list and reconcile calls


class SidecarEndpoint(Endpoint):
    """The centre's endpoint with the sidecar's API document and metrics."""

    def __init__(self, rt: Runtime, sidecar: Sidecar) -> None:
        super().__init__(rt)
        self.sidecar = sidecar

    def openapi(self) -> Answer:
        return Answer(200, SIDECAR_OPENAPI)

    async def problems(self) -> list[str]:
        """The endpoint's, and: offline for longer than ``VERIFIER_OFFLINE_MAX_AGE`` (every
        scan the centre cannot answer is 503 then)."""
        problems = await super().problems()
        if self.sidecar.breaker.too_long_offline(int(time.time() * 1000)):
            problems.append(OFFLINE_TOO_LONG)
        return problems

    def metrics(self) -> Answer:
        base = super().metrics()
        return Answer(base.status, base.body + self.sidecar.metrics().encode(), base.headers)


@dataclass(frozen=True)
class Health:
    """What a sidecar's verdicts depend on locally, seen as the endpoint's ``store``: ``ping``
    raises StoreUnavailable while no scanner can be admitted (no directory ever synced and the
    centre away) or while the journal cannot commit (so nothing may be accepted offline).
    ``/readyz`` then says ``store unreachable``, and an outage is logged once (``store_down``,
    with the reason) until a ping succeeds (``store_up``)."""

    scanners: GatewayScanners
    journal: Journal

    async def ping(self) -> None:
        await self.scanners.ping()
        try:
            await self.journal.check()
        except JournalUnavailable as err:
            raise StoreUnavailable(str(err)) from err

    async def close(self) -> None:
        return None


@dataclass
class Sidecar:
    """A sidecar's parts; :func:`open_sidecar` builds it, :meth:`close` ends it."""

    settings: SidecarSettings
    runtime: Runtime
    breaker: Breaker
    journal: Journal
    scanners: GatewayScanners
    syncer: Syncer
    drainer: Drainer
    clients: tuple[Upstream, Upstream]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def status(self) -> Answer:
        s = self.breaker.status()
        since = s["offline_since"]
        body = {
            "mode": s["mode"],
            "offline_since": format_ms(since) if isinstance(since, int) else None,
            **{state: n for state, n in self.journal.counts().items() if state in STATES},
            "trust_list_version": self.runtime.trust.current.version,
            "scanners": len(self.scanners.directory.scanners),
            "synced_at": format_ms(self.syncer.synced_at) if self.syncer.synced_at else None,
            "gateway_credential": "refused" if self.breaker.refused else "accepted",
        }
        return Answer(200, orjson.dumps(body), {"Cache-Control": "no-store"})

    def metrics(self) -> str:
        """Prometheus lines about the link and the journal, after the endpoint's own."""
        since = self.breaker.offline_since
        offline_s = 0.0 if since is None else max(0.0, time.time() - since / 1000)
        lines = [
            "# HELP verifier_sidecar_online 1 while the centre answers, 0 while offline.",
            "# TYPE verifier_sidecar_online gauge",
            f"verifier_sidecar_online {int(self.breaker.state == CLOSED)}",
            "# HELP verifier_sidecar_unanswered_seconds Since the centre last failed to answer.",
            "# TYPE verifier_sidecar_unanswered_seconds gauge",
            f"verifier_sidecar_unanswered_seconds {offline_s:.3f}",
            "# HELP verifier_sidecar_credential_refused 1 once the centre refused the gateway "
            "credential (no offline acceptance), until a sync is accepted.",
            "# TYPE verifier_sidecar_credential_refused gauge",
            f"verifier_sidecar_credential_refused {int(self.breaker.refused is not None)}",
            "# HELP verifier_sidecar_journal_rows Offline acceptances by reconciliation state.",
            "# TYPE verifier_sidecar_journal_rows gauge",
            *(
                f'verifier_sidecar_journal_rows{{state="{state}"}} {n}'
                for state, n in self.journal.counts().items()
            ),
            "# HELP verifier_sidecar_journal_commits_total Durable group commits.",
            "# TYPE verifier_sidecar_journal_commits_total counter",
            f"verifier_sidecar_journal_commits_total {self.journal.commits}",
        ]
        return "\n".join(lines) + "\n"

    def start_background(self) -> None:
        loop = asyncio.get_running_loop()
        for work in (self.syncer.run(), self.syncer.probe(), self.drainer.run()):
            self.tasks.append(loop.create_task(work))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in self.clients:
            await client.close()
        await self.journal.close()


async def _first_trust_list(path: Path, scans: Upstream, credential: str, root: bytes) -> None:
    """No local copy yet: fetch the centre's and keep it, once the root key has checked it."""
    try:
        text = await fetch_trust_list(scans, credential)
    except CredentialRefused as err:
        raise ConfigError(f"VERIFIER_GATEWAY_CREDENTIAL: {err}") from err
    except (UpstreamFailed, SyncFailed) as err:
        raise ConfigError(
            f"VERIFIER_TRUST_LIST: no trust list at {path} and none from the centre ({err})"
        ) from err
    try:
        trust.load(text, root, time.time())
    except TrustListError as err:
        raise ConfigError(
            f"VERIFIER_ROOT_KEY: the centre's trust list is refused, nothing was kept: {err}"
        ) from err
    try:
        save_trust_list(path, text)
    except OSError as err:
        raise ConfigError(f"VERIFIER_TRUST_LIST: cannot write {path}: {err.strerror}") from err


async def open_sidecar(settings: SidecarSettings) -> Sidecar:
    """Everything but the listening socket; raises ConfigError (or a JournalError) when the
    sidecar cannot start."""
    root = read_root_key(settings.root_key)
    policy = claim_policy(settings)
    budget = OfflineBudget(
        settings.offline_limit, settings.offline_window, settings.offline_max_amount
    )
    breaker = Breaker(BreakerPolicy(max_offline_ms=settings.offline_max_age))
    scans = Upstream(settings.upstream, timeout_ms=settings.upstream_timeout_ms)
    background = Upstream(settings.upstream, timeout_ms=SYNC_TIMEOUT_MS, pool=4)
    await scans.start()
    await background.start()
    directory_path = Path(settings.journal + ".scanners.json")
    trust_path = Path(settings.trust_list_path)
    credential = settings.gateway_credential
    try:
        try:
            scanners = GatewayScanners(
                Directory.load(directory_path), lambda: breaker.state == CLOSED
            )
        except RecordError as err:
            raise ConfigError(f"scanner directory: {err}") from err
        if not trust_path.exists():
            await _first_trust_list(trust_path, background, credential, root)
        try:
            watch = TrustWatch(trust_path, root)
        except TrustListError as err:
            raise ConfigError(f"VERIFIER_TRUST_LIST: {err}") from err
        journal = await Journal.open(settings.journal, budget=budget)
    except BaseException:
        await scans.close()
        await background.close()
        raise
    metrics = Metrics()
    verdicts = GatewayVerdicts(scans, breaker, journal, watch, policy, metrics)
    runtime = Runtime(
        store=cast(Store, Health(scanners, journal)),  # the endpoint only pings it
        trust=watch,
        pipeline=verdicts,
        scanners=scanners,
        metrics=metrics,
        fast_path=settings.fast_path,
        access_log=settings.access_log,
        connections=connection_limits(settings),
    )
    await verdicts.load_unreconciled()
    drainer = Drainer(background, credential, breaker, journal, on_settled=verdicts.reconciled)
    syncer = Syncer(
        background,
        scans,
        credential,
        breaker,
        scanners,
        directory_path,
        watch,
        settings.sync_interval,
        drainer.wake,
    )
    return Sidecar(
        settings, runtime, breaker, journal, scanners, syncer, drainer, (scans, background)
    )


async def start_sidecar_site(sidecar: Sidecar, host: str, port: int) -> Site:
    rt = sidecar.runtime
    return await start_site(
        rt,
        host,
        port,
        reuse_port=False,
        endpoint=SidecarEndpoint(rt, sidecar),
        extra_routes=[(STATUS_PATH, "GET", sidecar.status)],
    )


async def serve_sidecar(settings: SidecarSettings) -> None:
    """Until SIGTERM/SIGINT: one first sync (best effort), then serve and work in background."""
    sidecar = await open_sidecar(settings)
    try:
        try:
            await sidecar.syncer.sync_once()
        except (SyncFailed, UpstreamFailed, OSError) as err:
            log.warning("first sync with the centre failed; using the local copies: %s", err)
        host, port = settings.host_port
        try:
            site = await start_sidecar_site(sidecar, host, port)
        except OSError as err:
            raise ConfigError(f"VERIFIER_LISTEN: cannot listen on {host}:{port}: {err}") from err
        sidecar.start_background()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        port = site.addresses[0][1]  # the port it got, when asked for port 0
        pending = sidecar.journal.counts()["pending"]
        event(
            log,
            logging.INFO,
            "start",
            f"sidecar serving on http://{host}:{port} (upstream {settings.upstream}, journal "
            f"{settings.journal}: {pending} pending, access log "
            f"{'on' if settings.access_log else 'off'})",
            host=host,
            port=port,
            pending=pending,
        )
        try:
            await stop.wait()
        finally:
            await site.cleanup()
    finally:
        await sidecar.close()


def run_sidecar(settings: SidecarSettings) -> int:
    """`verifier sidecar`: serve until stopped."""
    configure_logging(settings.log_level, settings.log_format, settings.access_log)
    install_uvloop()
    started = time.monotonic()
    asyncio.run(serve_sidecar(settings))
    event(log, logging.INFO, "stop", f"sidecar stopped after {time.monotonic() - started:.0f} s")
    return 0
