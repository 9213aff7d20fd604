"""A verifier service in a child process, seeded for a bench run (``bench quick``).

The child builds the runtime the way ``verifier demo`` does (:func:`open_runtime`, then
:func:`start_site` on a free loopback port). With ``memory://`` the store lives inside that
child, so the child itself seeds it: the institution, one scanner credential and the holders
of a ``registry.jsonl``. With a Redis URL the same calls write to Redis. The child reports
``(port, credential)`` back over a pipe and serves until the parent closes its end of the
pipe (or sends SIGTERM); :func:`local_service` does all of that as a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from verifier import registry
from verifier.config import load_settings
from verifier.credentials import new_credential
from verifier.errors import VerifierError
from verifier.records import Institution
from verifier.service.server import install_uvloop, open_runtime, start_site
from verifier.store.memory import MemoryStore

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class LocalServiceError(RuntimeError):
    """The child service could not be started (bad files, store down, no port …)."""


@dataclass(frozen=True)
class LocalServiceConfig:
    """What to serve: the store, the trust files, and what to seed into the store."""

    store: str  # memory:// or redis://…
    trust_list: Path
    root_key: Path
    registry: Path  # registry.jsonl of the holders
    institution: str
    institution_name: str
    cards: tuple[str, ...]


@dataclass(frozen=True)
class LocalService:
    """A running child service: where to send requests, and with which credential."""

    url: str  # http://127.0.0.1:PORT/v1/verify
    credential: str
    pid: int


@contextlib.contextmanager
def local_service(config: LocalServiceConfig) -> Iterator[LocalService]:
    """Start the child, wait until it is seeded and listening, stop it on exit."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child_main, args=(config, child), name="bench-local-service")
    proc.start()
    child.close()
    try:
        if not parent.poll(START_TIMEOUT_S):
            raise LocalServiceError(f"the local service did not start in {START_TIMEOUT_S:g} s")
        try:
            kind, payload = parent.recv()
        except EOFError as err:
            proc.join(STOP_TIMEOUT_S)
            raise LocalServiceError(
                f"the local service exited during start-up (exit code {proc.exitcode})"
            ) from err
        if kind != "ready":
            raise LocalServiceError(f"the local service could not start: {payload}")
        port, credential = payload
        assert proc.pid is not None
        yield LocalService(f"http://127.0.0.1:{port}/v1/verify", credential, proc.pid)
    finally:
        parent.close()  # the child sees end-of-file and shuts down
        proc.join(STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.terminate()
            proc.join(STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _child_main(config: LocalServiceConfig, pipe: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.basicConfig(level=logging.WARNING)
    install_uvloop()
    try:
        asyncio.run(_serve(config, pipe))
    except (VerifierError, OSError) as err:
        with contextlib.suppress(OSError):  # the parent may be gone already
            pipe.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        pipe.close()


async def _serve(config: LocalServiceConfig, pipe: Connection) -> None:
    settings = load_settings(
        {},
        {
            "store": config.store,
            "trust_list": str(config.trust_list),
            "root_key": str(config.root_key),
            "listen": "127.0.0.1:0",
            "log_level": "warning",
        },
    )
    memory = config.store.startswith("memory://")
    rt = await open_runtime(settings, MemoryStore() if memory else None)
    try:
        store = rt.store
        inst = Institution(config.institution, config.institution_name, frozenset(config.cards))
        await store.put_institution(inst)
        credential, scanner = new_credential(config.institution)
        await store.put_scanner(scanner)
        with config.registry.open(encoding="utf-8") as lines:
            await store.put_holders(registry.parse_jsonl(lines))
        runner = await start_site(rt, "127.0.0.1", 0, reuse_port=False)
        try:
            pipe.send(("ready", (runner.addresses[0][1], credential)))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(pipe.fileno(), stop.set)  # readable = the parent closed its end
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        await rt.store.close()
