"""Routing on a Redis Cluster: the slot map, one connection per node, and the replies that
prove a command did not run.

:class:`ClusterRouter` keeps the slot map (read with ``CLUSTER SLOTS`` from a seed or any known
node) and a :class:`verifier.store.node.Node` per address. :meth:`ClusterRouter.execute` sends
one command to the master of its slot and follows, within the caller's deadline, what proves
the command did not run: ``MOVED`` (the slot moved: remember it, refresh the whole map in the
background), ``ASK`` (a slot in migration: this command once to the other node, after
``ASKING``), ``TRYAGAIN`` (a migration splits the keys: pause and try again), ``NOSCRIPT``
(send the script itself). Anything else it cannot follow raises StoreUnavailable; a connection
error propagates (the command may have run) and is never sent again. Connection errors and
``CLUSTERDOWN``/``READONLY``/``LOADING``/``MASTERDOWN`` replies refresh the map, at most every
``REFRESH_INTERVAL_S``: that is how a promoted replica is found after a failover.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time

from verifier.errors import StoreUnavailable
from verifier.store.identity import Watch, cluster_greeting, parse_greeting
from verifier.store.node import Node, NodeConnection
from verifier.store.resp import ConnectionDown, RespError, pack
from verifier.store.slots import (
    SLOTS,
    Address,
    ClusterURL,
    SlotRange,
    parse_cluster_slots,
    parse_redirect,
)

log = logging.getLogger("verifier.store.cluster")

MAX_REDIRECTS = 5  # MOVED/ASK hops for one command; more means the map is in flux
TRYAGAIN_PAUSES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)  # then 0.05 s until the deadline
REFRESH_INTERVAL_S = 0.1  # the slot map is asked for at most this often
PROBES_AT_ONCE = 3  # nodes asked for the slot map together; the first answer wins
# Error replies after which the map is probably out of date (the command did not run).
_TOPOLOGY_ERRORS = ("CLUSTERDOWN", "READONLY", "LOADING", "MASTERDOWN")

_ASKING = pack("ASKING")

Reply = object
Confirm = asyncio.Future[int] | None


class ClusterRouter:
    """The slot map of one cluster and a node (connection) per address it names.

    ``slots[slot]`` is the master's Node, or None (unknown yet, or not served). Connections
    open on first use, with ``deadline``/``admin_deadline`` seconds as in resp's
    PipelinedConnection, and ``tls`` for every node of a ``rediss+cluster://`` URL;
    ``min_replicas`` is what each node's WAIT asks for.
    """

    def __init__(
        self,
        url: ClusterURL,
        *,
        deadline: float,
        admin_deadline: float,
        min_replicas: int,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.url = url
        self.slots: list[Node | None] = [None] * SLOTS
        self.ranges: list[SlotRange] = []
        self.closed = False
        self._deadline = deadline
        self._admin_deadline = admin_deadline
        self._min_replicas = min_replicas
        self._tls = tls
        self._nodes: dict[Address, Node] = {}
        self._refresh: asyncio.Task[None] | None = None
        self._refreshed_at = -REFRESH_INTERVAL_S
        # Forgetting means reject (verifier.store.identity): every connection reads its
        # node's identity before it carries a command, and a node that becomes a master of
        # the map it was not (a promoted replica) is a detection before any claim reaches it.
        self.watch = Watch()
        # Redirections followed, by kind ("moved", "ask", "tryagain"), for /metrics.
        self.redirects: dict[str, int] = dict.fromkeys(("ask", "moved", "tryagain"), 0)

    def node(self, address: Address) -> Node:
        """The node at ``address``, created (without connecting) on first use."""
        node = self._nodes.get(address)
        if node is None:
            conn = NodeConnection(
                self.url.node_url(address),
                deadline=self._deadline,
                connect_timeout=self._admin_deadline,
                stall_timeout=max(1.0, 20 * self._deadline, self._admin_deadline),
                tls=self._tls,
                greeting=cluster_greeting,
                on_greeting=functools.partial(self.greeted, address),
            )
            node = self._nodes[address] = Node(address, conn, self._min_replicas)
        return node

    def masters(self) -> list[Address]:
        """Addresses of the masters in the current slot map (empty before the first use)."""
        return list(dict.fromkeys(r.master for r in self.ranges))

    def greeted(self, address: Address, replies: list[object]) -> None:
        """A node's identity, as a new connection or a periodic check read it (ConnectionDown
        when it cannot be read: the connection then carries nothing)."""
        identity, _ = parse_greeting(replies)
        node = self._nodes.get(address)
        if node is not None:
            node.checked_at = time.monotonic()
        self.watch.observe(where(address), identity, time.time())

    def _apply(self, ranges: list[SlotRange]) -> None:
        if self.ranges:
            before = set(self.masters())
            for address in dict.fromkeys(r.master for r in ranges):
                if address not in before:
                    self.watch.found(where(address), "became a master", time.time())
        slots: list[Node | None] = [None] * SLOTS
        for r in ranges:
            node = self.node(r.master)
            slots[r.start : r.end + 1] = [node] * (r.end - r.start + 1)
        changed = sorted(set(self.masters())) != sorted({r.master for r in ranges})
        self.slots, self.ranges = slots, ranges
        if changed:
            log.info(
                "redis cluster masters now %s", ", ".join(f"{h}:{p}" for h, p in self.masters())
            )

    def refresh_soon(self) -> None:
        """Re-read the slot map in the background, unless one is under way or was just read."""
        if self.closed or (self._refresh is not None and not self._refresh.done()):
            return
        if time.monotonic() - self._refreshed_at < REFRESH_INTERVAL_S:
            return
        self._refresh = asyncio.ensure_future(self._read_map())
        self._refresh.add_done_callback(_log_refresh_failure)

    async def load_map(self) -> None:
        """Wait for a slot map: the one under way, or a new one (raises StoreUnavailable)."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._read_map())
            self._refresh.add_done_callback(_log_refresh_failure)
        await asyncio.shield(self._refresh)

    async def _read_map(self) -> None:
        self._refreshed_at = time.monotonic()
        masters = set(self.masters())
        # Healthy nodes first, masters before replicas, then the seeds of the URL.
        known = sorted(self._nodes.values(), key=lambda n: (n.failed_at, n.address not in masters))
        candidates = list(dict.fromkeys([n.address for n in known] + list(self.url.seeds)))
        problems = []
        for start in range(0, len(candidates), PROBES_AT_ONCE):
            probes = [
                asyncio.ensure_future(self._ask_slots(a))
                for a in candidates[start : start + PROBES_AT_ONCE]
            ]
            try:
                for next_answer in asyncio.as_completed(probes):
                    try:
                        self._apply(await next_answer)
                        return
                    except StoreUnavailable as err:
                        problems.append(str(err))
            finally:
                for probe in probes:
                    probe.cancel()
        raise StoreUnavailable("redis cluster: no node gave a slot map: " + "; ".join(problems))

    async def _ask_slots(self, address: Address) -> list[SlotRange]:
        node = self.node(address)
        try:
            async with asyncio.timeout(self._admin_deadline):
                reply = await node.conn.call(pack("CLUSTER", "SLOTS"), self._admin_deadline)
            return parse_cluster_slots(reply, node.host)
        except TimeoutError as err:
            raise StoreUnavailable(f"{where(address)}: CLUSTER SLOTS: no reply") from err
        except (ConnectionDown, OSError, ssl.SSLError, ValueError) as err:
            node.failed_at = time.monotonic()
            raise StoreUnavailable(f"{where(address)}: CLUSTER SLOTS: {describe(err)}") from err

    def failed(self, node: Node) -> None:
        node.failed_at = time.monotonic()
        self.refresh_soon()

    async def execute(
        self,
        slot: int,
        packed: bytes,
        *,
        script: bytes | None = None,
        confirm_by: float | None = None,
        first: tuple[Node, Reply] | None = None,
        errors: bool = False,
        deadline: float | None = None,
    ) -> tuple[Reply, Confirm]:
        """Send one command to the master of ``slot``, following what proves it did not run.

        ``script``: the EVAL to send after NOSCRIPT. ``confirm_by``: also queue a WAIT behind
        it that answers by then (monotonic seconds), and return it. ``first``: a reply already
        received from a node (the claim's fast path). Returns the reply, or raises; an error
        reply it cannot follow raises StoreUnavailable, or is returned as a RespError value
        with ``errors``. The caller bounds the time; ``deadline`` (seconds) lets one reply take
        longer than the connection's per-command deadline (bulk and admin writes).
        """
        node, reply = first if first is not None else (None, None)
        asking = False
        redirects = 0
        pauses = iter(TRYAGAIN_PAUSES)
        wait: Confirm = None
        while True:
            if reply is None:
                if node is None:
                    node = await self._master(slot)
                reply, wait = await self._send(node, packed, asking, confirm_by, deadline)
            if not isinstance(reply, RespError):
                return reply, wait
            assert node is not None
            text = str(reply)
            reply = None
            redirect = parse_redirect(text, node.host)
            if redirect is not None:
                redirects += 1
                self.redirects["ask" if redirect.ask else "moved"] += 1
                if redirects > MAX_REDIRECTS or (asking and redirect.ask):
                    self.refresh_soon()
                    raise StoreUnavailable(f"redis cluster: slot {slot} keeps moving ({text})")
                target = self.node(redirect.address)
                if not redirect.ask:
                    if redirect.address not in self.masters():  # before it gets the command
                        self.watch.found(where(redirect.address), "became a master", time.time())
                    self.slots[slot] = target
                    self.refresh_soon()
                node, asking = target, redirect.ask
            elif text.startswith("NOSCRIPT") and script is not None:
                packed, script = script, None  # same node, ASKING again if it was asked
            elif text.startswith("TRYAGAIN"):
                # A migration splits the keys: wait for it, as long as the deadline allows.
                self.redirects["tryagain"] += 1
                await asyncio.sleep(next(pauses, TRYAGAIN_PAUSES[-1]))
                node, asking, redirects = None, False, 0
            else:
                if text.startswith(_TOPOLOGY_ERRORS):
                    self.failed(node)
                if errors:
                    return RespError(text), wait
                raise StoreUnavailable(f"redis cluster {where(node.address)}: {text:.200}")

    async def _master(self, slot: int) -> Node:
        node = self.slots[slot]
        if node is None:
            if self.ranges:
                self.refresh_soon()
                raise StoreUnavailable(f"redis cluster: no master serves slot {slot}")
            await self.load_map()
            node = self.slots[slot]
            if node is None:
                raise StoreUnavailable(f"redis cluster: no master serves slot {slot}")
        return node

    async def _send(
        self,
        node: Node,
        packed: bytes,
        asking: bool,
        confirm_by: float | None,
        deadline: float | None = None,
    ) -> tuple[Reply, Confirm]:
        conn = node.conn
        try:
            if not asking and confirm_by is None:
                return await conn.call(packed, deadline), None
            stream = await conn.open_stream()
            if asking:
                _ignore(conn.send_on(stream, _ASKING, deadline))
            reply = conn.send_on(stream, packed, deadline)
            wait = None if confirm_by is None else node.confirm(stream, confirm_by)
            return await reply, wait
        except (ConnectionDown, OSError, ssl.SSLError):
            self.failed(node)
            raise

    def close(self) -> None:
        """Close every connection and stop refreshing; the store raises from now on."""
        self.closed = True
        if self._refresh is not None:
            self._refresh.cancel()
        for node in self._nodes.values():
            node.conn.close()


def _ignore(fut: asyncio.Future[object]) -> None:
    """Drop a reply nobody reads (ASKING's +OK), without an unretrieved-exception warning."""
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())


def _log_refresh_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (err := task.exception()) is not None:
        log.warning("redis cluster: slot map not refreshed: %s", err)


def where(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


def describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"
