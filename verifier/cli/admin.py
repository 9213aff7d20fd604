"""Plumbing shared by the admin commands (`registry`, `institutions`, `scanners`).

They all write to the store the service reads: --store, VERIFIER_STORE or the ``store`` key of
the config file (--config, VERIFIER_CONFIG), read by the loader `verifier serve` uses
(:mod:`verifier.config`), which refuses ``memory://``: it lives inside one serving process, so
there is nothing to write to. Store failures become one line that names the URL scheme only
(the URL may carry a password).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TextIO, TypeVar
from urllib.parse import urlsplit

from verifier.config import AdminSettings, load
from verifier.errors import ConfigError, StoreAuthFailed, StoreUnavailable
from verifier.store import Store, open_store

T = TypeVar("T")

# Admin calls are rare and may cross a network: a generous deadline, not the hot path's 50 ms.
ADMIN_DEADLINE_MS = 2000

STORE_EPILOG = (
    "The store is named by --store, else VERIFIER_STORE, else the 'store' key of the TOML file "
    "named by --config or VERIFIER_CONFIG (default redis://127.0.0.1:6379/0; rediss:// for "
    "TLS, with VERIFIER_REDIS_CA_FILE and a client certificate in VERIFIER_REDIS_CERT_FILE and "
    "VERIFIER_REDIS_KEY_FILE when needed). A password goes in the URL: "
    "redis://:PASSWORD@host:port/db, or redis://USER:PASSWORD@host:port/db for an ACL user. "
    "memory:// cannot be used: it lives inside one serving process (try `verifier demo`). "
    "--allow-eviction (VERIFIER_ALLOW_EVICTION=1) writes to a Redis whose maxmemory-policy is "
    "not noeviction."
)

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the rule records.py ids follow (see registry.py)


def store_flags() -> argparse.ArgumentParser:
    """A parent parser with the flags every admin command takes (--store, --config, …)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("store")
    g.add_argument("--store", metavar="URL", help="redis://… or rediss://… (VERIFIER_STORE)")
    g.add_argument("--config", metavar="FILE", help="TOML config file (VERIFIER_CONFIG)")
    g.add_argument(
        "--allow-eviction",
        action="store_const",
        const=True,
        help="write to a Redis whose maxmemory-policy may evict (VERIFIER_ALLOW_EVICTION)",
    )
    return p


def admin_settings(a: argparse.Namespace, environ: Mapping[str, str]) -> AdminSettings:
    """AdminSettings from the flags of :func:`store_flags`, ``environ`` and the config file."""
    overrides = {"store": a.store, "allow_eviction": a.allow_eviction}
    return load(AdminSettings, environ, overrides, a.config)


def with_store(opts: AdminSettings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, run ``work`` on it, close it; return what ``work`` returned.

    ``opts`` are settings as :func:`admin_settings` returns them (memory:// already refused).
    Raises StoreUnavailable with a one-line, password-free message when the store does not
    answer.
    """
    scheme = urlsplit(opts.store).scheme

    async def run() -> T:
        store = await open_store(
            opts.store,
            deadline_ms=ADMIN_DEADLINE_MS,
            allow_eviction=opts.allow_eviction,
            tls_files=(opts.redis_ca_file, opts.redis_cert_file, opts.redis_key_file),
        )
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreAuthFailed as err:  # it answered: "is it running" would send people astray
        raise StoreAuthFailed(_redact(str(err), opts.store)) from err
    except StoreUnavailable as err:
        detail = _redact(str(err).splitlines()[0] if str(err) else "", opts.store)
        raise StoreUnavailable(
            f"the store at {scheme}:// did not answer ({detail}); "
            "is it running, and is the store URL right?"
        ) from err


def _redact(text: str, url: str) -> str:
    # redis-py does not put passwords in its messages; make sure of it anyway.
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def check_id(value: str, what: str) -> str:
    """``value`` if it can name a record (1-64 of A-Z a-z 0-9 _ -), else ConfigError."""
    if not _ID.fullmatch(value):
        raise ConfigError(f"{what} must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def fail(message: str) -> int:
    """Print ``verifier: error: message`` on stderr and return exit status 1."""
    print(f"verifier: error: {message}", file=sys.stderr)
    return 1


def render_bar(done: int, total: int, width: int = 30) -> str:
    """A text progress bar such as ``[#########.....] 4500/10000  45%``."""
    frac = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = int(frac * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {int(frac * 100):3d}%"


class Progress:
    """Progress of a bulk write on ``stream``.

    On a terminal the bar is redrawn in place (carriage return); otherwise (a log file, a pipe)
    one plain line is written for the first chunk, then at every tenth of the way.
    """

    def __init__(self, total: int, stream: TextIO, tty: bool, label: str = "importing") -> None:
        self._total = total
        self._stream = stream
        self._tty = tty
        self._label = label
        self._step = -1  # last tenth reported on a non-terminal
        self.done = 0
        self._drawn = False  # an in-place bar is on the terminal line

    def update(self, done: int) -> None:
        """Report that ``done`` items of the total are written."""
        self.done = done
        line = f"{self._label} {render_bar(done, self._total)}"
        if self._tty:
            self._stream.write("\r" + line)
            self._stream.flush()
            self._drawn = True
            return
        step = 10 if self._total <= 0 else done * 10 // self._total
        if step > self._step:
            self._step = step
            self._stream.write(line + "\n")
            self._stream.flush()

    def finish(self) -> None:
        """End the in-place bar with a newline (a non-terminal needs nothing)."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
