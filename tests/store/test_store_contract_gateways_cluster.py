"""The gateway store contract on a Redis Cluster: every test of test_store_contract_gateways.py
(directories, gateway records, reconcile claims and use records, conflicts), run again here
against a :class:`ClusterStore` on the session's cluster, emptied before each test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import test_store_contract_gateways as gateways

from verifier.store import ClusterStore, Store

if TYPE_CHECKING:  # imported by pytest_plugins below, so that pytest imports it first
    from redis_cluster import RedisCluster

pytest_plugins = ["redis_cluster"]

globals().update({name: f for name, f in vars(gateways).items() if name.startswith("test_")})


class ClusterHarness(gateways.Harness):
    def __init__(self, cluster: RedisCluster) -> None:
        super().__init__("cluster", cluster.url)
        self.cluster = cluster

    def open(self) -> Store:
        assert self.redis_url is not None
        return ClusterStore(self.redis_url, deadline_ms=2_000, reconcile_window_ms=self.window_ms)

    def put_raw(self, store: Store, key: str, data: bytes) -> None:
        self.cluster.put_raw(key, data)


@pytest.fixture
def harness(cluster_url: str, redis_cluster: RedisCluster) -> ClusterHarness:
    return ClusterHarness(redis_cluster)
