"""Shared pytest fixtures. Add yours below; keep each small and say what it gives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_server import RedisServer, find_redis_server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole run (see tests/redis_server.py).

    A test may pause, kill or restart it; the next ``redis_url`` brings it back.
    """
    if find_redis_server() is None:
        pytest.fail(
            "redis-server is not installed: the Redis tests need a real server "
            "(apt-get install redis-server, or set REDIS_SERVER to its path)",
            pytrace=False,
        )
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session server, running, emptied (FLUSHALL) and back to default settings."""
    redis_server.ensure_running()
    client = redis_server.client()
    try:
        client.flushall()
        client.config_set("maxmemory-policy", "noeviction")
        client.config_resetstat()
    finally:
        client.close()
    return redis_server.url
