"""Store outages in the log: one line when the store stops answering, one when it is back.

Requests refused with 503 ``store_unavailable`` are counted in ``/metrics``; the log gets one
``store_down`` line at the first of them (with the store's own reason: a timeout, a refused
connection, an authentication failure), then nothing per request. A probe pings the store
every ``interval`` seconds until it answers, and logs ``store_up`` with how long it was down
and how many requests were refused meanwhile. Nothing runs while the store answers: a request
pays for this only when it is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from verifier.errors import StoreAuthFailed, StoreUnavailable
from verifier.service.logs import event
from verifier.store.base import Store

log = logging.getLogger("verifier.store")


class StoreOutage:
    def __init__(
        self,
        store: Store,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.interval = interval
        self._clock = clock
        self.down_since: float | None = None
        self.refused = 0  # requests refused since down_since
        self._probe: asyncio.Task[None] | None = None

    def failed(self, err: StoreUnavailable) -> None:
        """A request was refused because the store failed with ``err``."""
        self.refused += 1
        if self.down_since is not None:
            return
        self.down_since = self._clock()
        event(
            log,
            logging.ERROR,
            "store_down",
            f"store unavailable: {err}; answering 503 store_unavailable until it answers again",
            reason=str(err),
            auth_failed=isinstance(err, StoreAuthFailed),
        )
        self._probe = asyncio.get_running_loop().create_task(self._until_back())

    async def _until_back(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.store.ping()
            except StoreUnavailable:
                continue
            break
        since = self.down_since if self.down_since is not None else self._clock()
        down_for, refused = self._clock() - since, self.refused
        self.down_since, self.refused, self._probe = None, 0, None
        event(
            log,
            logging.WARNING,
            "store_up",
            f"store answering again after {down_for:.1f} s down; {refused} request(s) were "
            "refused with 503 meanwhile",
            down_seconds=round(down_for, 3),
            refused=refused,
        )

    def close(self) -> None:
        """Stop probing (the service is stopping)."""
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
