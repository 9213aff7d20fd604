"""Stores for nonces and registry records; pick one by URL with :func:`open_store`.

``memory://``            :class:`MemoryStore`, one process only (tests, demos)
``redis://host:port/db`` :class:`RedisStore`; ``rediss://`` for TLS
``redis+cluster://host:port[,host:port…]``  :class:`ClusterStore`, a Redis Cluster (the
                         hosts are seeds); ``rediss+cluster://`` for TLS
"""

from __future__ import annotations

from urllib.parse import urlsplit

from verifier.config import DEFAULT_RECONCILE_WINDOW_MS
from verifier.errors import ConfigError, StoreAuthFailed, StoreUnavailable
from verifier.store.base import NEW, REPLAYED, RETRY, Claim, Store
from verifier.store.cluster import ClusterStore
from verifier.store.memory import MemoryStore
from verifier.store.redis import RedisStore
from verifier.store.resp import ConnectionDown, tls_context

__all__ = [
    "NEW",
    "REPLAYED",
    "RETRY",
    "Claim",
    "ClusterStore",
    "MemoryStore",
    "RedisStore",
    "Store",
    "open_store",
]


async def open_store(
    url: str,
    *,
    deadline_ms: int = 50,
    allow_eviction: bool = False,
    min_replicas: int = 0,
    tls_files: tuple[str, str, str] = ("", "", ""),
    reconcile_window_ms: int = DEFAULT_RECONCILE_WINDOW_MS,
) -> Store:
    """Open the store named by ``url`` (the VERIFIER_STORE setting), ready for use.

    A coroutine because a Redis store is checked before it is handed out: it must answer, and
    its ``maxmemory-policy`` must be ``noeviction`` unless ``allow_eviction`` (see
    :meth:`RedisStore.check_eviction_policy`). Raises ConfigError for an unknown scheme or a
    refused policy, StoreUnavailable if Redis does not answer. ``deadline_ms`` is the per-call
    deadline of a Redis store; a memory store ignores it. ``min_replicas`` (the
    VERIFIER_MIN_REPLICAS setting) makes a cluster store confirm each claim on that many
    replicas (see :mod:`verifier.store.cluster`); other stores refuse it (ConfigError). A
    cluster is checked on every node (:meth:`ClusterStore.check_cluster`). ``tls_files``
    are the CA file, client certificate and key of a ``rediss://`` or ``rediss+cluster://``
    store (the VERIFIER_REDIS_CA_FILE, _CERT_FILE and _KEY_FILE settings; "" = not set).
    ``reconcile_window_ms`` (the VERIFIER_RECONCILE_WINDOW setting) is how long a store keeps
    each claim's use record for gateways that reconcile later. The caller closes the store.
    """
    # Only the scheme goes into messages: the URL may carry a password.
    scheme = urlsplit(url).scheme
    if min_replicas and scheme not in ("redis+cluster", "rediss+cluster"):
        raise ConfigError(
            f"VERIFIER_MIN_REPLICAS: replica confirmation needs a redis+cluster:// store, "
            f"not {scheme}://; set it to 0"
        )
    if any(tls_files) and scheme not in ("rediss", "rediss+cluster"):
        raise ConfigError(
            f"VERIFIER_REDIS_CA_FILE, VERIFIER_REDIS_CERT_FILE, VERIFIER_REDIS_KEY_FILE: "
            f"used only by a rediss:// or rediss+cluster:// store, not {scheme}://"
        )
    if scheme in ("redis+cluster", "rediss+cluster"):
        cluster = ClusterStore(
            url,
            deadline_ms=deadline_ms,
            min_replicas=min_replicas,
            tls=tls_context(*tls_files) if scheme == "rediss+cluster" else None,
            reconcile_window_ms=reconcile_window_ms,
        )
        try:
            await cluster.check_cluster(allow_eviction)
        except BaseException:
            await cluster.close()
            raise
        return cluster
    if scheme == "memory":
        return MemoryStore(reconcile_window_ms=reconcile_window_ms)
    if scheme in ("redis", "rediss"):
        tls = tls_context(*tls_files) if scheme == "rediss" else None
        store = RedisStore(
            url, deadline_ms=deadline_ms, tls=tls, reconcile_window_ms=reconcile_window_ms
        )
        try:
            await store.check_eviction_policy(allow_eviction)
        except StoreAuthFailed:
            await store.close()
            raise
        except StoreUnavailable as err:
            await store.close()
            if tls is not None and not tls_files[1] and isinstance(err.__cause__, ConnectionDown):
                # A TLS server that wants a client certificate may just close the connection
                # (its alert, when it sends one, is said as such: StoreAuthFailed).
                raise StoreUnavailable(
                    f"{err}; if this Redis requires client certificates (tls-auth-clients), "
                    "set VERIFIER_REDIS_CERT_FILE and VERIFIER_REDIS_KEY_FILE"
                ) from err
            raise
        except BaseException:
            await store.close()
            raise
        return store
    raise ConfigError(
        f"VERIFIER_STORE: unsupported store URL scheme {scheme!r}; "
        "use memory://, redis://host:port/db, rediss://host:port/db or "
        "redis+cluster://host:port[,host:port…]"
    )
