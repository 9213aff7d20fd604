"""Forgetting means reject, on a cluster (the rules are :mod:`verifier.store.identity`'s).

Every master's identity is read when a connection to it opens (the router's greeting) and again
before a claim goes to it once ``CHECK_INTERVAL_S`` has passed since the last read
(:meth:`ClusterIdentity.recheck`): a restart, a promoted replica or a flush shows there.

A detection is written to every master (:meth:`ClusterIdentity.record_soon`), under a key in one
of that master's own slots (:func:`forgotten_key`), so that the flushed or restarted node itself
need not keep it; a verifier process that starts later reads them all
(:meth:`ClusterIdentity.read_recorded`, in the start-up checks) and refuses what they say.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from itertools import count

from verifier.errors import StoreUnavailable
from verifier.store.cluster_router import ClusterRouter, describe, where
from verifier.store.identity import (
    FORGOTTEN_KEY,
    Forgetting,
    cluster_greeting,
    raise_forgotten,
    recorded_at,
)
from verifier.store.node import Node
from verifier.store.resp import ConnectionDown, pack
from verifier.store.slots import Address, SlotRange, key_slot, tag_slot

log = logging.getLogger("verifier.store.cluster")


def forgotten_key(ranges: list[SlotRange], master: Address) -> str | None:
    """``vf:forgotten:{N}`` for the smallest N whose slot ``master`` serves (None if none)."""
    owned = [(r.start, r.end) for r in ranges if r.master == master]
    if not owned:
        return None
    for n in count():
        slot = tag_slot(b"%d" % n)
        if any(start <= slot <= end for start, end in owned):
            return f"{FORGOTTEN_KEY}:{{{n}}}"
    raise AssertionError("unreachable")  # every slot is some number's


class ClusterIdentity:
    """The periodic identity checks and the recorded detections of one cluster store."""

    def __init__(self, router: ClusterRouter, deadline: float, admin_deadline: float) -> None:
        self._router = router
        self._deadline = deadline
        self._admin_deadline = admin_deadline
        self._checking: dict[Address, asyncio.Future[None]] = {}
        router.watch.on_found = self.record_soon

    async def recheck(self, node: Node) -> None:
        """Read ``node``'s identity again (one read shared by every claim waiting for it);
        StoreUnavailable if it cannot be read within the claim deadline."""
        task = self._checking.get(node.address)
        if task is None:
            task = asyncio.ensure_future(self._check(node))
            self._checking[node.address] = task
            task.add_done_callback(lambda t: self._checked(node.address, t))
        await asyncio.shield(task)

    def _checked(self, address: Address, task: asyncio.Future[None]) -> None:
        self._checking.pop(address, None)
        if not task.cancelled():
            task.exception()  # retrieved here; the waiters get it too

    async def _check(self, node: Node) -> None:
        name = where(node.address)
        try:
            async with asyncio.timeout(self._deadline):
                replies = await asyncio.gather(*(node.conn.call(c) for c in cluster_greeting()))
            self._router.greeted(node.address, replies)
        except TimeoutError as err:
            raise StoreUnavailable(
                f"redis cluster {name}: identity check: no reply within "
                f"{self._deadline * 1000:g} ms"
            ) from err
        except (ConnectionDown, OSError, ssl.SSLError) as err:
            self._router.failed(node)
            raise StoreUnavailable(
                f"redis cluster {name}: identity check: {describe(err)}"
            ) from err

    def record_soon(self, found: Forgetting) -> None:
        """Write ``found`` to every master in the background (best effort: logged if not)."""
        if self._router.closed:
            return
        loop = asyncio.get_running_loop()
        loop.call_soon(self._start_record, found.at)

    def _start_record(self, at: float) -> None:
        if not self._router.closed:
            task = asyncio.ensure_future(self._record(at))
            task.add_done_callback(_log_record_failure)

    async def _record(self, at: float) -> None:
        async with asyncio.timeout(self._admin_deadline):
            await self._on_every_master(lambda key: raise_forgotten(at, key))

    async def read_recorded(self) -> None:
        """Take in the latest detection recorded on any master. The caller bounds the time
        (a master that does not answer keeps this waiting)."""
        for reply in await self._on_every_master(lambda key: pack("GET", key)):
            self._router.watch.recorded(recorded_at(reply))

    async def _on_every_master(self, command: Callable[[str], bytes]) -> list[object]:
        """``command(key)`` sent to each master with its own :func:`forgotten_key`; replies."""
        if not self._router.ranges:
            await self._router.load_map()
        ranges = self._router.ranges
        keys = [k for m in self._router.masters() if (k := forgotten_key(ranges, m)) is not None]
        deadline = self._admin_deadline
        replies = await asyncio.gather(
            *(
                self._router.execute(key_slot(k.encode()), command(k), deadline=deadline)
                for k in keys
            )
        )
        return [reply for reply, _ in replies]


def _log_record_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and (err := task.exception()) is not None:
        log.warning(
            "redis cluster: a detection of forgotten claims was not recorded on every master "
            "(verifier processes that start later may not know it): %s",
            describe(err) if not isinstance(err, StoreUnavailable) else err,
        )
