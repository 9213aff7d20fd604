"""Running the service: assemble the runtime, serve on N processes, reload on SIGHUP.

``--workers N`` starts N processes that each bind the same port with SO_REUSEPORT; the
kernel spreads connections across them. The parent supervises them
(:mod:`verifier.service.supervisor`: a worker that dies is logged and restarted).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from verifier.benefits import BenefitPolicy
from verifier.benefits_file import load_policy
from verifier.config import Listening, Settings, claim_seconds
from verifier.errors import ConfigError, VerifierError
from verifier.keyfiles import read_root_key
from verifier.policy import ClaimPolicy
from verifier.service.app import ExtraRoute, QuietRequestHandler, build_app
from verifier.service.auth import ScannerCache
from verifier.service.connections import ConnectionLimits, RefusalLog, ensure_descriptors
from verifier.service.endpoint import Endpoint, Runtime
from verifier.service.fastpath import Front
from verifier.service.logs import configure_logging, event
from verifier.service.metrics import Metrics
from verifier.service.peers import Peers
from verifier.service.pipeline import Pipeline
from verifier.service.supervisor import Supervisor
from verifier.service.trustwatch import TrustWatch
from verifier.store import open_store
from verifier.store.base import Store

log = logging.getLogger("verifier")


def claim_policy(settings: Listening) -> ClaimPolicy:
    """The token core's claim rules from either command's settings (a sidecar shares its
    journal with no other verifier, so it has no clock skew to allow for)."""
    skew = settings.clock_skew if isinstance(settings, Settings) else 0
    return ClaimPolicy(
        max_lifetime=claim_seconds(settings.max_lifetime),
        exp_leeway=claim_seconds(settings.exp_leeway),
        future_leeway=claim_seconds(settings.future_leeway),
        clock_skew=claim_seconds(skew),
    )


def connection_limits(settings: Listening) -> ConnectionLimits:
    """The connection settings of either command, as the framings take them."""
    return ConnectionLimits(
        header_timeout=settings.header_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
        keepalive_timeout=settings.keepalive_seconds,
        max_connections=settings.max_connections,
    )


async def open_runtime(settings: Settings, store: Store | None = None) -> Runtime:
    """Load keys, trust list and policies, open (and check) the store. Raises on bad config."""
    watch = TrustWatch(settings.trust_list, read_root_key(settings.root_key))
    benefits = load_policy(settings.policy) if settings.policy else BenefitPolicy.default()
    if store is None:
        store = await open_store(
            settings.store,
            deadline_ms=settings.store_deadline_ms,
            allow_eviction=settings.allow_eviction,
            min_replicas=settings.min_replicas,
            reconcile_window_ms=settings.reconcile_window,
            tls_files=(settings.redis_ca_file, settings.redis_cert_file, settings.redis_key_file),
        )
    metrics = Metrics()
    return Runtime(
        store=store,
        trust=watch,
        pipeline=Pipeline(store, watch, claim_policy(settings), benefits, metrics),
        scanners=ScannerCache(store, settings.auth_cache_seconds),
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        max_batch_bytes=settings.max_batch_bytes,
        fast_path=settings.fast_path,
        access_log=settings.access_log,
        connections=connection_limits(settings),
    )


class Site:
    """A listening service: aiohttp's runner, and the fast-path front when it is on."""

    def __init__(self, runner: web.AppRunner, server: asyncio.Server, front: Front) -> None:
        self.runner = runner
        self.server = server
        self.front = front
        self._closed = False

    @property
    def addresses(self) -> list[Any]:
        return [sock.getsockname() for sock in self.server.sockets]

    async def cleanup(self) -> None:
        """Stop listening, finish the requests in flight, close every connection."""
        if self._closed:
            return
        self._closed = True
        self.server.close()
        await self.front.close()
        await self.runner.cleanup()
        self.front.endpoint.outage.close()  # no probe outlives the service


async def start_site(
    rt: Runtime,
    host: str,
    port: int,
    reuse_port: bool,
    endpoint: Endpoint | None = None,
    extra_routes: Sequence[ExtraRoute] = (),
) -> Site:
    """Serve ``endpoint`` (default: ``Endpoint(rt)``) through both framings; a gateway sidecar
    passes its own endpoint and its extra routes. Every connection is governed by the front
    (``rt.connections``), whichever framing answers it."""
    limits = rt.connections
    ensure_descriptors(limits.max_connections)
    ep = endpoint or Endpoint(rt)
    app = build_app(rt, ep, extra_routes)
    # Requests in flight get the same drain on stop as the fast path's (Front.close), not
    # aiohttp's 60 s.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10.0)
    await runner.setup()
    manager = runner.server
    assert manager is not None  # set up above
    loop = asyncio.get_running_loop()
    refusals = RefusalLog()

    def aiohttp_protocol() -> asyncio.Protocol:
        return QuietRequestHandler(
            manager,
            endpoint=ep,
            refusals=refusals,
            loop=loop,
            keepalive_timeout=limits.keepalive_timeout,  # not aiohttp's own (an hour)
            max_field_size=8190,
            auto_decompress=False,  # bodies are never inflated (Endpoint.encoding_refusal)
            access_log=None,
        )

    front = Front(ep, aiohttp_protocol, rt.max_body_bytes, limits, fast=rt.fast_path)
    server = await loop.create_server(
        front.protocol, host, port, reuse_port=reuse_port or None, backlog=1024
    )
    return Site(runner, server, front)


async def serve_forever(settings: Settings, reuse_port: bool, shared: Path | None = None) -> None:
    """One worker: runtime + site + trust reloads, until SIGTERM/SIGINT. ``shared``: the
    directory where the workers of ``--workers N`` keep their snapshots (:mod:`peers`)."""
    rt = await open_runtime(settings)
    host, port = settings.host_port
    ep = Endpoint(rt)
    snapshots = None
    if shared is not None:
        rt.peers = Peers(shared, rt.metrics)
        snapshots = asyncio.create_task(rt.peers.keep_writing(ep.problems))
    runner = await start_site(rt, host, port, reuse_port, ep)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, rt.trust.reload)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    watcher = asyncio.create_task(rt.trust.watch(settings.trust_poll_seconds))
    gc.collect()
    gc.freeze()  # start-up objects never need scanning again
    port = runner.addresses[0][1]  # the port it got, when asked for port 0
    version = rt.trust.current.version
    event(
        log,
        logging.INFO,
        "start",
        f"serving on http://{host}:{port} (trust list v{version}, store "
        f"{urlsplit(settings.store).scheme}://, access log {'on' if rt.access_log else 'off'})",
        host=host,
        port=port,
        trust_list_version=version,
    )
    try:
        await stop.wait()
    finally:
        began = time.monotonic()
        watcher.cancel()
        if snapshots is not None:
            snapshots.cancel()
        await runner.cleanup()
        await rt.store.close()
        if rt.peers is not None:
            rt.peers.problems = []  # stopped, not unready: its counts stay in the totals
            rt.peers.write()
        event(
            log,
            logging.INFO,
            "stop",
            f"stopped: stopped accepting, finished the requests in flight and closed the "
            f"connections in {time.monotonic() - began:.2f} s",
        )


def _run_worker(settings: Settings, reuse_port: bool, shared: Path | None = None) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop installs the reload handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards SIGINT as it sees fit
    configure_logging(settings.log_level, settings.log_format, settings.access_log)
    install_uvloop()
    try:
        asyncio.run(serve_forever(settings, reuse_port, shared))
    except VerifierError as err:  # e.g. Redis gone while this worker (re)started
        log.error("worker could not start: %s", err)
        sys.exit(1)


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def check_startup(settings: Settings) -> int:
    """Fail fast, in the parent, on what every worker would refuse: files, keys, list, store.

    Returns the port the listen address can have (the one the kernel picks for port 0)."""

    async def probe() -> None:
        rt = await open_runtime(settings)
        await rt.store.close()

    host, port = settings.host_port
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as err:
            raise ConfigError(
                f"VERIFIER_LISTEN: cannot listen on {host}:{port}: {err.strerror}"
            ) from err
        port = s.getsockname()[1]
    if Path(settings.trust_list).is_dir():
        raise ConfigError("VERIFIER_TRUST_LIST: is a directory")
    asyncio.run(probe())
    return int(port)


def serve(settings: Settings) -> int:
    """`verifier serve`: validate everything once, then run the worker(s)."""
    # A SIGHUP (reload) that arrives before the event loop handles it must not kill us; the
    # ignored disposition is also inherited by spawned workers until their loops take over.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_logging(settings.log_level, settings.log_format, settings.access_log)
    port = check_startup(settings)
    if settings.workers == 1:
        install_uvloop()
        asyncio.run(serve_forever(settings, reuse_port=False))
        return 0
    # Port 0: every worker must bind the port the kernel picked, not one each.
    host = settings.host_port[0]
    settings = replace(settings, listen=f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    ctx = multiprocessing.get_context("spawn")
    # The workers' snapshots, so that /metrics and /readyz speak for the whole service.
    shared = Path(tempfile.mkdtemp(prefix="verifier-workers-"))

    def start() -> BaseProcess:
        p = ctx.Process(target=_run_worker, args=(settings, True, shared), daemon=False)
        p.start()
        return p

    try:
        return Supervisor(settings.workers, start).run()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
