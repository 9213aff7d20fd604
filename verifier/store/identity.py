"""Knowing when a Redis node may have forgotten claims: "forgetting means reject".

A nonce a node has forgotten lets its token be accepted again. A node forgets when it restarts
empty or from an old snapshot, when a replica that lagged behind is promoted, and when it is
flushed. None of that can be undone, but it can be noticed, and the tokens that may have been
claimed before it refused (``reissue_required``; the holder's app shows a fresh code) until
they expire, one maximum token lifetime later.

A node's :class:`Identity` is read on every new connection, before that connection carries a
claim (:func:`greeting`, sent in the connection's handshake), and again every
``CHECK_INTERVAL_S`` while claims flow:

* ``run_id`` (INFO server) changes at every restart: emptied, from an old snapshot, or with
  all its data (conservative: only tokens issued before the restart need a new code);
* ``master_replid`` (INFO replication) changes when a replica is promoted;
* a marker key, written with SET NX under a random value by the first verifier to meet the
  node, disappears with a FLUSHALL (then the next check writes a new value). A cluster node
  has no key of its own (a key belongs to a slot, and slots move), so there the count of
  FLUSHALL and FLUSHDB calls in its command statistics (``INFO commandstats``) stands in for
  the marker (a ``CONFIG RESETSTAT`` changes it too, and counts as a detection: safe side).

Any change from the identity last confirmed is a detection (:class:`Watch`): from then on
``forgotten_before`` is that moment (wall clock), it is logged, counted in ``/metrics``, and
written to the node (``FORGOTTEN_KEY``, only ever raised; on a cluster to every master, under
a key in one of its slots), where a verifier process that starts later reads it. A FLUSHALL on
a connection that stays up is seen at the next periodic check; a restart or failover always is
before the first claim on the new connection.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from verifier.store.resp import AuthFailed, ConnectionDown, RespError, auth_failure, pack

log = logging.getLogger("verifier.store")

CHECK_INTERVAL_S = 1.0  # how often a running store reads a node's identity again
# Keys of their own prefix; "vf" = verifier forgetting. Not in any holder's hash slot.
MARKER_KEY = "vf:marker"
FORGOTTEN_KEY = "vf:forgotten"
# How long a node keeps the latest detection for verifier processes that start later: longer
# than any token lives (the policy caps the lifetime well below this).
FORGOTTEN_KEEP_MS = 24 * 3600 * 1000
# SET FORGOTTEN_KEY to ARGV[1] (ms) unless it already holds a later time.
RAISE_LUA = (
    "local v = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "if tonumber(ARGV[1]) > v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end "
    "return 1"
)


@dataclass(frozen=True, slots=True)
class Identity:
    """What tells one life of a node's data from the next."""

    run_id: str
    replid: str
    marker: str


@dataclass(frozen=True, slots=True)
class Forgetting:
    """One detection: when (Unix seconds), where (``host:port``), and what changed."""

    at: float
    where: str
    why: str


def greeting() -> tuple[bytes, ...]:
    """The commands that read a single node's identity (see :func:`parse_greeting`); the
    marker is written with a fresh random value if the node has none."""
    return (
        pack("SET", MARKER_KEY, secrets.token_hex(8), "NX"),
        pack("GET", MARKER_KEY),
        pack("INFO", "server"),
        pack("INFO", "replication"),
        pack("GET", FORGOTTEN_KEY),
    )


def cluster_greeting() -> tuple[bytes, ...]:
    """The commands that read a cluster node's identity, without keys: the flush count in
    its command statistics stands in for the marker."""
    return (pack("INFO", "server"), pack("INFO", "replication"), pack("INFO", "commandstats"))


def flush_count(commandstats: bytes) -> bytes:
    """``flushes:N``: how many FLUSHALL and FLUSHDB calls ``INFO commandstats`` reports."""
    calls = 0
    for line in commandstats.splitlines():
        name, _, fields = line.partition(b":")
        if name in (b"cmdstat_flushall", b"cmdstat_flushdb"):
            for field in fields.split(b","):
                key, _, value = field.partition(b"=")
                if key == b"calls" and value.strip().isdigit():
                    calls += int(value)
    return b"flushes:%d" % calls


def parse_greeting(replies: list[Any]) -> tuple[Identity, float | None]:
    """The identity and the detection time recorded on the node (None when none), from the
    replies to :func:`greeting` or :func:`cluster_greeting`. ConnectionDown for anything
    else: a node whose identity is unknown carries no claim."""
    for reply in replies:  # Redis refusing our credentials is said as such
        why = auth_failure(reply) if isinstance(reply, RespError) else None
        if why is not None:
            raise AuthFailed(why)
    refused = [r for r in replies if isinstance(r, RespError)]
    if refused:  # e.g. an ACL user without +info: Redis's own words, which name the command
        raise ConnectionDown(
            f"the start-up identity check (INFO, GET) was refused: {str(refused[0]):.200}"
        )
    if len(replies) not in (3, 5):
        raise ConnectionDown(f"identity check: unexpected replies {replies!r:.200}")
    if len(replies) == 3:  # cluster_greeting
        server, replication, stats = replies
        marker = flush_count(stats) if isinstance(stats, bytes) else None
        replies = [None, marker, server, replication, None]
    _, marker, server, replication, forgotten = replies
    run_id = _info_field(server, b"run_id")
    replid = _info_field(replication, b"master_replid")
    if not isinstance(marker, bytes) or not run_id or not replid:
        raise ConnectionDown("identity check: unexpected replies from Redis")
    return Identity(run_id, replid, marker.decode("ascii", "replace")), recorded_at(forgotten)


def raise_forgotten(at: float, key: str = FORGOTTEN_KEY) -> bytes:
    """The command recording a detection at ``at`` under ``key`` (never lowering it; rounded
    up to the millisecond, so that a process reading it refuses no less)."""
    return pack("EVAL", RAISE_LUA, 1, key, math.ceil(at * 1000), FORGOTTEN_KEEP_MS)


def recorded_at(reply: object) -> float | None:
    """The detection time (Unix seconds) a GET of a forgotten key answered, or None."""
    if isinstance(reply, bytes) and reply.isdigit():
        return int(reply) / 1000
    return None


def _info_field(info: object, name: bytes) -> str:
    if isinstance(info, bytes):
        for line in info.splitlines():
            key, _, value = line.partition(b":")
            if key == name:
                return value.strip().decode("ascii", "replace")
    return ""


def what_changed(old: Identity, new: Identity) -> str | None:
    """Why ``new`` may have lost claims that ``old`` held, or None when it is the same life."""
    if old.run_id != new.run_id:
        return "restarted (run_id changed)"
    if old.replid != new.replid:
        return "failed over or resynchronised (replication id changed)"
    if old.marker != new.marker:
        return "flushed (marker key gone)"
    return None


class Watch:
    """The identities one store has confirmed, node by node, and what it has detected.

    ``forgotten_before``: the latest detection (this process's own, or one recorded on a
    node), Unix seconds; None when none is known. Tokens issued before it may have been
    claimed on state that is gone.
    """

    def __init__(self) -> None:
        self.forgotten_before: float | None = None
        # Called with each detection of this process (the cluster store records it on every
        # master from there).
        self.on_found: Callable[[Forgetting], None] | None = None
        self.seen: dict[str, Identity] = {}
        self.detections: deque[Forgetting] = deque(maxlen=32)  # the latest, for /metrics
        self.counts: dict[tuple[str, str], int] = {}  # (where, why) -> detections
        self.checked_at = time.monotonic()

    def recorded(self, at: float | None) -> None:
        """A detection recorded on a node (by this or another verifier process)."""
        if at is not None and (self.forgotten_before is None or at > self.forgotten_before):
            self.forgotten_before = at

    def observe(self, where: str, identity: Identity, now: float) -> Forgetting | None:
        """Compare with the identity last confirmed at ``where``; the detection, if any."""
        old = self.seen.get(where)
        self.seen[where] = identity
        self.checked_at = time.monotonic()
        why = None if old is None else what_changed(old, identity)
        if why is None:
            return None
        return self.found(where, why, now)

    def found(self, where: str, why: str, now: float) -> Forgetting:
        """Record a detection at ``where`` (also one found otherwise, e.g. a new master)."""
        found = Forgetting(now, where, why)
        self.detections.append(found)
        self.counts[(where, why)] = self.counts.get((where, why), 0) + 1
        self.recorded(now)
        log.error(
            "store %s %s: it may have forgotten claims; tokens issued before now are refused "
            "with reissue_required until they expire",
            where,
            why,
            extra={"event_fields": {"event": "store_forgot", "node": where, "why": why}},
        )
        if self.on_found is not None:
            self.on_found(found)
        return found
