"""Start-up checks of a Redis Cluster, judged from what each node answered (no I/O here).

:meth:`verifier.store.cluster.ClusterStore.check_cluster` asks every node for ``CONFIG GET
maxmemory-policy`` and ``CLUSTER INFO`` (masters also for ``INFO replication``) and hands the
answers to :func:`judge_cluster`, which refuses to start on:

* a slot no master serves, or a master whose ``cluster_state`` is not ``ok``: StoreUnavailable
  (claims for those holders would all fail);
* a node whose ``maxmemory-policy`` is not ``noeviction``, or where it cannot be read:
  ConfigError, unless eviction is allowed (then a warning). An evicted nonce lets its token be
  accepted twice. Replicas count too: a replica is a master after a failover.

A replica that did not answer, or a master with fewer connected replicas than
``VERIFIER_MIN_REPLICAS``, is only logged: claims on that master are refused (503) until its
replicas are back, which is the setting's promise, and the cluster may heal without a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from verifier.errors import StoreUnavailable
from verifier.store.eviction import eviction_problem, refuse_eviction
from verifier.store.slots import SLOTS, Address, SlotRange, uncovered

log = logging.getLogger("verifier.store.cluster")

# The setting an operator flips to run on an evicting Redis anyway (as for a single node).


@dataclass(frozen=True)
class NodeReport:
    """What one node answered: ``replies`` to CONFIG GET, CLUSTER INFO (and INFO replication
    for a master), or the ``error`` that kept it from answering."""

    address: Address
    master: bool
    replies: list[object] = field(default_factory=list)
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{'master' if self.master else 'replica'} {self.address[0]}:{self.address[1]}"


def judge_cluster(
    ranges: list[SlotRange], reports: list[NodeReport], allow_eviction: bool, min_replicas: int
) -> None:
    """Raise (or log) what is wrong with the cluster the reports describe; see the module."""
    missing = uncovered(ranges)
    if missing:
        raise StoreUnavailable(f"redis cluster: {missing} of {SLOTS} slots have no master")
    evicting = []
    for report in reports:
        if report.error is not None:
            log.warning("redis cluster: %s was not checked: %s", report.name, report.error)
            continue
        policy_reply, info_reply, *rest = report.replies
        state = _fields(info_reply).get("cluster_state")
        if report.master and state != "ok":
            raise StoreUnavailable(f"redis cluster: {report.name} says cluster_state {state!r}")
        problem = eviction_problem(policy_reply)
        if problem is not None:
            evicting.append(f"{report.name}: {problem}")
        if rest and min_replicas:
            replicas = _fields(rest[0]).get("connected_slaves", "0")
            if not replicas.isdigit() or int(replicas) < min_replicas:
                log.warning(
                    "redis cluster: %s has %s connected replicas, VERIFIER_MIN_REPLICAS is %d: "
                    "its claims are refused until enough replicas are back",
                    report.name,
                    replicas,
                    min_replicas,
                )
    if evicting:
        refuse_eviction("; ".join(evicting), allow_eviction, every_node=True)


def replica_addresses(report: NodeReport) -> list[Address]:
    """The replicas a master's ``INFO replication`` lists (``slaveN:ip=…,port=…,…``)."""
    if not report.master or len(report.replies) < 3:
        return []
    out = []
    for key, value in _fields(report.replies[2]).items():
        if key.startswith("slave") and key[5:].isdigit():
            attrs = dict(part.partition("=")[::2] for part in value.split(","))
            if attrs.get("ip") and attrs.get("port", "").isdigit():
                out.append((attrs["ip"], int(attrs["port"])))
    return out


def _fields(reply: object) -> dict[str, str]:
    """``key:value`` lines of an INFO-style reply (CLUSTER INFO, INFO replication)."""
    if not isinstance(reply, bytes):
        return {}
    out = {}
    for line in reply.decode(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out
