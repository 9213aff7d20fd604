"""The store contract on a Redis Cluster: every test of test_store_contract.py, run again here.

The tests are taken from that module as they are (any test added there runs here too); only
the ``harness`` fixture differs: it opens a :class:`ClusterStore` on the session's cluster
(3 masters, 3 replicas; tests/support/redis_cluster.py), emptied before each test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import test_store_contract as contract

from verifier.store import ClusterStore, Store

if TYPE_CHECKING:  # imported by pytest_plugins below, so that pytest imports it first
    from redis_cluster import RedisCluster

pytest_plugins = ["redis_cluster"]

globals().update({name: f for name, f in vars(contract).items() if name.startswith("test_")})


class ClusterHarness(contract.Harness):
    def __init__(self, cluster: RedisCluster) -> None:
        super().__init__("cluster", cluster.url)
        self.cluster = cluster

    def open(self) -> Store:
        assert self.redis_url is not None
        # A generous deadline: this suite is about semantics; deadlines are tested separately.
        return ClusterStore(self.redis_url, deadline_ms=2_000)

    def put_raw(self, store: Store, key: str, data: bytes) -> None:
        self.cluster.put_raw(key, data)


@pytest.fixture
def harness(cluster_url: str, redis_cluster: RedisCluster) -> ClusterHarness:
    return ClusterHarness(redis_cluster)
