"""The live trust list: loaded at start, reloaded on SIGHUP and when its file changes.

A new list replaces the old one only if it verifies (root signature, not expired, version
not older); otherwise the error is logged and the old list stays. Requests never see a
half-loaded list: the reference is swapped in one assignment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from verifier import rfc3339, trust
from verifier.errors import TrustListError
from verifier.trust import TrustList

log = logging.getLogger("verifier.trust")


class TrustWatch:
    def __init__(self, path: str | Path, root_public: bytes, now: float | None = None) -> None:
        self.path = Path(path)
        self.root_public = root_public
        self._stamp = self._file_stamp()
        # The first load must succeed: starting without a trust list is a configuration error.
        self.current: TrustList = trust.load_file(self.path, root_public, now or time.time())
        self.reloads = 0
        self.reload_failures = 0

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self, now: float | None = None) -> bool:
        """Try to load the file again; True if a new list is now in force."""
        self._stamp = self._file_stamp()
        try:
            new = trust.load_file(self.path, self.root_public, now or time.time(), self.current)
        except TrustListError as err:
            self.reload_failures += 1
            log.error(
                "trust list reload refused, keeping version %s: %s", self.current.version, err
            )
            return False
        changed = new != self.current
        self.current = new
        if changed:
            self.reloads += 1
            log.info(
                "trust list version %s loaded (%d keys, expires %s)",
                new.version,
                len(new.keys),
                rfc3339.format(new.exp),
            )
        return changed

    def changed_on_disk(self) -> bool:
        return self._file_stamp() != self._stamp

    async def watch(self, interval: float) -> None:
        """Poll the file every ``interval`` seconds (cheap stat) and reload on change."""
        while True:
            await asyncio.sleep(interval)
            if self.changed_on_disk():
                self.reload()
