"""Balance stores: the embedded in-process store and the Redis store, one contract (base.py).

The composition root picks one with :func:`open_store`, passing plain values from [store].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from charging.store.common import DEFAULT_RETENTION


def open_store(backend: str, *, redis_url: str = "redis://127.0.0.1:6379/0",
               cluster_nodes: Sequence[str] = (), max_connections: int = 64,
               retention: float = DEFAULT_RETENTION,
               session_retention: float | None = None) -> Any:
    """Build the store named by *backend* ("embedded" | "redis" | "redis-cluster").

    Call it inside the running event loop for the Redis backends. The embedded store then needs
    the ledger's recovery (restore snapshot + replay journal) before serving.
    """
    if backend == "embedded":
        from charging.store.memory import MemoryStore

        return MemoryStore(retention=retention, session_retention=session_retention)
    from charging.store.redis_store import RedisStore

    if backend == "redis":
        return RedisStore.from_url(redis_url, retention=retention,
                                   max_connections=max_connections)
    if backend == "redis-cluster":
        nodes = []
        for node in cluster_nodes:
            host, _, port = node.rpartition(":")
            nodes.append((host, int(port)))
        if not nodes:
            raise ValueError("redis-cluster needs at least one host:port node")
        return RedisStore.from_cluster(nodes, retention=retention)
    raise ValueError(f"unknown store backend {backend!r}")
