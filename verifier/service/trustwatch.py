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
from verifier.service.logs import event
from verifier.trust import TrustList

log = logging.getLogger("verifier.trust")


def _states(tl: TrustList) -> str:
    """``2 active, 1 verify-only``: the keys of a list by state."""
    counts: dict[str, int] = {}
    for key in tl.keys.values():
        counts[key.state] = counts.get(key.state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


class TrustWatch:
    def __init__(self, path: str | Path, root_public: bytes, now: float | None = None) -> None:
        self.path = Path(path)
        self.root_public = root_public
        self._stamp = self._file_stamp()
        # The first load must succeed: starting without a trust list is a configuration error.
        self.current: TrustList
        # The signed bytes of ``current`` as read: what gateways fetch (GET /v1/trust-list).
        self.signed: bytes
        self.current, self.signed = self._load(now or time.time(), None)
        self.reloads = 0
        self.reload_failures = 0

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self, now: float, current: TrustList | None) -> tuple[TrustList, bytes]:
        """The list in the file and its bytes (one read: the bytes are those verified)."""
        try:
            signed = self.path.read_bytes()
            text = signed.decode("ascii")
        except (OSError, UnicodeDecodeError) as err:
            raise TrustListError(f"{self.path}: {err}") from err
        return trust.load(text, self.root_public, now, current), signed

    def reload(self, now: float | None = None) -> bool:
        """Try to load the file again; True if a new list is now in force."""
        self._stamp = self._file_stamp()
        try:
            new, signed = self._load(now or time.time(), self.current)
        except TrustListError as err:
            self.reload_failures += 1
            event(
                log,
                logging.ERROR,
                "trust_reload_refused",
                f"trust list reload refused, keeping version {self.current.version}: {err}",
                kept_version=self.current.version,
                reason=str(err),
            )
            return False
        old, changed = self.current, new != self.current
        self.current, self.signed = new, signed
        if changed:
            self.reloads += 1
        event(
            log,
            logging.INFO,
            "trust_reload",
            f"trust list version {new.version} "
            f"{'loaded (was version ' + str(old.version) + ')' if changed else 'reloaded, unchanged'}"
            f": {len(new.keys)} keys ({_states(new)}), expires {rfc3339.format(new.exp)}",
            version=new.version,
            previous_version=old.version,
            changed=changed,
            keys=len(new.keys),
            expires=rfc3339.format(new.exp),
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
