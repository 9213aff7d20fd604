"""Plumbing shared by the admin commands (`registry`, `institutions`, `scanners`).

They all write to the store the service reads, named by VERIFIER_STORE. A ``memory://`` store
lives inside one serving process, so it is refused here: there is nothing to write to. Store
failures become one line that names the URL scheme only (the URL may carry a password).
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TextIO, TypeVar
from urllib.parse import urlsplit

from verifier.errors import ConfigError, StoreUnavailable
from verifier.service.config import parse_bool
from verifier.store import Store, open_store

T = TypeVar("T")

DEFAULT_STORE = "redis://127.0.0.1:6379/0"
# Admin calls are rare and may cross a network: a generous deadline, not the hot path's 50 ms.
ADMIN_DEADLINE_MS = 2000

STORE_EPILOG = (
    "The store is named by VERIFIER_STORE (default redis://127.0.0.1:6379/0; rediss:// for "
    "TLS). memory:// cannot be used: it lives inside one serving process (try `verifier demo`). "
    "Set VERIFIER_ALLOW_EVICTION=1 to write to a Redis whose maxmemory-policy is not noeviction."
)

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the rule records.py ids follow (see registry.py)


@dataclass(frozen=True)
class StoreOptions:
    """Where the admin commands write, read once from the environment."""

    url: str = DEFAULT_STORE
    allow_eviction: bool = False


def store_options(environ: Mapping[str, str]) -> StoreOptions:
    """StoreOptions from VERIFIER_STORE and VERIFIER_ALLOW_EVICTION in ``environ``."""
    url = environ.get("VERIFIER_STORE", "").strip() or DEFAULT_STORE
    allow = parse_bool("VERIFIER_ALLOW_EVICTION", environ.get("VERIFIER_ALLOW_EVICTION", ""))
    return StoreOptions(url, allow)


def with_store(opts: StoreOptions, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, run ``work`` on it, close it; return what ``work`` returned.

    Raises ConfigError for memory:// or an unusable URL, and StoreUnavailable with a one-line,
    password-free message when the store does not answer.
    """
    scheme = urlsplit(opts.url).scheme
    if scheme == "memory":
        raise ConfigError(
            "VERIFIER_STORE is memory://, which lives inside one serving process, so admin "
            "commands cannot reach it; point VERIFIER_STORE at Redis (redis://host:port/db), "
            "or use `verifier demo` for a self-contained demo"
        )

    async def run() -> T:
        store = await open_store(
            opts.url, deadline_ms=ADMIN_DEADLINE_MS, allow_eviction=opts.allow_eviction
        )
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreUnavailable as err:
        detail = _redact(str(err).splitlines()[0] if str(err) else "", opts.url)
        raise StoreUnavailable(
            f"the store at {scheme}:// did not answer ({detail}); "
            "is it running, and is VERIFIER_STORE right?"
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
